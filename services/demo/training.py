"""Train the demo model on the synthetic questions, on the CPU.

    python -m services.demo.training --out DIR   # from random init: 3,400 steps, ~30 min

The shipped model went on from earlier weights (`--init`); docs/demo-model.md gives its two runs.

Next-token loss on the answer plus its stop token, an auxiliary image objective (`image_probe`), a
curriculum that draws the slow-to-learn kinds more often (`curriculum`), a learning rate of its own for
the vision tower and merger (`--vision-lr-scale`), and a held-out accuracy curve from the first minutes:
a flat curve means the image path is dead, whatever the loss says.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import Glm4vForConditionalGeneration

from services.demo.architecture import DemoDims, new_demo_model, save_demo_model
from services.demo.batching import IGNORE, Batch, answer_end_id, make_batch
from services.demo.curriculum import DRAW_WEIGHTS, kinds_at
from services.demo.dataset import Sample, Split, balanced_heldout
from services.demo.image_probe import ImageProbe, probe_targets
from services.demo.learning_curve import PROBE_PREFIX, VARIED_PREFIX, LearningCurve
from services.demo.questions import QuestionKind
from services.demo.training_mix import conversations, cost_sorted_batches, varied_heldout
from services.models.checkpoint import quiet_transformers


@dataclass(frozen=True)
class TrainConfig:
    out: Path
    steps: int = 3400
    init: Path | None = None  # a demo model to go on training (all kinds from the first step), else fresh weights
    minutes: float | None = None  # stop early when the wall clock runs out (the curriculum follows `steps`)
    batch_size: int = 32  # rows at most; fewer where the pictures are large (`token_budget`)
    token_budget: int = 2304  # rows x the largest picture's image tokens, per batch
    learning_rate: float = 2e-3
    vision_lr_scale: float = 1.0  # vision tower and merger (4e-3 diverged in probe-only runs)
    probe_weight: float = 1.0
    warmup_steps: int = 100
    eval_every: int = 500
    eval_per_group: int = 16  # held-out questions per kind and language in each accuracy point
    varied_eval_per_kind: int = 8  # held-out conversations about varied pictures per kind, likewise
    seed: int = 0
    threads: int = 2


def train(config: TrainConfig, dims: DemoDims | None = None) -> LearningCurve:
    dims = dims or DemoDims()
    torch.set_num_threads(config.threads)
    model, processor, generation_config = new_demo_model(dims, config.seed)
    if config.init:
        with quiet_transformers():
            model.load_state_dict(Glm4vForConditionalGeneration.from_pretrained(config.init).state_dict())
    probe = ImageProbe(dims.text_hidden)
    optimizer = torch.optim.AdamW(_parameter_groups(model, probe, config), weight_decay=0.01)
    pad_id = generation_config.pad_token_id
    heldout = make_batch(processor, balanced_heldout(config.eval_per_group), pad_id)
    varied = make_batch(processor, varied_heldout(config.varied_eval_per_kind, config.seed), pad_id)
    end_id = answer_end_id(processor)
    batches = training_batches(config, processor, pad_id)
    curve = LearningCurve()
    deadline = time.monotonic() + config.minutes * 60 if config.minutes else math.inf
    progress = tqdm(range(config.steps), desc="training", unit="step")
    for step, batch in zip(progress, batches, strict=False):
        set_learning_rates(optimizer, step, config.warmup_steps, config.steps)
        answer_loss, probe_loss = _optimizer_step(model, probe, optimizer, batch, config.probe_weight)
        curve.record_loss(step, answer_loss, probe_loss)
        progress.set_postfix(answer=f"{answer_loss:.3f}", probe=f"{probe_loss:.3f}", rows=len(batch.samples))
        finished = step + 1 == config.steps or time.monotonic() > deadline
        if step % config.eval_every == 0 or finished:
            accuracy = teacher_forced_accuracy(model, heldout, end_id) | probe_accuracy(model, probe, heldout)
            varied_accuracy = teacher_forced_accuracy(model, varied, end_id)
            curve.record_accuracy(step, accuracy | {VARIED_PREFIX + k: v for k, v in varied_accuracy.items()})
            progress.write(f"step {step}: " + " ".join(f"{k}={v:.2f}" for k, v in curve.accuracy_at(-1).items()))
            save_demo_model(model, processor, generation_config, config.out)
            curve.save(config.out / "learning_curve.json", config.out / "learning_curve.png")
        if finished:
            break
    return curve


def training_batches(config: TrainConfig, processor: Any, pad_token_id: int) -> Iterator[Batch]:
    """Every step's batch of training conversations, in order: drawn a pool at a time from the stream of
    the step's mix of kinds, cut into batches of similar pictures, in an order shuffled from the seed.
    (A data loader worker preparing them ahead gained nothing: on two cores the step's threads need both.)"""
    streams: dict[tuple[QuestionKind, ...], Iterator[Sample]] = {}
    order = random.Random(config.seed)
    pending: list[list[Sample]] = []
    for step in range(config.steps):
        kinds = tuple(QuestionKind) if config.init else kinds_at(step / config.steps)
        if not pending:
            stream = streams.setdefault(kinds, conversations(Split.TRAIN, config.seed, kinds, DRAW_WEIGHTS))
            pool = list(islice(stream, 4 * config.batch_size))
            pending = cost_sorted_batches(pool, config.batch_size, config.token_budget)
            order.shuffle(pending)
        yield make_batch(processor, pending.pop(), pad_token_id)


def _parameter_groups(
    model: Glm4vForConditionalGeneration, probe: ImageProbe, config: TrainConfig
) -> list[dict[str, object]]:
    vision = list(model.model.visual.parameters())
    vision_ids = {id(p) for p in vision}
    language = [p for p in model.parameters() if id(p) not in vision_ids]
    vision_lr = config.learning_rate * config.vision_lr_scale
    return [
        {"params": language, "base_lr": config.learning_rate},
        {"params": vision + list(probe.parameters()), "base_lr": vision_lr},
    ]


def set_learning_rates(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int, steps: int) -> None:
    """Linear warm-up, then cosine decay to a tenth, of each parameter group's `base_lr`."""
    if step < warmup_steps:
        factor = (step + 1) / warmup_steps
    else:
        done = (step - warmup_steps) / max(1, steps - warmup_steps)
        factor = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def _optimizer_step(
    model: Glm4vForConditionalGeneration,
    probe: ImageProbe,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    probe_weight: float,
) -> tuple[float, float]:
    answer_loss, probe_loss = _losses(model, probe, batch)
    descend(optimizer, answer_loss + probe_weight * probe_loss)
    return answer_loss.item(), probe_loss.item()


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimizer step on `loss`, its gradient norm clipped to 1."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 1.0)
    optimizer.step()


def _losses(model: Glm4vForConditionalGeneration, probe: ImageProbe, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    # The vision tower runs once: its merged tokens feed both the decoder and the probe.
    image = model.model.get_image_features(batch.pixel_values, batch.image_grid_thw, return_dict=True)
    output = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        labels=batch.labels,
        image_grid_thw=batch.image_grid_thw,
        mm_token_type_ids=batch.mm_token_type_ids,
        mm_encoder_outputs={"image": image},
    )
    return output.loss, probe.loss(image.pooler_output, probe_targets(batch.samples))


@torch.no_grad()
def teacher_forced_accuracy(model: torch.nn.Module, batch: Batch, answer_end: int) -> dict[str, float]:
    """Exact match per kind, over every answer of every conversation. Every answer token (the token ending
    it included) being the argmax given the right prefix is exactly what greedy decoding needs to produce
    the answer, so this equals greedy exact match with the earlier answers right."""
    model.eval()
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        pixel_values=batch.pixel_values,
        image_grid_thw=batch.image_grid_thw,
        mm_token_type_ids=batch.mm_token_type_ids,
    ).logits
    model.train()
    predicted, targets = logits[:, :-1].argmax(-1), batch.labels[:, 1:]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for sample, row_predicted, row_targets in zip(batch.samples, predicted.tolist(), targets.tolist(), strict=True):
        answers = _answers_right(row_predicted, row_targets, answer_end)
        for question, is_correct in zip(sample.questions, answers, strict=True):
            by_kind[question.kind.value].append(is_correct)
    return {kind: sum(values) / len(values) for kind, values in by_kind.items()}


def _answers_right(predicted: list[int], targets: list[int], answer_end: int) -> list[bool]:
    """Whether each answer of a row (a run of labelled tokens up to the token ending it) was predicted whole."""
    answers: list[bool] = []
    right = True
    for guess, target in zip(predicted, targets, strict=True):
        if target == IGNORE:
            continue
        right &= guess == target
        if target == answer_end:
            answers.append(right)
            right = True
    return answers


@torch.no_grad()
def probe_accuracy(model: Glm4vForConditionalGeneration, probe: ImageProbe, batch: Batch) -> dict[str, float]:
    """What the image tokens hold, read by the probe: high here but low in the answers means the decoder,
    not the vision tower, is what fails to learn."""
    image = model.model.get_image_features(batch.pixel_values, batch.image_grid_thw, return_dict=True)
    accuracy = probe.accuracy(image.pooler_output, probe_targets(batch.samples))
    return {f"{PROBE_PREFIX}{name}": value for name, value in accuracy.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the demo GLM-4V-architecture model on synthetic questions.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--init", type=Path, help="a demo model directory to go on training from")
    parser.add_argument("--minutes", type=float, help="stop early after this many minutes")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--token-budget", type=int, default=TrainConfig.token_budget)
    parser.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
    parser.add_argument("--vision-lr-scale", type=float, default=TrainConfig.vision_lr_scale)
    parser.add_argument("--probe-weight", type=float, default=TrainConfig.probe_weight)
    parser.add_argument("--eval-every", type=int, default=TrainConfig.eval_every)
    parser.add_argument("--eval-per-group", type=int, default=TrainConfig.eval_per_group)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    args = parser.parse_args(argv)
    train(
        TrainConfig(
            out=args.out,
            steps=args.steps,
            init=args.init,
            minutes=args.minutes,
            batch_size=args.batch_size,
            token_budget=args.token_budget,
            learning_rate=args.learning_rate,
            warmup_steps=args.warmup_steps,
            vision_lr_scale=args.vision_lr_scale,
            probe_weight=args.probe_weight,
            eval_every=args.eval_every,
            eval_per_group=args.eval_per_group,
            seed=args.seed,
        )
    )


if __name__ == "__main__":
    main()

"""Train the demo LoRA adapter: the shipped demo model, frozen, learns to answer in short sentences
(`sentences`) on the demo's synthetic questions. Only a rank-8 LoRA on the language model's projections is
trained; it is saved as `peft` saves it, and served as it is (`make serve-lora`).

    nice .venv/bin/python -m services.demo.adapter_training --out services/demo/sentences-adapter   # ~8 min

Needs the dev extras (`peft`). The sentences' words are ones the demo model's output layer can barely
produce (`sentences`), so the held-out exact match stays at zero for ~300 steps and climbs from there; at
2,000 steps it is where docs/demo-model.md says. The vision tower is frozen, so a pool of batches is drawn
and encoded once and cycled through: a step is then the language model's forward and backward alone.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tqdm import tqdm
from transformers import AutoProcessor, GenerationConfig, Glm4vForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutputWithPooling

from services.demo.batching import Batch, answer_end_id, make_batch
from services.demo.dataset import Split, balanced_heldout, samples
from services.demo.sentences import in_sentences
from services.demo.shipped import DEMO_MODEL
from services.demo.training import descend, set_learning_rates, teacher_forced_accuracy
from services.models.checkpoint import quiet_transformers
from services.models.family import GLM4V


@dataclass(frozen=True)
class AdapterTrainConfig:
    out: Path
    steps: int = 2000
    batch_size: int = 16
    pool_batches: int = 100  # batches drawn and encoded once, then cycled through
    rank: int = 8
    learning_rate: float = 1e-2
    warmup_steps: int = 20
    eval_every: int = 100
    eval_per_group: int = 8  # held-out questions per kind and language in each accuracy point
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class _EncodedBatch:
    batch: Batch  # without its pixels: a pool of them would take gigabytes
    image: BaseModelOutputWithPooling  # the frozen vision tower's output for the batch's pictures


def train_adapter(config: AdapterTrainConfig) -> dict[str, float]:
    """Trains and saves the adapter in `config.out`; returns its last held-out exact match per kind."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    with quiet_transformers():
        base = Glm4vForConditionalGeneration.from_pretrained(DEMO_MODEL, dtype=torch.float32)
        processor = AutoProcessor.from_pretrained(DEMO_MODEL)
    generation_config = GenerationConfig.from_pretrained(DEMO_MODEL)
    model = get_peft_model(base, _lora_config(config.rank))
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if p.requires_grad], "base_lr": config.learning_rate}],
        weight_decay=0.0,
    )
    pad_id = generation_config.pad_token_id
    heldout = make_batch(processor, [in_sentences(s) for s in balanced_heldout(config.eval_per_group)], pad_id)
    stream = map(in_sentences, samples(Split.TRAIN, config.seed))
    pool = [
        _encode(base, make_batch(processor, list(islice(stream, config.batch_size)), pad_id))
        for _ in tqdm(range(min(config.pool_batches, config.steps)), desc="drawing the pictures", unit="batch")
    ]
    accuracy: dict[str, float] = {}
    progress = tqdm(range(config.steps), desc="training the adapter", unit="step")
    for step in progress:
        set_learning_rates(optimizer, step, config.warmup_steps, config.steps)
        loss = _answer_loss(model, pool[step % len(pool)])
        descend(optimizer, loss)
        progress.set_postfix(loss=f"{loss.item():.3f}")
        if step % config.eval_every == 0 or step + 1 == config.steps:
            accuracy = teacher_forced_accuracy(model, heldout, answer_end_id(processor))
            progress.write(f"step {step}: " + " ".join(f"{k}={v:.2f}" for k, v in accuracy.items()))
    _save(model, config.out)
    return accuracy


def _lora_config(rank: int) -> LoraConfig:
    # The vision tower's merger has projections of the same names: only the language model's are adapted.
    targets = "|".join(GLM4V.lora_targets)
    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=rf".*language_model.*\.({targets})")


@torch.no_grad()
def _encode(base: Glm4vForConditionalGeneration, batch: Batch) -> _EncodedBatch:
    image = base.model.get_image_features(batch.pixel_values, batch.image_grid_thw, return_dict=True)
    return _EncodedBatch(
        replace(batch, pixel_values=torch.empty(0)), BaseModelOutputWithPooling(pooler_output=image.pooler_output)
    )


def _answer_loss(model: PeftModel, encoded: _EncodedBatch) -> torch.Tensor:
    batch = encoded.batch
    loss: torch.Tensor = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        labels=batch.labels,
        image_grid_thw=batch.image_grid_thw,
        mm_token_type_ids=batch.mm_token_type_ids,
        mm_encoder_outputs={"image": encoded.image},
    ).loss
    return loss


def _save(model: PeftModel, out: Path) -> None:
    # peft records the directory the base was loaded from, a path on this machine: the base's name instead.
    model.peft_config["default"].base_model_name_or_path = DEMO_MODEL.name
    # No embedding is adapted; "auto" would look the base's name up on the Hub to find out.
    model.save_pretrained(str(out), save_embedding_layers=False)
    (out / "README.md").unlink()  # peft's blank model card; docs/demo-model.md describes the adapter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the demo LoRA adapter that answers in sentences.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=AdapterTrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=AdapterTrainConfig.batch_size)
    parser.add_argument("--rank", type=int, default=AdapterTrainConfig.rank)
    parser.add_argument("--seed", type=int, default=AdapterTrainConfig.seed)
    args = parser.parse_args(argv)
    train_adapter(
        AdapterTrainConfig(out=args.out, steps=args.steps, batch_size=args.batch_size, rank=args.rank, seed=args.seed)
    )


if __name__ == "__main__":
    main()

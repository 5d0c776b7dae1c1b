"""Training: the batches match what the server will see, and a few steps write a loadable model and a curve."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
import torch

from services.cli import main
from services.demo.architecture import DemoDims, new_demo_model
from services.demo.batching import IGNORE, answer_end_id, make_batch
from services.demo.curriculum import DRAW_WEIGHTS, kinds_at
from services.demo.dataset import Sample, Split, samples
from services.demo.evaluation import Prompt
from services.demo.image_probe import ATTRIBUTES, probe_targets
from services.demo.questions import QuestionKind
from services.demo.scene import ReceiptScene, TextScene
from services.demo.training import TrainConfig, _answers_right, train
from services.demo.training_mix import conversations, cost_sorted_batches, image_tokens
from services.models.language_half import LanguageHalf

EXAMPLE_IMAGE = Path(__file__).parents[2] / "examples" / "images" / "receipt.png"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    train(TrainConfig(out=out, steps=3, batch_size=4, eval_every=2, eval_per_group=1, varied_eval_per_kind=1))
    return out


class TestBatches:
    """Each turn's prompt is token for token the serving path's, the earlier answers in it as the web page
    sends them; the labels are every answer and the `<|user|>` that ends it, nothing else."""

    def test_every_turn_is_the_servers_prompt_and_labels_are_the_answers(self, trained: Path) -> None:
        _, processor, generation_config = new_demo_model(DemoDims(), seed=0)
        end_id = answer_end_id(processor)
        assert end_id in generation_config.eos_token_id  # generation stops where training ends an answer
        batch_samples = [s for s in islice(conversations(Split.TRAIN, 0, list(QuestionKind)), 12)]
        assert {len(s.questions) for s in batch_samples} >= {1, 2, 3}
        batch = make_batch(processor, batch_samples, generation_config.pad_token_id)
        server = LanguageHalf(trained, torch.device("cpu"), torch.float32)
        for row, sample in enumerate(batch_samples):
            grid = tuple(batch.image_grid_thw[row].tolist())
            labels = batch.labels[row]
            earlier: tuple[tuple[str, str], ...] = ()
            for question in sample.questions:
                messages = Prompt(sample.image, earlier, question).messages()
                prompt = server.render_prompt(messages, [grid]).token_ids  # type: ignore[list-item]
                assert batch.input_ids[row, : len(prompt)].tolist() == prompt
                answer = processor.tokenizer(question.answer, add_special_tokens=False)["input_ids"] + [end_id]
                assert labels[len(prompt) : len(prompt) + len(answer)].tolist() == answer
                assert batch.input_ids[row, len(prompt) : len(prompt) + len(answer)].tolist() == answer
                earlier += ((question.text, question.answer),)
            trained_on = labels[labels != IGNORE].tolist()
            expected = [
                t
                for q in sample.questions
                for t in [*processor.tokenizer(q.answer, add_special_tokens=False)["input_ids"], end_id]
            ]
            assert trained_on == expected  # nothing but the answers and their ends


def test_teacher_forced_accuracy_scores_each_answer_of_a_conversation() -> None:
    end, ignore = 9, IGNORE
    targets = [ignore, 4, 5, end, ignore, ignore, 6, end, ignore]
    predicted = [0, 4, 5, end, 1, 1, 7, end, 3]  # the second answer's first token is wrong
    assert _answers_right(predicted, targets, end) == [True, False]


def test_batches_keep_to_their_row_and_token_budget() -> None:
    pool = list(islice(conversations(Split.TRAIN, 0, list(QuestionKind)), 64))
    batches = cost_sorted_batches(pool, max_rows=8, token_budget=1200)
    assert sorted(map(id, (s for b in batches for s in b))) == sorted(map(id, pool))
    for batch in batches:
        assert len(batch) <= 8
        assert len(batch) == 1 or len(batch) * max(map(image_tokens, batch)) <= 1200


def test_curriculum_starts_with_colour_and_shape_and_ends_with_everything() -> None:
    assert set(kinds_at(0.0)) == {QuestionKind.COLOUR, QuestionKind.SHAPE}
    assert set(kinds_at(1.0)) == set(QuestionKind)
    assert set(DRAW_WEIGHTS) == set(QuestionKind)


def test_image_rows_and_columns_get_rotary_frequencies_that_turn_across_the_picture() -> None:
    """Reading a total means telling one image token's place from its neighbour's: M-RoPE's row and column
    frequencies must turn a usable angle per token (theta 500k with a 16-wide head gave under 0.002 rad)."""
    model, _, _ = new_demo_model(DemoDims(), seed=0)
    inverse_frequencies = model.model.language_model.rotary_emb.inv_freq
    t, h, w = DemoDims().mrope_section
    assert len(inverse_frequencies) == t + h + w
    assert inverse_frequencies[t:].max() > 0.3 and inverse_frequencies[t + h :].max() > 0.2


def test_probe_reads_each_digit_of_the_total() -> None:
    scene = ReceiptScene(0, "2026-01-02", 1, "128.50")
    sample = next(s for s in samples(Split.TRAIN, 0, [QuestionKind.TOTAL]))
    targets = probe_targets((Sample(scene, sample.questions),))[0].tolist()
    total = [targets[list(ATTRIBUTES).index(f"total_{i}")] for i in range(5)]
    assert total == [1, 2, 8, 5, 0]
    assert targets[list(ATTRIBUTES).index("colour")] == IGNORE


@pytest.mark.parametrize(("text", "tens", "units"), [("42", 4, 2), ("7", 10, 7), ("0", 10, 0)])
def test_probe_reads_a_number_digit_by_digit(text: str, tens: int, units: int) -> None:
    scene = TextScene(text, 0, (0, 0))
    sample = next(s for s in samples(Split.TRAIN, 0, [QuestionKind.NUMBER]))
    targets = probe_targets((Sample(scene, sample.questions),))[0].tolist()
    assert [targets[list(ATTRIBUTES).index(name)] for name in ("number_tens", "number_units", "word")] == [
        tens,
        units,
        IGNORE,
    ]


class TestTrainingRun:
    """A few steps write a model `flashvqa ask` loads, a loss/accuracy curve, and repeat exactly."""

    def test_writes_a_servable_model_and_a_curve(self, trained: Path) -> None:
        assert (trained / "learning_curve.png").stat().st_size > 0
        curve = json.loads((trained / "learning_curve.json").read_text())
        probed = {f"probe:{name}" for name in ("colour", "shape", "count", "number", "word", "category", "total")}
        varied = {f"varied:{k.value}" for k in QuestionKind}
        kinds = {k.value for k in QuestionKind}
        assert curve["eval_steps"] == [0, 2] and set(curve["accuracy"]) == kinds | probed | varied
        # Three steps teach nothing: the answer may well be empty, but the directory must load and run.
        assert main(["ask", "--model", str(trained), "--image", str(EXAMPLE_IMAGE), "--max-tokens", "4", "Total?"]) == 0

    def test_same_seed_same_losses(self, trained: Path, tmp_path: Path) -> None:
        again = train(
            TrainConfig(out=tmp_path, steps=3, batch_size=4, eval_every=2, eval_per_group=1, varied_eval_per_kind=1)
        )
        first = json.loads((trained / "learning_curve.json").read_text())
        assert again.answer_loss == first["answer_loss"] and again.probe_loss == first["probe_loss"]

"""Training: the batches match what the server will see, and a few steps write a loadable model and a curve."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
import torch

from services.cli import main
from services.demo.architecture import DemoDims, new_demo_model
from services.demo.batching import IGNORE, make_batch
from services.demo.curriculum import DRAW_WEIGHTS, kinds_at
from services.demo.dataset import Sample, Split, samples
from services.demo.image_probe import ATTRIBUTES, probe_targets
from services.demo.questions import QuestionKind
from services.demo.scene import ReceiptScene, TextScene
from services.demo.training import TrainConfig, train
from services.local_pipeline import image_question
from services.models.language_half import LanguageHalf

EXAMPLE_IMAGE = Path(__file__).parents[2] / "examples" / "images" / "receipt.png"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    train(TrainConfig(out=out, steps=3, batch_size=4, eval_every=2, eval_per_group=1))
    return out


class TestBatches:
    """The prompt is token for token the serving path's; the labels are the answer and the stop token."""

    def test_prompt_is_the_servers_and_labels_are_answer_then_stop(self, trained: Path) -> None:
        _, processor, generation_config = new_demo_model(DemoDims(), seed=0)
        stop_id = generation_config.eos_token_id[0]
        batch_samples = list(islice(samples(Split.TRAIN, 0), 6))
        batch = make_batch(processor, batch_samples, stop_id, generation_config.pad_token_id)
        server = LanguageHalf(trained, torch.device("cpu"), torch.float32)
        for row, sample in enumerate(batch_samples):
            grid = tuple(batch.image_grid_thw[row].tolist())
            prompt = server.render_prompt(image_question(sample.question.text, 1), [grid]).token_ids  # type: ignore[list-item]
            answer = batch.labels[row][batch.labels[row] != IGNORE].tolist()
            assert batch.input_ids[row, : len(prompt)].tolist() == prompt
            assert batch.labels[row, : len(prompt)].eq(IGNORE).all()
            assert answer[-1] == stop_id
            assert processor.tokenizer.decode(answer[:-1]) == sample.question.answer


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
    targets = probe_targets((Sample(scene, sample.question),))[0].tolist()
    total = [targets[list(ATTRIBUTES).index(f"total_{i}")] for i in range(5)]
    assert total == [1, 2, 8, 5, 0]
    assert targets[list(ATTRIBUTES).index("colour")] == IGNORE


@pytest.mark.parametrize(("text", "tens", "units"), [("42", 4, 2), ("7", 10, 7), ("0", 10, 0)])
def test_probe_reads_a_number_digit_by_digit(text: str, tens: int, units: int) -> None:
    scene = TextScene(text, 0, (0, 0))
    sample = next(s for s in samples(Split.TRAIN, 0, [QuestionKind.NUMBER]))
    targets = probe_targets((Sample(scene, sample.question),))[0].tolist()
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
        assert curve["eval_steps"] == [0, 2] and set(curve["accuracy"]) == {k.value for k in QuestionKind} | probed
        # Three steps teach nothing: the answer may well be empty, but the directory must load and run.
        assert main(["ask", "--model", str(trained), "--image", str(EXAMPLE_IMAGE), "--max-tokens", "4", "Total?"]) == 0

    def test_same_seed_same_losses(self, trained: Path, tmp_path: Path) -> None:
        again = train(TrainConfig(out=tmp_path, steps=3, batch_size=4, eval_every=2, eval_per_group=1))
        first = json.loads((trained / "learning_curve.json").read_text())
        assert again.answer_loss == first["answer_loss"] and again.probe_loss == first["probe_loss"]

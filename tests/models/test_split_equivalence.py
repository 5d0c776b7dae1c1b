"""The split (vision half in one place, language half in another) must be the model, token for token."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from services.common.image_input import load_image
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import LocalPipeline, image_question
from services.messages import RawImage, SamplingParams
from services.models.family import FAMILIES
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from tests.conftest import FAMILY_NAMES, noise_image
from tests.reference import ReferenceModel

MAX_NEW_TOKENS = 12
CPU = torch.device("cpu")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE_CASES: dict[str, list[tuple[int, int]]] = {
    "one_image": [(200, 120)],
    "two_images": [(96, 96), (160, 224)],
    "tall": [(60, 300)],
    "wide": [(400, 90)],
    "one_pixel": [(1, 1)],
    "larger_than_max_pixels": [(900, 700)],
    "text_only": [],
}


@pytest.fixture(scope="module")
def references(tiny_model_dirs: dict[str, Path]) -> dict[str, ReferenceModel]:
    return {name: ReferenceModel(path) for name, path in tiny_model_dirs.items()}


@pytest.fixture(scope="module")
def pipelines(tiny_model_dirs: dict[str, Path]) -> dict[str, LocalPipeline]:
    return {name: LocalPipeline(path, CPU) for name, path in tiny_model_dirs.items()}


# A step budget smaller than every prompt and prime, so that chunk boundaries cut through the images.
CHUNKED = EngineConfig(max_num_seqs=1, max_num_batched_tokens=7, enable_prefix_caching=False)


# Decode steps at the CUDA graphs' padded shapes (run eagerly on a CPU).
GRAPH_SHAPES = EngineConfig(max_num_seqs=4, decode_graphs="uncaptured")


@pytest.fixture(scope="module")
def chunked_pipelines(tiny_model_dirs: dict[str, Path]) -> dict[str, LocalPipeline]:
    return {name: LocalPipeline(path, CPU, CHUNKED) for name, path in tiny_model_dirs.items()}


def _greedy_tokens(pipeline: LocalPipeline, messages: list[dict[str, Any]], images: list[Image.Image]) -> list[int]:
    params = SamplingParams(max_tokens=MAX_NEW_TOKENS, temperature=0.0)
    return [token for output in pipeline.generate(messages, images, params) for token in output.token_ids]


class TestSplitMatchesGenerate:
    """Greedy tokens of vision half + language half == `model.generate` on the processor's inputs."""

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    @pytest.mark.parametrize("case", sorted(IMAGE_CASES))
    def test_same_tokens(
        self, family: str, case: str, references: dict[str, ReferenceModel], pipelines: dict[str, LocalPipeline]
    ) -> None:
        images = [load_image(_png(noise_image(w, h, seed=index))) for index, (w, h) in enumerate(IMAGE_CASES[case])]
        messages = image_question("What is in this picture?", len(images))
        expected = references[family].generate(messages, images, MAX_NEW_TOKENS)

        actual = _greedy_tokens(pipelines[family], messages, images)

        assert len(expected) > 0
        assert actual == expected

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    @pytest.mark.parametrize("case", ["one_image", "two_images", "text_only"])
    def test_same_tokens_with_decode_steps_at_the_graph_shapes(
        self, family: str, case: str, references: dict[str, ReferenceModel], tiny_model_dirs: dict[str, Path]
    ) -> None:
        images = [load_image(_png(noise_image(w, h, seed=index))) for index, (w, h) in enumerate(IMAGE_CASES[case])]
        messages = image_question("What is in this picture?", len(images))
        pipeline = LocalPipeline(tiny_model_dirs[family], CPU, GRAPH_SHAPES)
        assert pipeline.engine.runner.decode_graphs is not None
        assert _greedy_tokens(pipeline, messages, images) == references[family].generate(
            messages, images, MAX_NEW_TOKENS
        )

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    @pytest.mark.parametrize("case", ["one_image", "two_images", "tall"])
    def test_same_tokens_with_the_prompt_prefilled_in_chunks(
        self,
        family: str,
        case: str,
        references: dict[str, ReferenceModel],
        chunked_pipelines: dict[str, LocalPipeline],
    ) -> None:
        images = [load_image(_png(noise_image(w, h, seed=index))) for index, (w, h) in enumerate(IMAGE_CASES[case])]
        messages = image_question("What is in this picture?", len(images))
        pipeline = chunked_pipelines[family]
        prompt = pipeline.engine.language.render_prompt(
            messages, [e.grid_thw for e in pipeline.vision.encode([RawImage.from_image(i) for i in images])]
        )
        budget = CHUNKED.max_num_batched_tokens or 0
        # Some image's placeholder run is cut by a chunk boundary (a multiple of the budget).
        assert any(start // budget != (end - 1) // budget for start, end in prompt.image_spans)
        assert _greedy_tokens(pipeline, messages, images) == references[family].generate(
            messages, images, MAX_NEW_TOKENS
        )

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_multi_turn_with_system_prompt(
        self, family: str, references: dict[str, ReferenceModel], pipelines: dict[str, LocalPipeline]
    ) -> None:
        image = noise_image(128, 96, seed=7)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Answer briefly."},
            *image_question("What colour is it?", 1),
            {"role": "assistant", "content": "Red."},
            {"role": "user", "content": [{"type": "text", "text": "And the shape?"}]},
        ]
        expected = references[family].generate(messages, [image], MAX_NEW_TOKENS)
        actual = _greedy_tokens(pipelines[family], messages, [image])
        assert actual == expected


def _checkpoint_with_only(model_dir: Path, out: Path, keep: Callable[[str], bool]) -> Path:
    """A copy of the model directory whose weights file holds only the tensors whose names `keep` accepts."""
    out.mkdir()
    for path in model_dir.iterdir():
        if path.name != "model.safetensors":
            (out / path.name).write_bytes(path.read_bytes())
    tensors = load_file(model_dir / "model.safetensors")
    kept = {name: tensor for name, tensor in tensors.items() if keep(name)}
    assert 0 < len(kept) < len(tensors)
    save_file(kept, out / "model.safetensors", metadata={"format": "pt"})
    return out


class TestHalvesAreIndependent:
    """Each half loads and runs from a checkpoint that lacks the other half entirely."""

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_each_half_runs_without_the_other(
        self, family: str, tiny_model_dirs: dict[str, Path], pipelines: dict[str, LocalPipeline], tmp_path: Path
    ) -> None:
        model_dir = tiny_model_dirs[family]
        vision_patterns = [re.compile(pattern) for pattern in FAMILIES[family].vision_key_mapping]

        def is_vision(name: str) -> bool:
            return any(pattern.match(name) for pattern in vision_patterns)

        vision = VisionHalf(_checkpoint_with_only(model_dir, tmp_path / "vision", is_vision), CPU)
        language = LanguageHalf(
            _checkpoint_with_only(model_dir, tmp_path / "language", lambda name: not is_vision(name)), CPU
        )
        image = noise_image(112, 112, seed=3)

        embeddings = vision.encode([RawImage.from_image(image)])
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=512))
        engine.add_request("only", image_question("What?", 1), embeddings, SamplingParams(max_tokens=1, temperature=0))
        (output,) = engine.step()

        whole = pipelines[family]
        assert torch.equal(embeddings[0].embeds, whole.vision.encode([RawImage.from_image(image)])[0].embeds)
        assert list(output.token_ids) == _greedy_tokens(whole, image_question("What?", 1), [image])[:1]


class TestLoadingIsStrict:
    def test_a_checkpoint_missing_tensors_is_refused(self, tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
        """A half must never run with randomly initialised weights because its tensors were not found."""
        model_dir = tiny_model_dirs["glm4v"]
        text_only = _checkpoint_with_only(model_dir, tmp_path / "text", lambda name: "visual" not in name)
        with pytest.raises(ValueError, match="lacks"):
            VisionHalf(text_only, CPU)


class TestTiedEmbeddings:
    """Checkpoints with `tie_word_embeddings` (Qwen2.5-VL-3B) have no lm_head tensor: the head is the
    embedding matrix, in the split as in the whole model."""

    def test_tied_checkpoint_matches_generate(self, tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
        source = tiny_model_dirs["qwen2_5_vl"]
        tied = _checkpoint_with_only(source, tmp_path / "tied", lambda name: name != "lm_head.weight")
        config = json.loads((tied / "config.json").read_text())
        config["tie_word_embeddings"] = True
        config["text_config"]["tie_word_embeddings"] = True
        (tied / "config.json").write_text(json.dumps(config))
        image = noise_image(96, 64, seed=11)
        messages = image_question("What is it?", 1)

        expected = ReferenceModel(tied).generate(messages, [image], MAX_NEW_TOKENS)
        actual = _greedy_tokens(LocalPipeline(tied, CPU), messages, [image])

        assert actual == expected


def _bf16_checkpoint(model_dir: Path, out: Path) -> Path:
    """The model saved as the real checkpoints are: bf16 tensors, `dtype: bfloat16` in its config."""
    out.mkdir()
    for path in model_dir.iterdir():
        if path.name not in ("model.safetensors", "config.json"):
            (out / path.name).write_bytes(path.read_bytes())
    tensors = load_file(model_dir / "model.safetensors")
    save_file(
        {name: tensor.to(torch.bfloat16) for name, tensor in tensors.items()},
        out / "model.safetensors",
        metadata={"format": "pt"},
    )
    config = json.loads((model_dir / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    return out


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_bf16_checkpoint_served_in_bf16_matches_generate_in_bf16(
    family: str, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = _bf16_checkpoint(tiny_model_dirs[family], tmp_path / "bf16")
    reference = ReferenceModel(model_dir)
    assert reference.model.dtype == torch.bfloat16
    pipeline = LocalPipeline(model_dir, CPU, dtype="bfloat16")  # what `auto` picks on a CPU with bf16 instructions
    assert pipeline.vision.tower.dtype == torch.bfloat16
    assert pipeline.engine.language.kv_shape.dtype == torch.bfloat16
    for seed in range(2):
        image = noise_image(200, 120, seed=seed)
        messages = image_question("What is in this picture?", 1)
        expected = reference.generate(messages, [image], MAX_NEW_TOKENS)
        assert _greedy_tokens(pipeline, messages, [image]) == expected

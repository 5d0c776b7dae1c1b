"""Tiny models are real model directories of the real architectures, reproducible from a seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoConfig, AutoProcessor, AutoTokenizer

from services.models.family import FAMILIES
from services.tiny_models.model_builder import build_tiny_model
from services.tiny_models.tokenizer_builder import SPECIAL_TOKENS, STOP_TOKENS
from tests.conftest import FAMILY_NAMES

REAL_PROCESSOR = {"glm4v": "Glm46VProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}


class TestReproducible:
    """Same seed, same bytes: tests and benchmarks can rebuild instead of downloading."""

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_same_seed_gives_identical_files(self, family: str, tmp_path: Path) -> None:
        first = build_tiny_model(family, tmp_path / "a", seed=3)
        second = build_tiny_model(family, tmp_path / "b", seed=3)
        for name in ("model.safetensors", "tokenizer.json", "config.json"):
            assert (first / name).read_bytes() == (second / name).read_bytes(), name

    def test_another_seed_gives_other_weights(self, tmp_path: Path) -> None:
        first = build_tiny_model("glm4v", tmp_path / "a", seed=1)
        second = build_tiny_model("glm4v", tmp_path / "b", seed=2)
        assert (first / "model.safetensors").read_bytes() != (second / "model.safetensors").read_bytes()

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_tiny_is_a_few_megabytes(self, family: str, tiny_model_dirs: dict[str, Path]) -> None:
        size = (tiny_model_dirs[family] / "model.safetensors").stat().st_size
        assert 100_000 < size < 5_000_000


class TestLoadsLikeTheRealModel:
    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_auto_classes_load_the_real_processor(self, family: str, tiny_model_dirs: dict[str, Path]) -> None:
        processor = AutoProcessor.from_pretrained(tiny_model_dirs[family])
        config = AutoConfig.from_pretrained(tiny_model_dirs[family])
        assert type(processor).__name__ == REAL_PROCESSOR[family]
        assert config.model_type == FAMILIES[family].model_type
        assert config.architectures == [FAMILIES[family].model_class]

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_special_tokens_are_single_tokens_and_ids_agree_with_config(
        self, family: str, tiny_model_dirs: dict[str, Path]
    ) -> None:
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs[family])
        config = AutoConfig.from_pretrained(tiny_model_dirs[family])
        for token in SPECIAL_TOKENS[family]:
            assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token
        assert tokenizer.convert_ids_to_tokens(config.image_token_id) == FAMILIES[family].image_token
        assert len(tokenizer) <= config.text_config.vocab_size
        stop_ids = tokenizer.convert_tokens_to_ids(STOP_TOKENS[family])
        assert config.text_config.eos_token_id == stop_ids

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_tokenizer_round_trips_any_text(self, family: str, tiny_model_dirs: dict[str, Path]) -> None:
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs[family])
        text = '这是什么品牌? Is this a travel expense? 収据 ñ 😀 \t\n{"a": 1}'
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_numbers_are_one_token_per_digit(self, family: str, tiny_model_dirs: dict[str, Path]) -> None:
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs[family])
        pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode("128.50", add_special_tokens=False))
        assert pieces == ["1", "2", "8", ".", "5", "0"]


class TestGlmChatTemplate:
    """GLM-4.6V-Flash's template: `[gMASK]<sop>`, roles, and the thinking switch."""

    @pytest.fixture
    def tokenizer(self, tiny_model_dirs: dict[str, Path]) -> object:
        return AutoTokenizer.from_pretrained(tiny_model_dirs["glm4v"])

    def _render(self, tokenizer: object, **kwargs: object) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]
        text: str = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            messages, tokenize=False, add_generation_prompt=True, **kwargs
        )
        return text

    def test_thinking_off(self, tokenizer: object) -> None:
        assert self._render(tokenizer, enable_thinking=False) == (
            "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>q/nothink<|assistant|>\n<think></think>\n"
        )

    def test_thinking_on(self, tokenizer: object) -> None:
        assert self._render(tokenizer, enable_thinking=True) == (
            "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>q<|assistant|>\n"
        )

"""LoRA adapters in PEFT's format, served per token: with `peft` as the reference, each row of a batch that
mixes two adapters and the base gets what the same adapter merged into the weights (`merge_and_unload`) gives,
for both families; the pool keeps its slots bounded; a bad adapter is refused before anything changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from services.models.family import FAMILIES
from services.models.lora import AdapterError, AdapterPool, PoolFullError, load_peft_adapter
from tests.conftest import FAMILY_NAMES
from tests.models.lora_adapters import full_model, make_adapter

SEQUENCE_LENGTH = 12


def merged_hidden(model_dir: Path, adapter: Path | None, input_ids: torch.Tensor) -> torch.Tensor:
    model = full_model(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    with torch.inference_mode():
        return model.model.language_model(input_ids=input_ids).last_hidden_state


def served_text_model(model_dir: Path) -> Any:
    return full_model(model_dir).model.language_model


def rows_of(batch_row: int) -> torch.Tensor:
    return torch.arange(batch_row * SEQUENCE_LENGTH, (batch_row + 1) * SEQUENCE_LENGTH)


@pytest.fixture(scope="module")
def adapters(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        name: [
            make_adapter(tiny_model_dirs[name], root / name / "receipts", rank=4, seed=1),
            make_adapter(tiny_model_dirs[name], root / name / "moderation", rank=8, seed=2, use_rslora=True),
        ]
        for name in FAMILY_NAMES
    }


class TestMixedBatch:
    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_each_row_gets_its_own_adapter_as_the_merged_model_would(
        self, family: str, tiny_model_dirs: dict[str, Path], adapters: dict[str, list[Path]]
    ) -> None:
        model_dir = tiny_model_dirs[family]
        receipts, moderation = adapters[family]
        input_ids = torch.randint(10, 200, (3, SEQUENCE_LENGTH), generator=torch.Generator().manual_seed(0))
        expected = [
            merged_hidden(model_dir, adapter, input_ids[row : row + 1])[0]
            for row, adapter in enumerate((None, receipts, moderation))
        ]

        text_model = served_text_model(model_dir)
        pool = AdapterPool(text_model, FAMILIES[family].lora_targets, max_loaded=2, max_rank=8)
        for path in (receipts, moderation):
            pool.register(load_peft_adapter(path.name, path, text_model, pool.max_rank))
        pool.step.groups = [(pool.slot("receipts"), rows_of(1)), (pool.slot("moderation"), rows_of(2))]
        with torch.inference_mode():
            served = text_model(input_ids=input_ids).last_hidden_state

        for row in range(3):
            torch.testing.assert_close(served[row], expected[row], rtol=1e-4, atol=1e-4)
        # The adapters changed something: a row served without its adapter would not match.
        assert not torch.allclose(expected[0], expected[1], atol=1e-3)
        assert not torch.allclose(expected[1], expected[2], atol=1e-3)

    def test_no_groups_is_the_base_model(
        self, tiny_model_dirs: dict[str, Path], adapters: dict[str, list[Path]]
    ) -> None:
        model_dir = tiny_model_dirs["glm4v"]
        input_ids = torch.arange(10, 10 + SEQUENCE_LENGTH).unsqueeze(0)
        text_model = served_text_model(model_dir)
        pool = AdapterPool(text_model, FAMILIES["glm4v"].lora_targets, max_loaded=1, max_rank=8)
        receipts = adapters["glm4v"][0]
        pool.register(load_peft_adapter("receipts", receipts, text_model, 8))
        pool.slot("receipts")
        with torch.inference_mode():
            served = text_model(input_ids=input_ids).last_hidden_state
        torch.testing.assert_close(served, merged_hidden(model_dir, None, input_ids))


class TestPool:
    @pytest.fixture
    def pool(self, tiny_model_dirs: dict[str, Path], adapters: dict[str, list[Path]]) -> AdapterPool:
        text_model = served_text_model(tiny_model_dirs["glm4v"])
        pool = AdapterPool(text_model, FAMILIES["glm4v"].lora_targets, max_loaded=1, max_rank=8)
        for path in adapters["glm4v"]:
            pool.register(load_peft_adapter(path.name, path, text_model, 8))
        return pool

    def test_the_least_recently_used_adapter_leaves_when_slots_run_out(self, pool: AdapterPool) -> None:
        first = pool.slot("receipts")
        assert pool.slot("receipts") == first  # resident: no reload
        assert pool.slot("moderation") == first  # the one slot, taken over
        layer = next(iter(pool.layers.values()))
        assert torch.count_nonzero(layer.a[0]) == 0  # the base slot is never given out

    def test_an_adapter_a_running_sequence_holds_is_never_evicted(self, pool: AdapterPool) -> None:
        pool.slot("receipts")
        with pytest.raises(PoolFullError):
            pool.slot("moderation", in_use={"receipts"})
        assert pool.names == ["moderation", "receipts"]

    def test_unregistering_frees_the_slot(self, pool: AdapterPool) -> None:
        pool.slot("receipts")
        pool.unregister("receipts")
        assert pool.names == ["moderation"]
        pool.slot("moderation", in_use={"receipts"})  # the freed slot, nothing to evict


class TestBadAdapters:
    """Each is refused with a message that names the problem, before it reaches a slot."""

    @pytest.fixture
    def glm_text_model(self, tiny_model_dirs: dict[str, Path]) -> Any:
        return served_text_model(tiny_model_dirs["glm4v"])

    def test_rank_over_the_limit(self, glm_text_model: Any, adapters: dict[str, list[Path]]) -> None:
        with pytest.raises(AdapterError, match="rank 8 is over this server's limit of 4"):
            load_peft_adapter("moderation", adapters["glm4v"][1], glm_text_model, max_rank=4)

    def test_another_base_model(self, glm_text_model: Any, adapters: dict[str, list[Path]]) -> None:
        with pytest.raises(AdapterError, match="another base model"):
            load_peft_adapter("qwen", adapters["qwen2_5_vl"][0], glm_text_model, max_rank=8)

    def test_missing_weights(self, glm_text_model: Any, adapters: dict[str, list[Path]], tmp_path: Path) -> None:
        (tmp_path / "adapter_config.json").write_bytes((adapters["glm4v"][0] / "adapter_config.json").read_bytes())
        with pytest.raises(AdapterError, match=r"has no adapter_model\.safetensors"):
            load_peft_adapter("broken", tmp_path, glm_text_model, max_rank=8)

    def test_missing_config(self, glm_text_model: Any, tmp_path: Path) -> None:
        with pytest.raises(AdapterError, match=r"has no adapter_config\.json"):
            load_peft_adapter("broken", tmp_path, glm_text_model, max_rank=8)

    def test_corrupt_safetensors(self, glm_text_model: Any, adapters: dict[str, list[Path]], tmp_path: Path) -> None:
        (tmp_path / "adapter_config.json").write_bytes((adapters["glm4v"][0] / "adapter_config.json").read_bytes())
        (tmp_path / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
        with pytest.raises(AdapterError, match="cannot be read"):
            load_peft_adapter("broken", tmp_path, glm_text_model, max_rank=8)

    def test_vision_tower_targets(self, tiny_model_dirs: dict[str, Path], tmp_path: Path, glm_text_model: Any) -> None:
        torch.manual_seed(0)
        config = LoraConfig(r=2, target_modules=r".*visual.*\.(gate_proj|up_proj|down_proj)", init_lora_weights=False)
        get_peft_model(full_model(tiny_model_dirs["glm4v"]), config).save_pretrained(str(tmp_path))
        with pytest.raises(AdapterError, match="vision tower"):
            load_peft_adapter("vision", tmp_path, glm_text_model, max_rank=8)

    @pytest.mark.parametrize(
        ("option", "value"), [("use_dora", True), ("bias", "all"), ("modules_to_save", ["lm_head"])]
    )
    def test_options_a_per_token_update_cannot_express(
        self, option: str, value: Any, glm_text_model: Any, adapters: dict[str, list[Path]], tmp_path: Path
    ) -> None:
        source = adapters["glm4v"][0]
        config = json.loads((source / "adapter_config.json").read_text()) | {option: value}
        (tmp_path / "adapter_config.json").write_text(json.dumps(config))
        (tmp_path / "adapter_model.safetensors").write_bytes((source / "adapter_model.safetensors").read_bytes())
        with pytest.raises(AdapterError, match=f"{option}=.* is not supported"):
            load_peft_adapter("odd", tmp_path, glm_text_model, max_rank=8)

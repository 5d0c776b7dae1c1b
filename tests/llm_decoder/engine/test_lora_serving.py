"""The engine answering with LoRA adapters: a request's greedy tokens under an adapter equal those of the same
adapter merged into the weights and served as a plain model, also while base rows and another adapter's rows
share its steps; the same prompt under two adapters never shares KV blocks; unknown, busy and unloaded
adapters are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.llm_engine import AdapterInUseError
from services.local_pipeline import image_question
from services.messages import AdapterNotFoundError, SamplingParams
from services.models.language_half import LanguageHalf
from services.models.lora import AdapterError
from tests.conftest import FAMILY_NAMES
from tests.llm_decoder.engine.engine_runs import output_token_ids, run_to_completion
from tests.models.lora_adapters import make_adapter, merged_model_dir

CPU = torch.device("cpu")
PARAMS = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
QUESTION = image_question("What is the total of this receipt? Answer in full sentences.", 0)


def alone(language: LanguageHalf, adapter: str | None = None, adapters: dict[str, Path] | None = None) -> list[int]:
    engine = LLMEngine(language, EngineConfig(max_num_seqs=4, max_model_len=512, max_loras=2, max_lora_rank=8))
    for name, path in (adapters or {}).items():
        engine.load_adapter(name, path)
    engine.add_request("alone", QUESTION, [], PARAMS, adapter=adapter)
    return output_token_ids(run_to_completion(engine)["alone"])


@pytest.fixture(scope="module")
def served(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("lora-serving")
    result = {}
    for family in FAMILY_NAMES:
        base = tiny_model_dirs[family]
        adapters = {
            "receipts": make_adapter(base, root / family / "receipts", rank=4, seed=11),
            "moderation": make_adapter(base, root / family / "moderation", rank=8, seed=12),
        }
        merged = {
            name: merged_model_dir(base, path, root / family / f"merged-{name}") for name, path in adapters.items()
        }
        result[family] = {"base": base, "adapters": adapters, "merged": merged}
    return result


class TestAnswersWithAdapters:
    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_a_batch_of_two_adapters_and_the_base_gives_each_row_its_merged_models_answer(
        self, family: str, served: dict[str, dict]
    ) -> None:
        setup = served[family]
        language = LanguageHalf(setup["base"], CPU)
        expected = {None: alone(language)} | {
            name: alone(LanguageHalf(path, CPU)) for name, path in setup["merged"].items()
        }
        assert len(set(map(tuple, expected.values()))) == 3  # the adapters change the answer

        # Prompt chunks of 7 tokens: adapter rows are prefilled beside other adapters' decodes.
        config = EngineConfig(max_num_seqs=4, max_model_len=512, max_num_batched_tokens=7, max_loras=2, max_lora_rank=8)
        engine = LLMEngine(language, config)
        for name, path in setup["adapters"].items():
            engine.load_adapter(name, path)
        for index, adapter in enumerate((None, "receipts", "moderation", "receipts")):
            engine.add_request(f"r{index}", QUESTION, [], PARAMS, adapter=adapter)
        outputs = run_to_completion(engine)
        answers = [output_token_ids(outputs[f"r{index}"]) for index in range(4)]
        assert answers == [expected[None], expected["receipts"], expected["moderation"], expected["receipts"]]
        # One prompt under two adapters (and the base): only the same adapter's second request reused KV.
        reused = [outputs[f"r{index}"][-1].num_reused_tokens for index in range(4)]
        assert reused[:3] == [0, 0, 0]

    def test_an_adapter_waits_for_a_slot_when_two_others_hold_them(
        self, served: dict[str, dict], tmp_path: Path
    ) -> None:
        setup = served["glm4v"]
        language = LanguageHalf(setup["base"], CPU)
        third = make_adapter(setup["base"], tmp_path / "third", rank=2, seed=13)
        engine = LLMEngine(language, EngineConfig(max_num_seqs=4, max_model_len=512, max_loras=2, max_lora_rank=8))
        for name, path in (*setup["adapters"].items(), ("third", third)):
            engine.load_adapter(name, path)
        for name in ("receipts", "moderation", "third"):
            engine.add_request(name, QUESTION, [], PARAMS, adapter=name)
        engine.step()
        assert sorted(str(s.adapter) for s in engine.scheduler.running) == ["moderation", "receipts"]
        outputs = run_to_completion(engine)
        assert output_token_ids(outputs["third"]) == alone(language, "third", {"third": third})


class TestRefusals:
    def test_an_unknown_adapter_is_not_found(self, served: dict[str, dict]) -> None:
        engine = LLMEngine(LanguageHalf(served["glm4v"]["base"], CPU), EngineConfig(max_loras=1))
        with pytest.raises(AdapterNotFoundError):
            engine.add_request("r", QUESTION, [], PARAMS, adapter="nobody")

    def test_an_adapter_answering_requests_cannot_be_unloaded_or_replaced(self, served: dict[str, dict]) -> None:
        setup = served["glm4v"]
        engine = LLMEngine(LanguageHalf(setup["base"], CPU), EngineConfig(max_loras=1, max_lora_rank=8))
        engine.load_adapter("receipts", setup["adapters"]["receipts"])
        engine.add_request("r", QUESTION, [], PARAMS, adapter="receipts")
        with pytest.raises(AdapterInUseError):
            engine.unload_adapter("receipts")
        with pytest.raises(AdapterInUseError):
            engine.load_adapter("receipts", setup["adapters"]["moderation"])
        run_to_completion(engine)
        engine.unload_adapter("receipts")
        assert engine.adapter_names == []
        with pytest.raises(AdapterNotFoundError):
            engine.add_request("again", QUESTION, [], PARAMS, adapter="receipts")

    def test_a_decoder_without_adapter_slots_refuses_to_load_one(self, served: dict[str, dict]) -> None:
        setup = served["glm4v"]
        engine = LLMEngine(LanguageHalf(setup["base"], CPU), EngineConfig())
        with pytest.raises(AdapterError, match="serves no LoRA adapters"):
            engine.load_adapter("receipts", setup["adapters"]["receipts"])

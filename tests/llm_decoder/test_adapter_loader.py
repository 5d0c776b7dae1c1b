"""A decoder replica reads a LoRA adapter when a request first names it: from under its adapter root only,
once however many requests wait for it, never changing an answer underway (a load under the same name is
another revision), and keeping at most `max_held` adapters, never one a request holds."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import torch

from services.llm_decoder.adapter_loader import AdapterLoading
from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import (
    CONFIGURED_REVISION,
    AdapterLoadError,
    AdapterRef,
    DecodeRequest,
    RequestOutput,
    SamplingParams,
)
from services.models.language_half import LanguageHalf
from tests.models.lora_adapters import make_adapter

GREEDY = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
CONFIG = EngineConfig(max_num_seqs=4, max_model_len=256, max_loras=2, max_lora_rank=8)


@pytest.fixture(scope="module")
def language(tiny_model_dirs: dict[str, Path]) -> LanguageHalf:
    return LanguageHalf(tiny_model_dirs["glm4v"], torch.device("cpu"))


@pytest.fixture(scope="module")
def root(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adapter-root")
    for seed, name in enumerate(["receipts", "moderation", "travel"]):
        make_adapter(tiny_model_dirs["glm4v"], root / name, rank=4, seed=30 + seed)
    return root


def engine_with(language: LanguageHalf, loading: AdapterLoading) -> AsyncLLMEngine:
    return AsyncLLMEngine(LLMEngine(language, CONFIG), stream_interval_s=0, adapters=loading)


async def answer(engine: AsyncLLMEngine, ref: AdapterRef | None, request_id: str = "r") -> list[int]:
    request = DecodeRequest(request_id, image_question("What is the total?", 0), GREEDY, adapter=ref)
    outputs = [output async for output in engine.generate(request, [])]
    return list(RequestOutput.joined(outputs).token_ids)


def ref(name: str, path: str | Path, revision: str = "1") -> AdapterRef:
    return AdapterRef(name, str(path), revision)


async def test_a_request_naming_an_adapter_under_the_root_is_answered_as_a_configured_one_would_be(
    language: LanguageHalf, root: Path
) -> None:
    configured = ref("receipts", root / "receipts", CONFIGURED_REVISION)
    expected = await answer(engine_with(language, AdapterLoading([configured])), configured)
    engine = engine_with(language, AdapterLoading(root=root))
    assert await answer(engine, ref("receipts", "receipts")) == expected  # relative to the root
    assert await answer(engine, None) != expected


async def test_paths_outside_the_root_and_loading_without_a_root_are_refused(
    language: LanguageHalf, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(root / "receipts", outside)
    (root / "sneaky").symlink_to(outside)
    engine = engine_with(language, AdapterLoading(root=root))
    try:
        for path in ["../outside", str(outside), "sneaky"]:
            with pytest.raises(AdapterLoadError, match="not under the adapter root"):
                await engine.check_adapter(ref("escape", path))
    finally:
        (root / "sneaky").unlink()
    with pytest.raises(AdapterLoadError, match="no adapter root"):
        await engine_with(language, AdapterLoading()).check_adapter(ref("receipts", root / "receipts"))


async def test_a_bad_adapter_is_refused_and_the_engine_serves_on(
    language: LanguageHalf, root: Path, tiny_model_dirs: dict[str, Path]
) -> None:
    corrupt = root / "corrupt"
    shutil.copytree(root / "receipts", corrupt)
    (corrupt / "adapter_model.safetensors").write_bytes(b"not safetensors")
    make_adapter(tiny_model_dirs["glm4v"], root / "too-wide", rank=16, seed=5)
    make_adapter(tiny_model_dirs["qwen2_5_vl"], root / "other-base", rank=4, seed=6)
    engine = engine_with(language, AdapterLoading(root=root))
    for name, reason in [
        ("missing", "has no adapter_config.json"),
        ("corrupt", "adapter_model.safetensors cannot be read"),
        ("too-wide", "rank 16 is over this server's limit of 8"),
        ("other-base", "another base model"),
    ]:
        with pytest.raises(AdapterLoadError, match=reason):
            await engine.check_adapter(ref(name, name))
    assert len(await answer(engine, ref("receipts", "receipts"))) == GREEDY.max_tokens
    assert engine.is_healthy


async def test_requests_waiting_for_one_adapter_read_it_once(
    language: LanguageHalf, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_with(language, AdapterLoading(root=root))
    llm_engine = engine._engine
    reads: list[str] = []
    read = llm_engine.read_adapter
    monkeypatch.setattr(llm_engine, "read_adapter", lambda name, path: reads.append(name) or read(name, path))
    receipts = ref("receipts", "receipts")
    answers = await asyncio.gather(*(answer(engine, receipts, f"r{i}") for i in range(4)))
    assert reads == [receipts.key]
    assert all(tokens == answers[0] for tokens in answers)


async def test_a_new_revision_never_changes_an_answer_underway(language: LanguageHalf, root: Path) -> None:
    first, second = ref("receipts", "receipts", "1"), ref("receipts", "moderation", "2")
    reference = engine_with(language, AdapterLoading(root=root))
    alone_first, alone_second = await answer(reference, first), await answer(reference, second)
    assert alone_first != alone_second
    engine = engine_with(language, AdapterLoading(root=root))
    request = DecodeRequest("long", image_question("What is the total?", 0), GREEDY, adapter=first)
    stream = engine.generate(request, [])
    first_output = await anext(stream)  # the first revision is answering ...
    assert await answer(engine, second, "new") == alone_second  # ... while the second loads and answers
    rest = [first_output, *[output async for output in stream]]
    assert list(RequestOutput.joined(rest).token_ids) == alone_first


async def test_at_most_max_held_adapters_stay_and_a_held_one_is_never_dropped(
    language: LanguageHalf, root: Path
) -> None:
    engine = engine_with(language, AdapterLoading(root=root, max_held=2))
    receipts, moderation, travel = (ref(name, name) for name in ["receipts", "moderation", "travel"])
    held = DecodeRequest("held", image_question("What is the total?", 0), GREEDY, adapter=receipts)
    stream = engine.generate(held, [])
    await anext(stream)
    await answer(engine, moderation)
    await answer(engine, travel)  # three registered, one more than max_held: the idle moderation goes
    registered = engine._engine.adapter_names
    assert receipts.key in registered and moderation.key not in registered and len(registered) == 2
    [output async for output in stream]
    assert len(await answer(engine, moderation)) == GREEDY.max_tokens  # read again when named again
    assert len(engine._engine.adapter_names) == 2

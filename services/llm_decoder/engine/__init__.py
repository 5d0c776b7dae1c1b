"""Continuous batching over the language half: scheduler, KV blocks, sampler, output processing.

The messages it takes and gives (`DecodeRequest`, `SamplingParams`, `RequestOutput`, its errors) are in
`services.messages`."""

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.llm_engine import EngineStats, LLMEngine
from services.llm_decoder.engine.step_failed import StepFailed
from services.llm_decoder.engine.token_output import TokenOutput

__all__ = ["EngineConfig", "EngineStats", "LLMEngine", "StepFailed", "TokenOutput"]

"""Continuous batching over the language half: scheduler, KV slots, sampler, output processing."""

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.decode_request import DecodeRequest
from services.llm_decoder.engine.errors import (
    ContextLengthError,
    EngineError,
    GrammarError,
    QueueFullError,
    StepError,
    StepFailed,
)
from services.llm_decoder.engine.llm_engine import EngineStats, LLMEngine
from services.llm_decoder.engine.outputs import RequestOutput, TokenOutput
from services.llm_decoder.engine.sampling_params import SamplingParams

__all__ = [
    "ContextLengthError",
    "DecodeRequest",
    "EngineConfig",
    "EngineError",
    "EngineStats",
    "GrammarError",
    "LLMEngine",
    "QueueFullError",
    "RequestOutput",
    "SamplingParams",
    "StepError",
    "StepFailed",
    "TokenOutput",
]

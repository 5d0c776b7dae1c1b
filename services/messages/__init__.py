"""The messages the gateway, the vision encoder and the LLM decoder exchange, and the errors that travel back.

Torch-free by rule (tests/test_import_rules.py): the gateway imports these and no model code."""

from services.messages.adapter_ref import CONFIGURED_REVISION, AdapterRef
from services.messages.decode_request import DecodeRequest
from services.messages.decoder_errors import (
    AdapterLoadError,
    AdapterNotFoundError,
    ContextLengthError,
    EngineDeadError,
    EngineError,
    GrammarError,
    PromptError,
    QueueFullError,
    StepError,
)
from services.messages.encode_request import EncodeRequest
from services.messages.grammar_spec import GrammarSpec
from services.messages.raw_image import RawImage
from services.messages.request_output import RequestOutput
from services.messages.sampling_params import SamplingParams

__all__ = [
    "CONFIGURED_REVISION",
    "AdapterLoadError",
    "AdapterNotFoundError",
    "AdapterRef",
    "ContextLengthError",
    "DecodeRequest",
    "EncodeRequest",
    "EngineDeadError",
    "EngineError",
    "GrammarError",
    "GrammarSpec",
    "PromptError",
    "QueueFullError",
    "RawImage",
    "RequestOutput",
    "SamplingParams",
    "StepError",
]

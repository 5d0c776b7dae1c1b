"""The message from the gateway to the LLM decoder (the images travel beside it, by reference)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.messages.adapter_ref import AdapterRef
from services.messages.sampling_params import SamplingParams
from services.telemetry.tracing import TraceCarrier


@dataclass(frozen=True)
class DecodeRequest:
    request_id: str
    messages: list[dict[str, Any]]  # chat-template messages; each image part is a bare {"type": "image"}
    params: SamplingParams
    enable_thinking: bool = False
    deadline: float | None = None  # wall-clock seconds; a request that reaches the decoder later is refused
    trace_context: TraceCarrier = field(default_factory=dict)  # the gateway's span, parent of the decoder's
    affinity_key: str | None = None  # the conversation's: its turns go to the replica holding its KV (services/routing)
    adapter: AdapterRef | None = None  # the LoRA adapter to answer with (services/models/lora); None: the base model

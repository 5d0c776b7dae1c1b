"""Sizing of one decoder engine."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

# One step's token budget when none is configured. A CPU step's time grows with its tokens: at 192, a step
# with prompt chunks keeps a running stream's worst gap near 3x its usual one (bench/arrival_benchmark.py).
# A GPU's step time stays nearly flat up to a few thousand tokens (decode is bound by reading the weights).
DEFAULT_BATCHED_TOKENS = {"cpu": 192, "cuda": 4096}

# How decode-only steps run (decode_graphs.py): "auto" replays CUDA graphs on a GPU and runs eagerly elsewhere;
# "off" runs every step eagerly at its own shapes; "uncaptured" runs the graphs' fixed shapes eagerly, on any
# device (how the CPU tests check the graph path; on a GPU it tells a capture problem from a shape one).
DecodeGraphs = Literal["auto", "off", "uncaptured"]


@dataclass(frozen=True)
class EngineConfig:
    """`max_num_seqs` sequences run together, each up to `max_model_len` tokens (prompt + output); at most
    `max_waiting` more wait for a slot, beyond which requests are refused at once.

    `max_num_batched_tokens` is one step's token budget: every decoding sequence's next token comes first,
    and prompt chunks fill the rest, so a burst of long prompts costs the running streams at most one
    budget-sized step per token, never a whole prompt (a longer prompt is prefilled over several steps). It
    trades the running streams' worst gap against how fast prompts are absorbed (None:
    `DEFAULT_BATCHED_TOKENS` of the device). `step_time_target_ms` also bounds a step's time: prompt chunks
    are cut to what the steps so far say fits in it (step_cost.py), though the step's first chunk always gets
    a block's worth, so prompts go on whatever the decodes cost (0, the default: no time target; on a 2-core CPU
    host, 100 ms cut a running stream's worst gap beside 2.6k-token arrivals but made those arrivals wait
    longer for their first tokens, docs/performance.md).

    The KV cache is a pool of blocks: `kv_cache_bytes` of them on any device, or, when it is None, on a GPU
    `gpu_memory_utilization` of its memory less what the weights took, and on a CPU room for `max_num_seqs`
    sequences of `max_model_len`. `enable_prefix_caching` keeps full blocks findable by content for the
    prompts that start with them (follow-up questions, one image asked about twice). `attention_backend`
    names the backend (None: the fastest one available on the device). `decode_graphs` says how decode-only
    steps run (`DecodeGraphs`). `startup_self_check` compares the
    engine's incremental decode with a full forward before it serves (self_check.py) and refuses to start if
    they differ."""

    max_num_seqs: int = 16
    max_model_len: int = 4096
    max_waiting: int = 64
    max_num_batched_tokens: int | None = None
    step_time_target_ms: float = 0.0
    enable_prefix_caching: bool = True
    attention_backend: str | None = None
    kv_cache_bytes: int | None = None
    gpu_memory_utilization: float = 0.9
    decode_graphs: DecodeGraphs = "auto"
    startup_self_check: bool = True
    max_loras: int = 0  # LoRA adapters resident at once (their slots); 0: no adapters are served
    max_lora_rank: int = 16

    @property
    def max_requests(self) -> int:
        """Requests one engine holds at once, decoding or waiting for a slot."""
        return self.max_num_seqs + self.max_waiting

    def for_device(self, device_type: str) -> EngineConfig:
        """This config with the token budget filled in for a device."""
        if self.max_num_batched_tokens is not None:
            return self
        budget = DEFAULT_BATCHED_TOKENS.get(device_type, DEFAULT_BATCHED_TOKENS["cpu"])
        return replace(self, max_num_batched_tokens=max(budget, self.max_num_seqs))

    def decode_graph_mode(self, device_type: str) -> Literal["captured", "uncaptured"] | None:
        """How this config's decode-only steps run on a device: replayed from captured graphs, at the graphs'
        shapes but eagerly, or (None) at their own shapes."""
        if self.decode_graphs == "auto":
            return "captured" if device_type == "cuda" else None
        return "uncaptured" if self.decode_graphs == "uncaptured" else None

    @property
    def token_budget(self) -> int:
        if self.max_num_batched_tokens is None:
            raise ValueError("the token budget is set by for_device")
        return self.max_num_batched_tokens

    def __post_init__(self) -> None:
        if self.step_time_target_ms < 0:
            raise ValueError(f"step_time_target_ms must be at least 0 (0: none), not {self.step_time_target_ms}")
        if self.max_loras < 0 or self.max_lora_rank < 1:
            raise ValueError(f"invalid LoRA sizes: {self}")
        if self.max_num_seqs < 1 or self.max_model_len < 2 or self.max_waiting < 0:
            raise ValueError(f"invalid engine sizes: {self}")
        if self.decode_graphs not in ("auto", "off", "uncaptured"):
            raise ValueError(f"decode_graphs must be auto, off or uncaptured, not {self.decode_graphs!r}")
        if (self.kv_cache_bytes is not None and self.kv_cache_bytes < 1) or not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"invalid KV cache size: {self}")
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < self.max_num_seqs:
            # Below this, the decoding sequences alone could fill a step and a prompt would never get a chunk.
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be at least "
                f"max_num_seqs ({self.max_num_seqs})"
            )

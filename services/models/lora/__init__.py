"""LoRA adapters on the language model: loaded from PEFT's format, kept in a bounded pool of slots, applied per
token so that rows of different adapters (and of the base) share one forward."""

from services.models.lora.adapter_pool import AdapterPool, PoolFullError
from services.models.lora.lora_linear import LoRALinear
from services.models.lora.peft_adapter import AdapterError, LoRAAdapter, load_peft_adapter

__all__ = ["AdapterError", "AdapterPool", "LoRAAdapter", "LoRALinear", "PoolFullError", "load_peft_adapter"]

"""The adapters a replica knows, and the few of them resident in the wrapped layers' slots.

Registering an adapter keeps its weights on the host; a step that needs it takes a slot (slot 0 is the base
and never given out), evicting the least recently used adapter that no running sequence holds. Registering,
unregistering and slot changes happen between steps, on the engine's thread."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable

import torch

from services.models.lora.lora_linear import LoRALinear, LoRAStep
from services.models.lora.peft_adapter import AdapterError, LoRAAdapter

BASE_SLOT = 0


class PoolFullError(RuntimeError):
    """Every slot holds an adapter that a running sequence needs: the request waits for one to finish."""


class AdapterPool:
    def __init__(self, text_model: torch.nn.Module, targets: Iterable[str], max_loaded: int, max_rank: int) -> None:
        """Wraps every linear layer of `text_model` whose name ends in one of `targets` (e.g. `q_proj`)."""
        if max_loaded < 1 or max_rank < 1:
            raise ValueError(f"max_loaded ({max_loaded}) and max_rank ({max_rank}) must be positive")
        self.max_rank = max_rank
        self.step = LoRAStep()
        self.layers = _wrap(text_model, set(targets), self.step, max_loaded + 1, max_rank)
        self._known: dict[str, LoRAAdapter] = {}
        self._resident: OrderedDict[str, int] = OrderedDict()  # adapter -> slot, least recently used first
        self._free = list(range(max_loaded, BASE_SLOT, -1))

    @property
    def names(self) -> list[str]:
        return sorted(self._known)

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def digest(self, name: str) -> bytes:
        return self._known[name].digest

    def register(self, adapter: LoRAAdapter) -> None:
        """Add or replace an adapter (a replaced one leaves its slot, so its next step loads the new weights)."""
        unknown = set(adapter.weights) - set(self.layers)
        if unknown:
            raise AdapterError(f"adapter {adapter.name!r} targets layers this server does not adapt: {sorted(unknown)}")
        self._evict(adapter.name)
        self._known[adapter.name] = adapter

    def unregister(self, name: str) -> None:
        self._evict(name)
        del self._known[name]

    def slot(self, name: str, in_use: Collection[str] = ()) -> int:
        """The slot holding adapter `name`, loading it first if needed. `in_use`: adapters that must stay."""
        if name in self._resident:
            self._resident.move_to_end(name)
            return self._resident[name]
        adapter = self._known[name]
        if not self._free:
            victim = next((held for held in self._resident if held not in in_use), None)
            if victim is None:
                raise PoolFullError(f"all {len(self._resident)} adapter slots are held by running sequences")
            self._evict(victim)
        slot = self._free.pop()
        for module, layer in self.layers.items():
            weights = adapter.weights.get(module)
            layer.load(slot, None if weights is None else weights.a, None if weights is None else weights.b)
        self._resident[name] = slot
        return slot

    def _evict(self, name: str) -> None:
        slot = self._resident.pop(name, None)
        if slot is not None:
            self._free.append(slot)


def _wrap(
    text_model: torch.nn.Module, targets: set[str], step: LoRAStep, slots: int, max_rank: int
) -> dict[str, LoRALinear]:
    wrapped: dict[str, LoRALinear] = {}
    # A second pool over the same text model (another engine on one language half) replaces the first's wrappers.
    for name, module in list(text_model.named_modules()):
        if isinstance(module, LoRALinear):
            module = module.base
        elif not isinstance(module, torch.nn.Linear):
            continue
        if name.rsplit(".", 1)[-1] in targets:
            parent_name, _, attribute = name.rpartition(".")
            layer = LoRALinear(module, step, slots, max_rank)
            setattr(text_model.get_submodule(parent_name), attribute, layer)
            wrapped[name] = layer
    if not wrapped:
        raise ValueError(f"no linear layer of the text model is named {sorted(targets)}")
    return wrapped

"""A LoRA adapter as a request names it to the decoders: which adapter, where its files are, which load of it."""

from __future__ import annotations

from dataclasses import dataclass

# The revision of the adapters an operator configured (decoder.lora.adapters): every gateway and decoder replica
# derives it alike, so a replica that started with them serves them without reading them again.
CONFIGURED_REVISION = "configured"


@dataclass(frozen=True)
class AdapterRef:
    name: str  # the model id clients send
    path: str  # the adapter directory, as the decoder replicas see their filesystem
    revision: str  # one load of it: loading a name again gives a new revision, with KV and cached answers of its own

    @property
    def key(self) -> str:
        """What the decoder's engine, its KV block hashes and the response cache know this load of it by."""
        return f"{self.name}@{self.revision}"

"""What the provenance check found in one image, and the policy's verdict on it, in two wire forms: a short
header value and a JSON object for the response body."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.provenance.c2pa_reader import C2paValidation
from services.provenance.options import FindingKind, PolicyAction

HEADER_NAME = "x-flashvqa-provenance"


class WatermarkStatus(StrEnum):
    DETECTED = "detected"
    NOT_DETECTED = "not-detected"
    SKIPPED_TOO_LARGE = "skipped-too-large"  # over `watermark_max_pixels`: a photo, not a generator output
    SKIPPED_TOO_SMALL = "skipped-too-small"  # under 256x256 pixels: generators cannot mark it
    SKIPPED_UNDECODABLE = "skipped-undecodable"
    DISABLED = "disabled"


@dataclass(frozen=True)
class ProvenanceReport:
    """Findings for one image. Every field but `c2pa_claim_generator` comes from a fixed vocabulary."""

    action: PolicyAction
    findings: tuple[FindingKind, ...]
    c2pa_present: bool
    c2pa_validation: C2paValidation | None
    c2pa_claim_generator: str | None
    ai_generated_claim: bool
    ai_metadata: tuple[str, ...]
    watermark_status: WatermarkStatus
    watermark_payload: str | None = None
    watermark_matched_bits: str | None = None  # e.g. "48/48"

    @classmethod
    def disabled(cls) -> ProvenanceReport:
        return cls(PolicyAction.ALLOW, (), False, None, None, False, (), WatermarkStatus.DISABLED)

    @property
    def invisible_watermark(self) -> bool:
        return self.watermark_status is WatermarkStatus.DETECTED

    @property
    def summary(self) -> str:
        """The `x-flashvqa-provenance` header value, e.g.
        `flag; c2pa=valid; c2pa-ai; metadata=png-text:parameters; watermark=stable-diffusion-xl`.
        The claim generator stays out: it is text from the file."""
        parts = [self.action.value]
        if self.c2pa_present:
            parts.append(f"c2pa={self.c2pa_validation.value if self.c2pa_validation else 'unread'}")
        if self.ai_generated_claim:
            parts.append("c2pa-ai")
        if self.ai_metadata:
            parts.append("metadata=" + ",".join(self.ai_metadata))
        parts.append(f"watermark={self.watermark_payload or self.watermark_status.value}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the response's `provenance` field."""
        return {
            "action": self.action.value,
            "findings": [kind.value for kind in self.findings],
            "c2pa": {
                "present": self.c2pa_present,
                "validation": self.c2pa_validation.value if self.c2pa_validation else None,
                "claim_generator": self.c2pa_claim_generator,
                "ai_generated": self.ai_generated_claim,
            },
            "ai_metadata": list(self.ai_metadata),
            "invisible_watermark": {
                "detected": self.invisible_watermark,
                "status": self.watermark_status.value,
                "payload": self.watermark_payload,
                "matched_bits": self.watermark_matched_bits,
            },
        }

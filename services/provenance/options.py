"""The provenance check's settings: what to look for, how far, and what each kind of finding does."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class PolicyAction(StrEnum):
    """What the gateway does with a request whose image carries a finding, mildest first."""

    ALLOW = "allow"
    FLAG = "flag"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {PolicyAction.ALLOW: 0, PolicyAction.FLAG: 1, PolicyAction.BLOCK: 2}


class FindingKind(StrEnum):
    """The kinds of provenance finding; each names the policy field that decides its action."""

    C2PA_AI_CLAIM = "c2pa_ai_claim"
    C2PA_MANIFEST = "c2pa_manifest"
    AI_METADATA = "ai_metadata"
    INVISIBLE_WATERMARK = "invisible_watermark"


class ProvenancePolicy(BaseModel):
    """One action per kind of finding; the request gets the most severe action among its findings."""

    model_config = ConfigDict(extra="forbid")

    c2pa_ai_claim: PolicyAction = Field(
        PolicyAction.FLAG, description="a C2PA manifest asserts AI generation (IPTC trainedAlgorithmicMedia)"
    )
    c2pa_manifest: PolicyAction = Field(
        PolicyAction.ALLOW, description="a C2PA manifest that asserts no AI generation (a camera, an editor)"
    )
    ai_metadata: PolicyAction = Field(
        PolicyAction.FLAG, description="unsigned generator metadata: PNG text chunks, XMP DigitalSourceType, EXIF"
    )
    invisible_watermark: PolicyAction = Field(
        PolicyAction.FLAG, description="a known generator's DWT-DCT invisible watermark (Stable Diffusion, FLUX)"
    )

    def action_for(self, findings: Iterable[FindingKind]) -> PolicyAction:
        """The most severe action among the findings' actions; allow when there are none."""
        actions: list[PolicyAction] = [getattr(self, kind.value) for kind in findings]
        return max(actions, key=lambda action: action.severity, default=PolicyAction.ALLOW)


class ProvenanceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    read_c2pa: bool = Field(True, description="read and validate a manifest the container scan found (offline)")
    detect_watermark: bool = True
    watermark_max_pixels: int = Field(
        2048 * 2048, ge=0, description="larger images skip the watermark decode: generator outputs are smaller"
    )
    watermark_false_match_rate: float = Field(
        1e-8, gt=0, lt=0.01, description="bits must agree beyond what coin flips reach at this rate (43 of 48)"
    )
    max_scan_bytes: int = Field(32 << 20, ge=1024, description="the container scan reads no further than this")
    policy: ProvenancePolicy = Field(default_factory=ProvenancePolicy)

"""What the gateway's checks found about one request, for response headers, the response body and logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.provenance import HEADER_NAME as PROVENANCE_HEADER
from services.provenance import ProvenanceReport
from services.safety import Action, SafetyVerdict

SAFETY_FLAGS_HEADER = "x-flashvqa-safety-flags"


@dataclass
class RequestReport:
    flags: list[str] = field(default_factory=list)  # "source:category" of each flagged (served) verdict
    provenance: list[ProvenanceReport] = field(default_factory=list)  # one per image, in request order

    def add(self, verdicts: list[SafetyVerdict]) -> None:
        self.add_flags([f"{v.source}:{v.category}" for v in verdicts if v.action is Action.FLAG])

    def add_flags(self, flags: list[str]) -> None:
        self.flags.extend(flag for flag in dict.fromkeys(flags) if flag not in self.flags)

    def provenance_json(self) -> list[dict[str, Any]] | None:
        return [report.to_json() for report in self.provenance] if self.provenance else None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.flags:
            headers[SAFETY_FLAGS_HEADER] = ",".join(self.flags)
        if self.provenance:  # one summary per image, in request order
            headers[PROVENANCE_HEADER] = " | ".join(report.summary for report in self.provenance)
        return headers

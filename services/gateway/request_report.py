"""What the gateway's checks found about one request, for response headers and logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.safety import Action, SafetyVerdict

SAFETY_FLAGS_HEADER = "x-flashvqa-safety-flags"


@dataclass
class RequestReport:
    flags: list[str] = field(default_factory=list)  # "source:category" of each flagged (served) verdict

    def add(self, verdicts: list[SafetyVerdict]) -> None:
        self.add_flags([f"{v.source}:{v.category}" for v in verdicts if v.action is Action.FLAG])

    def add_flags(self, flags: list[str]) -> None:
        self.flags.extend(flag for flag in dict.fromkeys(flags) if flag not in self.flags)

    def headers(self) -> dict[str, str]:
        return {SAFETY_FLAGS_HEADER: ",".join(self.flags)} if self.flags else {}

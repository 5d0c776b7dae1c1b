"""What the gateway's checks found about one request, for response headers and logs."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.safety import Action, SafetyVerdict

SAFETY_FLAGS_HEADER = "x-flashvqa-safety-flags"


@dataclass
class RequestReport:
    flags: list[str] = field(default_factory=list)  # "source:category" of each flagged (served) verdict

    def add(self, verdicts: list[SafetyVerdict]) -> None:
        for verdict in verdicts:
            flag = f"{verdict.source}:{verdict.category}"
            if verdict.action is Action.FLAG and flag not in self.flags:
                self.flags.append(flag)

    def headers(self) -> dict[str, str]:
        return {SAFETY_FLAGS_HEADER: ",".join(self.flags)} if self.flags else {}

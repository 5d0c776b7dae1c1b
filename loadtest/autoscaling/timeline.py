"""One run's record, written as timeline.json: the phases, both pools' replica counts over time and every
request; the verdict and the plot read it back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest.autoscaling.local_serve import ReplicaSample
from loadtest.autoscaling.scenario import Load, Phase
from loadtest.autoscaling.traffic import RequestRecord


@dataclass(frozen=True)
class PhaseSpan:
    load: Load
    users: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Timeline:
    phases: list[PhaseSpan]
    replicas: list[ReplicaSample]
    requests: list[RequestRecord]
    min_replicas: int
    max_replicas: int

    def write(self, path: Path) -> None:
        data = asdict(self)
        for phase in data["phases"]:
            phase["load"] = phase["load"].value
        path.write_text(json.dumps(data, indent=1))

    @classmethod
    def read(cls, path: Path) -> Timeline:
        data = json.loads(path.read_text())
        return cls(
            phases=[PhaseSpan(**(phase | {"load": Load(phase["load"])})) for phase in data["phases"]],
            replicas=[ReplicaSample(**sample) for sample in data["replicas"]],
            requests=[RequestRecord(**record) for record in data["requests"]],
            min_replicas=data["min_replicas"],
            max_replicas=data["max_replicas"],
        )

    def samples_in(self, phase: PhaseSpan) -> list[ReplicaSample]:
        return [sample for sample in self.replicas if phase.start_s <= sample.seconds < phase.end_s]


def phase_spans(phases: tuple[Phase, ...]) -> list[PhaseSpan]:
    spans, start = [], 0.0
    for phase in phases:
        spans.append(PhaseSpan(phase.load, phase.users, start, start + phase.seconds))
        start += phase.seconds
    return spans

"""Load profiles and their targets (`targets.yaml`): how many users each scenario runs, for how long, and
what its P99s, error rate and throughput must be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from loadtest.scenarios import Scenario

TARGETS_FILE = Path(__file__).with_name("targets.yaml")


class ScenarioTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: int = Field(ge=1, description="concurrent users of this scenario")
    p99_ttft_ms: float | None = Field(None, gt=0, description="time to the first text; streaming only")
    p99_e2e_ms: float | None = Field(None, gt=0, description="request sent to answer complete")
    max_error_rate: float = Field(0.0, ge=0, le=1, description="failed / all requests")
    min_rps: float | None = Field(None, gt=0, description="answered requests per second")


class OverloadTargets(ScenarioTargets):
    p99_refusal_ms: float = Field(gt=0, description="a 429 or 503 must come at least this fast")
    min_refusal_rate: float = Field(gt=0, le=1, description="refused / all requests: proof the load exceeded capacity")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    max_tokens: int = Field(ge=1, description="every answer is this long (ignore_eos), bar /v1/vqa's")
    think_time_s: float = Field(ge=0, description="mean pause between one user's requests")
    request_timeout_s: float = Field(gt=0, description="no answer byte for this long: a timeout, an error")
    steady_seconds: int = Field(gt=0, description="all scenarios but overload, side by side")
    overload_seconds: int = Field(gt=0)
    locust_processes: int = Field(1, ge=1, description="load generator processes (one core each)")
    local_stack: dict[str, Any] = Field(
        default_factory=dict, description="Serve app args over serve_config.yaml when the runner starts the stack"
    )
    steady: dict[Scenario, ScenarioTargets]
    overload: OverloadTargets

    @model_validator(mode="after")
    def _overload_runs_alone(self) -> Profile:
        if Scenario.OVERLOAD in self.steady:
            raise ValueError("overload has its own phase: give its targets under `overload`")
        return self

    def targets(self, scenario: Scenario) -> ScenarioTargets:
        return self.overload if scenario is Scenario.OVERLOAD else self.steady[scenario]


def load_profiles(path: Path = TARGETS_FILE) -> dict[str, Profile]:
    raw = yaml.safe_load(path.read_text())
    return {name: Profile.model_validate(profile) for name, profile in raw["profiles"].items()}

"""What the run must show: each pool grows under its own load, and under the other pool's load it does not
grow and drains back to its minimum; both are at their minimum after the idle phase; and no request failed
while replicas started and drained."""

from __future__ import annotations

from dataclasses import dataclass

from loadtest.autoscaling.local_serve import ReplicaSample
from loadtest.autoscaling.scenario import Load
from loadtest.autoscaling.timeline import PhaseSpan, Timeline

ENCODER, DECODER = "vision_encoder", "llm_decoder"
# Whose load each phase is, and whose it is not.
OWNER = {Load.IMAGE_HEAVY: (ENCODER, DECODER), Load.DECODE_HEAVY: (DECODER, ENCODER)}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def checks(timeline: Timeline, reaction_s: float) -> list[Check]:
    """`reaction_s`: how long after a shift the pools may still act on the previous phase's load (the
    look-back window, the upscale delay and a report's travel)."""
    found = [_no_failures(timeline)]
    for number, phase in enumerate(timeline.phases, start=1):
        samples = timeline.samples_in(phase)
        name = f"phase {number} ({phase.load.value})"
        if not samples:
            found.append(Check(name, False, "no replica counts were recorded"))
        elif phase.load is Load.IDLE:
            found.append(
                _at_minimum(
                    f"{name}: both pools back at the minimum", samples[-1], (ENCODER, DECODER), timeline.min_replicas
                )
            )
        else:
            grows, stays = OWNER[phase.load]
            found.append(_grows(f"{name}: {grows} scales up", samples, grows, timeline.min_replicas))
            found.append(_stays(f"{name}: {stays} does not", phase, samples, stays, reaction_s))
            found.append(
                _at_minimum(
                    f"{name}: {stays} back at the minimum by its end", samples[-1], (stays,), timeline.min_replicas
                )
            )
    return found


def _no_failures(timeline: Timeline) -> Check:
    failed = [record for record in timeline.requests if not record.ok]
    detail = f"{len(timeline.requests)} requests, {len(failed)} failed"
    if failed:
        detail += f"; first: {failed[0].error}"
    return Check("no request failed", bool(timeline.requests) and not failed, detail)


def _grows(name: str, samples: list[ReplicaSample], pool: str, min_replicas: int) -> Check:
    peak = max(sample.running[pool] for sample in samples)
    return Check(name, peak > min_replicas, f"at most {peak} serving (minimum {min_replicas})")


def _stays(name: str, phase: PhaseSpan, samples: list[ReplicaSample], pool: str, reaction_s: float) -> Check:
    settled = phase.start_s + reaction_s
    before = [sample.total[pool] for sample in samples if sample.seconds < settled]
    after = [sample.total[pool] for sample in samples if sample.seconds >= settled]
    if not before or not after:
        return Check(name, False, f"the phase is not longer than the reaction time ({reaction_s} s)")
    detail = f"{before[-1]} replicas {reaction_s:g} s in, at most {max(after)} after"
    return Check(name, max(after) <= before[-1], detail)


def _at_minimum(name: str, last: ReplicaSample, pools: tuple[str, ...], min_replicas: int) -> Check:
    counts = {pool: last.total[pool] for pool in pools}
    return Check(
        name, all(count == min_replicas for count in counts.values()), f"{counts} at the end (minimum {min_replicas})"
    )

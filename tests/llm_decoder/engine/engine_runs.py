"""Driving the synchronous engine in tests: step until every request has finished."""

from __future__ import annotations

from services.llm_decoder.engine import LLMEngine
from services.messages import RequestOutput


def run_to_completion(engine: LLMEngine, max_steps: int = 1000) -> dict[str, list[RequestOutput]]:
    """Each request's outputs, in order; fails if the engine still has work after `max_steps` steps."""
    outputs: dict[str, list[RequestOutput]] = {}
    for _ in range(max_steps):
        if not engine.has_work:
            return outputs
        for output in engine.step():
            outputs.setdefault(output.request_id, []).append(output)
    raise AssertionError("engine did not drain")


def output_token_ids(outputs: list[RequestOutput]) -> list[int]:
    return [token for output in outputs for token in output.token_ids]

"""What telemetry costs: the same whole app (gateway + encoder + engine in one process) served twice, with
tracing off (no OTEL_* set: the no-op tracer) and on (every span exported over OTLP/HTTP to a local
receiver), loaded in alternating rounds; and what the instrumentation costs when tracing is off, timed
call by call, as a share of a request.

    .venv/bin/python -m bench.tracing_overhead_benchmark [--rounds 4] [--requests 24]   (from the repository root)

Targets: tracing off under 2% of throughput, tracing on under 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from bench.serving_load import Server, model_dir, run_level
from bench.timing import say, timed_seconds
from loadtest.server_process import free_port
from services.gateway.telemetry.request_record import stage
from services.telemetry.metrics import metrics
from tests.telemetry.otlp_receiver import otlp_receiver

SERVER = [sys.executable, "bench/in_process_server.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    model = str(model_dir(args.size))
    with otlp_receiver() as (receiver, endpoint):
        tracing_on = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "500"}
        tracing_off = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
        off_port, on_port = free_port(), free_port()
        with (
            Server([*SERVER, model, str(off_port)], off_port, env=tracing_off) as off,
            Server([*SERVER, model, str(on_port)], on_port, env=tracing_on) as on,
        ):
            throughput: dict[str, list[float]] = {"off": [], "on": []}
            for round_index in range(args.rounds):
                for name, server in (("off", off), ("on", on)):
                    level = asyncio.run(
                        run_level(
                            server.url, name, args.concurrency, args.requests, args.max_tokens, seed=1000 * round_index
                        )
                    )
                    throughput[name].append(level.requests_per_s)
                    say(
                        f"round {round_index + 1} tracing {name:>3}: {level.requests_per_s:6.2f} req/s, "
                        f"TTFT p50 {level.ttft_p50_ms:6.1f} ms"
                    )
            time.sleep(1.5)  # the last batch of spans leaves within the schedule delay
            spans_per_request = len(receiver.spans) / (args.rounds * (args.requests + 1))
    off_rps, on_rps = statistics.median(throughput["off"]), statistics.median(throughput["on"])
    say(
        f"\nmedian throughput: tracing off {off_rps:.2f} req/s, on {on_rps:.2f} req/s "
        f"({spans_per_request:.1f} spans exported per request)"
    )
    say(f"tracing on costs {(1 - on_rps / off_rps) * 100:+.1f}% of throughput (target < 10%)")
    off_cost_s = _instrumentation_cost_when_off(round(spans_per_request))
    request_cpu_s = 1 / off_rps  # the host is saturated at this concurrency: one request's share of it
    say(
        f"tracing off: the instrumentation of one request costs {off_cost_s * 1e6:.0f} us, "
        f"{off_cost_s / request_cpu_s * 100:.3f}% of a request (target < 2%)"
    )


def _instrumentation_cost_when_off(spans: int) -> float:
    """One request's spans (as gateway stages: a no-op span, a histogram sample, a dict update each) and its
    ~25 other metric samples, with no tracer provider installed in this process."""

    def one_request() -> None:
        for _ in range(spans):
            with stage("bench"):
                pass
        for _ in range(25):
            metrics().prompt_tokens.observe(10, model="bench")

    return statistics.median(timed_seconds(one_request, 200))


if __name__ == "__main__":
    main()

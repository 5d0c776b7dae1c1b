"""`python -m tests.routing.conversation_trial MODEL OUT`: serve_config.yaml's application on a new local Ray
with two encoder and two decoder replicas, two-turn conversations about different images sent one after the
other through the gateway, and every replica's stats read after each turn, written to OUT as JSON.

A process of its own, so that the test can end everything Ray started by ending its session."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from loadtest.server_process import free_port
from services.local_server import SERVE_ENVIRONMENT, SERVE_SHUTDOWN_TIMEOUT_S
from services.serve_config import load_application, local_args, merge
from tests.conftest import noise_image

CONVERSATIONS = 8
REPLICAS_PER_POOL = 2
# One torch thread per replica and no CPU reservations: five processes share this host's cores.
POOL_OVERRIDES = {
    "num_replicas": REPLICAS_PER_POOL,
    "autoscaling_config": None,
    "torch_threads": 1,
    "ray_actor_options": {"num_cpus": 0},
}
OVERRIDES = {"encoder": POOL_OVERRIDES, "decoder": POOL_OVERRIDES}


def main() -> None:
    import ray
    from ray import serve

    from services.app_builder import build_app

    model, out = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ.update(SERVE_ENVIRONMENT)
    application = load_application().with_args(merge(local_args(model), OVERRIDES))
    port = free_port()
    ray.init(address="local", include_dashboard=False, configure_logging=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(application.args), name=application.name, route_prefix=application.route_prefix)
        decoder = serve.get_deployment_handle("llm_decoder", app_name=application.name)
        encoder = serve.get_deployment_handle("vision_encoder", app_name=application.name)

        def replica_stats() -> list[dict[str, Any]]:
            return [asdict(stats) for stats in decoder.broadcast("stats").results(timeout_s=60)]

        turns: list[dict[str, Any]] = [{"conversation": None, "turn": 0, "decoders": replica_stats()}]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for conversation in range(CONVERSATIONS):
                messages = [_user_with_image(conversation, "What is in this picture?")]
                answer = _ask(client, messages)
                turns.append({"conversation": conversation, "turn": 1, "decoders": replica_stats()})
                messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "What colour?"}]
                _ask(client, messages)
                turns.append({"conversation": conversation, "turn": 2, "decoders": replica_stats()})
        encoders = [stats.model_dump() for stats in encoder.broadcast("stats").results(timeout_s=60)]
        out.write_text(json.dumps({"turns": turns, "encoders": encoders}))
    finally:
        stopper = threading.Thread(target=serve.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout=SERVE_SHUTDOWN_TIMEOUT_S)
        ray.shutdown()


def _user_with_image(seed: int, question: str) -> dict[str, Any]:
    png = io.BytesIO()
    noise_image(224, 168, seed).save(png, format="PNG")
    url = f"data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}"
    return {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": question}],
    }


def _ask(client: httpx.Client, messages: list[dict[str, Any]]) -> str:
    response = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 4, "temperature": 0})
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


if __name__ == "__main__":
    main()

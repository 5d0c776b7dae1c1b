"""The Serve application is built from validated arguments, as serve_config.yaml gives them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from ray.serve import Application

from services.app_builder import AppArgs, build_app, in_flight_budget
from services.messages import CONFIGURED_REVISION, AdapterRef

ROOT = Path(__file__).parents[1]


def test_serve_config_names_the_builder_and_valid_arguments() -> None:
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    (application,) = config["applications"]
    assert application["import_path"] == "services.app_builder:build_app"
    args = AppArgs.model_validate(application["args"])
    assert args.decoder.engine_config().max_num_seqs == application["args"]["decoder"]["max_num_seqs"]
    assert isinstance(build_app(application["args"]), Application)


def test_decoder_admits_everything_its_engine_holds() -> None:
    args = AppArgs.model_validate({"model": "m", "decoder": {"max_num_seqs": 8, "max_waiting": 24}})
    assert args.decoder.serve_options(default_max_ongoing=32)["max_ongoing_requests"] == 32
    assert args.model_name == "m"


def test_autoscaling_replaces_a_fixed_replica_count() -> None:
    args = AppArgs.model_validate({"model": "m", "gateway": {"autoscaling_config": {"min_replicas": 1}}})
    options = args.gateway.serve_options(default_max_ongoing=8)
    assert options["autoscaling_config"] == {"min_replicas": 1}
    assert "num_replicas" not in options


def test_encoder_and_decoder_scale_on_their_own_policies() -> None:
    args = AppArgs.model_validate(
        {
            "model": "m",
            "encoder": {"autoscaling_config": {"max_replicas": 3}},
            "decoder": {"autoscaling_config": {"max_replicas": 2}},
        }
    )
    encoder = args.encoder.serve_options(default_max_ongoing=8)["autoscaling_config"]
    decoder = args.decoder.serve_options(default_max_ongoing=8)["autoscaling_config"]
    assert encoder["policy"]["policy_function"] == "services.autoscaling.serve_policies:EncoderAutoscalingPolicy"
    assert decoder["policy"]["policy_function"] == "services.autoscaling.serve_policies:DecoderAutoscalingPolicy"
    assert (encoder["max_replicas"], decoder["max_replicas"]) == (3, 2)
    # A decoder replica being scaled down finishes its answers: longer than Serve's 20 s default.
    assert args.decoder.serve_options(default_max_ongoing=8)["graceful_shutdown_timeout_s"] > 20


@pytest.mark.parametrize("bad", [{}, {"model": "m", "decoder": {"max_num_seqs": 0}}, {"model": "m", "typo": 1}])
def test_bad_arguments_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        AppArgs.model_validate(bad)


def test_the_decoder_replicas_get_the_stream_interval() -> None:
    gateway = build_app({"model": "m", "decoder": {"stream_interval_ms": 20}})._bound_deployment
    _, decoder, _, _ = gateway.init_args
    assert decoder._bound_deployment.init_args[-1] == pytest.approx(0.02)


def test_encoder_and_decoder_replicas_get_the_dtype() -> None:
    gateway = build_app({"model": "m", "dtype": "float32"})._bound_deployment
    encoder, decoder, _, _ = gateway.init_args
    assert encoder._bound_deployment.init_kwargs["dtype"] == "float32"
    assert decoder._bound_deployment.init_kwargs["dtype"] == "float32"
    assert AppArgs.model_validate({"model": "m"}).dtype == "auto"
    with pytest.raises(ValidationError):
        AppArgs.model_validate({"model": "m", "dtype": "int8"})


@pytest.mark.parametrize(
    ("args", "budget"),
    [
        ({}, 16 + 64),  # one decoder replica's running and waiting sequences, one gateway replica
        ({"decoder": {"max_num_seqs": 8, "max_waiting": 24, "num_replicas": 3}, "gateway": {"num_replicas": 2}}, 48),
        (
            {
                "decoder": {"autoscaling_config": {"max_replicas": 4}},
                "gateway": {"autoscaling_config": {"min_replicas": 2}},
            },
            160,
        ),
        ({"gateway": {"max_in_flight": 7}}, 7),
    ],
)
def test_the_gateway_door_is_sized_by_the_decoder_pool(args: dict, budget: int) -> None:
    app_args = AppArgs.model_validate({"model": "m", **args})
    assert in_flight_budget(app_args) == budget


def test_serve_never_refuses_in_front_of_the_gateway() -> None:
    """Its plain-text 503 is not the OpenAI form: the gateway's door refuses the excess instead."""
    gateway = AppArgs.model_validate({"model": "m"}).gateway
    options = gateway.serve_options(default_max_ongoing=2 * 80)
    assert options["max_queued_requests"] == -1 and options["max_ongoing_requests"] == 160


def test_lora_adapters_reach_the_decoder_replicas_and_the_gateways_model_list() -> None:
    args = {"model": "m", "decoder": {"lora": {"adapters": {"receipts": "/adapters/receipts"}, "max_loaded": 2}}}
    gateway = build_app(args)._bound_deployment
    _, decoder, registry, options = gateway.init_args
    decoder_bound = decoder._bound_deployment
    receipts = AdapterRef("receipts", "/adapters/receipts", CONFIGURED_REVISION)
    loading = decoder_bound.init_kwargs["adapters"]
    assert (list(loading.configured), loading.root) == ([receipts], None)
    engine_config = decoder_bound.init_args[1]
    assert (engine_config.max_loras, engine_config.max_lora_rank) == (2, 16)
    assert options.adapters == (receipts,) and not options.runtime_lora_loading
    assert registry is None  # nothing loads at run time: each gateway replica holds the configured adapters
    # Without adapters the engine keeps no slots and wraps no layer.
    plain = build_app({"model": "m"})._bound_deployment
    assert plain.init_args[1]._bound_deployment.init_args[1].max_loras == 0
    assert plain.init_args[3].adapters == ()


def test_an_adapter_root_turns_on_runtime_loading_through_a_shared_registry() -> None:
    args = {"model": "m", "decoder": {"lora": {"adapter_root": "/adapters", "max_held": 3}}}
    gateway = build_app(args)._bound_deployment
    _, decoder, registry, options = gateway.init_args
    loading = decoder._bound_deployment.init_kwargs["adapters"]
    assert (loading.root, loading.max_held) == (Path("/adapters"), 3)
    assert decoder._bound_deployment.init_args[1].max_loras == 4  # slots, though none is configured
    assert options.runtime_lora_loading
    assert registry._bound_deployment.name == "adapter_registry"

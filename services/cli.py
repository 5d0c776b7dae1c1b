"""The `flashvqa` command. Each subcommand imports what it needs when it runs, so that `--help` starts fast and
`serve` loads no model code in this process (the replicas load it)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import get_args

from services.common.dtype_name import AUTO_DTYPE_RULE, DTypeName
from services.demo.shipped import DEMO_MODEL
from services.tiny_models.sizes import SIZES


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashvqa", description="Low-latency image question answering.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build-tiny-model", help="write a random-weight model of a real architecture")
    build.add_argument("--family", choices=["glm4v", "qwen2_5_vl"], default="glm4v")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--size", choices=SIZES, default="tiny")
    build.set_defaults(handler=_build_tiny_model)

    ask = commands.add_parser("ask", help="answer a question about an image, in this process")
    ask.add_argument("--model", type=Path, default=DEMO_MODEL, help="a model directory (default: the demo model)")
    ask.add_argument("--image", type=Path, required=True)
    ask.add_argument("--max-tokens", type=int, default=128)
    ask.add_argument("--thinking", action="store_true", help="let GLM think before answering")
    ask.add_argument("question")
    ask.set_defaults(handler=_ask)

    evaluate = commands.add_parser(
        "eval-demo", help="exact-match accuracy on held-out demo pictures and on a second, independent renderer's"
    )
    evaluate.add_argument("--model", type=Path, default=DEMO_MODEL, help="a model directory (default: the demo model)")
    evaluate.add_argument("--per-group", type=int, default=100, help="held-out questions per kind and language")
    evaluate.add_argument(
        "--second-renderer-per-group",
        type=int,
        default=50,
        metavar="N",
        help="second-renderer conversations opening with each kind and language (0: none)",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="which questions to draw")
    evaluate.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: the demo model is too small to gain from more, and on a busy host a"
        " second thread's waits made eval-demo ~10x slower)",
    )
    evaluate.set_defaults(handler=_eval_demo)

    hash_key = commands.add_parser("hash-api-key", help="print the key-file entry of an API key (read from stdin)")
    hash_key.set_defaults(handler=_hash_api_key)

    serve = commands.add_parser("serve", help="run encoder, decoder and gateway on a local Ray (Ctrl-C stops)")
    serve.add_argument("--model", type=Path, default=DEMO_MODEL, help="a model directory (default: the demo model)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--device", help="torch device, e.g. cuda:0 (default: CUDA if present, else CPU)")
    serve.add_argument("--dtype", choices=get_args(DTypeName), default="auto", help=AUTO_DTYPE_RULE)
    serve.add_argument(
        "--lora-adapter",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="serve the PEFT LoRA adapter in DIR as model NAME beside the base (repeatable)",
    )
    serve.add_argument(
        "--lora-root",
        type=Path,
        metavar="DIR",
        help="let POST /v1/load_lora_adapter load PEFT adapters from under DIR at run time",
    )
    serve.add_argument("--api-keys-file", help="tenants and key digests (YAML); without it, no key is needed")
    serve.set_defaults(handler=_serve)
    return parser


def _build_tiny_model(args: argparse.Namespace) -> int:
    from services.tiny_models.model_builder import build_tiny_model, describe

    started = time.perf_counter()
    out = build_tiny_model(args.family, args.out, seed=args.seed, size=args.size)
    summary = describe(out) | {"seconds": round(time.perf_counter() - started, 2)}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from services.common.image_input import ImageInputError, load_image
    from services.local_pipeline import LocalPipeline, image_question
    from services.messages import SamplingParams

    try:
        image = load_image(args.image.read_bytes())
    except OSError as error:
        return _fail(f"cannot read {args.image}: {error.strerror or error}")
    except ImageInputError as error:
        return _fail(f"{args.image}: {error}")
    if not (args.model / "config.json").is_file():
        return _fail(f"{args.model} is not a model directory (no config.json)")
    pipeline = LocalPipeline(args.model)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0)
    for output in pipeline.generate(image_question(args.question, 1), [image], params, args.thinking):
        sys.stdout.write(output.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _eval_demo(args: argparse.Namespace) -> int:
    from services.common.device import set_torch_threads
    from services.demo.evaluation import demo_summary

    if not (args.model / "config.json").is_file():
        return _fail(f"{args.model} is not a model directory (no config.json)")
    set_torch_threads(args.threads)
    summary = demo_summary(args.model, args.per_group, args.second_renderer_per_group, args.seed)
    sys.stdout.write(summary + "\n")
    return 0


def _hash_api_key(args: argparse.Namespace) -> int:
    from services.gateway.admission.auth import hash_api_key

    key = sys.stdin.readline().strip()  # not an argument: it would land in the shell history and `ps`
    if not key:
        return _fail("give the key on standard input")
    sys.stdout.write(hash_api_key(key) + "\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from services.local_server import serve_until_signalled
    from services.serve_config import load_application, local_args

    model = args.model
    if not (model / "config.json").is_file():
        return _fail(f"{model} is not a model directory (no config.json)")
    # Ray echoes the replicas' output (request log lines included) here: a line at a time, also into a pipe.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    url = f"http://{args.host}:{args.port}"

    def announce() -> None:
        sys.stdout.write(f"flashvqa: serving {model} at {url} (OpenAI API under {url}/v1); Ctrl-C stops\n")
        sys.stdout.flush()

    # serve_config.yaml's application (the one the Helm chart renders), with this machine's settings.
    adapters: dict[str, str] = {}
    for entry in args.lora_adapter:
        name, separator, directory = entry.partition("=")
        if not separator or not name or not directory:
            return _fail(f"--lora-adapter takes NAME=DIR, not {entry!r}")
        if not (Path(directory) / "adapter_config.json").is_file():
            return _fail(f"{directory} is not a PEFT adapter directory (no adapter_config.json)")
        adapters[name] = str(Path(directory).resolve())
    overrides = local_args(model, args.device, args.api_keys_file, args.dtype)
    if args.lora_root is not None and not args.lora_root.is_dir():
        return _fail(f"--lora-root {args.lora_root} is not a directory")
    lora = {"adapters": adapters} | ({} if args.lora_root is None else {"adapter_root": str(args.lora_root.resolve())})
    if adapters or args.lora_root is not None:
        overrides["decoder"] = {"lora": lora}
    application = load_application().with_args(overrides)
    serve_until_signalled(application, args.host, args.port, announce)
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(f"flashvqa: error: {message}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())

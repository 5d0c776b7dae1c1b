"""The `flashvqa` command as a user runs it."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from services.app_builder import AppArgs
from services.cli import main
from services.gateway.admission.auth import Authenticator, TenantConfig
from services.serve_config import ServeApplication

EXAMPLE_IMAGE = Path(__file__).parents[1] / "examples" / "images" / "receipt.png"


def test_build_tiny_model_writes_a_model_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qwen"
    assert main(["build-tiny-model", "--family", "qwen2_5_vl", "--out", str(out), "--seed", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_type"] == "qwen2_5_vl"
    assert (out / "model.safetensors").stat().st_size == summary["weights_bytes"]


def test_ask_streams_an_answer(tiny_model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "ask",
            "--model",
            str(tiny_model_dirs["glm4v"]),
            "--image",
            str(EXAMPLE_IMAGE),
            "--max-tokens",
            "8",
            "Is this a travel expense?",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"hello, not an image", "not a supported image"), (b"\xff\xd8\xff\xe0" + b"\0" * 40, "")],
    ids=["empty", "text", "truncated_jpeg"],
)
def test_ask_names_the_problem_with_a_bad_image(
    content: bytes, message: str, tiny_model_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "upload.jpg"
    image.write_bytes(content)
    assert main(["ask", "--model", str(tiny_model_dirs["glm4v"]), "--image", str(image), "what?"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"flashvqa: error: {image}: ")
    assert message in error
    assert "Traceback" not in error


def test_ask_with_a_missing_file(tiny_model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--model", str(tiny_model_dirs["glm4v"]), "--image", "/nonexistent.png", "what?"]) == 2
    assert "cannot read /nonexistent.png" in capsys.readouterr().err


def test_ask_with_a_directory_that_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--model", str(tmp_path), "--image", str(EXAMPLE_IMAGE), "what?"]) == 2
    assert "not a model directory" in capsys.readouterr().err


def test_hash_api_key_prints_the_digest_the_key_file_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-secret\n"))
    assert main(["hash-api-key"]) == 0
    digest = capsys.readouterr().out.strip()
    assert digest == hashlib.sha256(b"sk-secret").hexdigest()
    authenticator = Authenticator([TenantConfig(name="t", key_sha256=[digest])], allow_anonymous=False)
    assert authenticator.authenticate("Bearer sk-secret").name == "t"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[ServeApplication]:
    """The applications `flashvqa serve` would have served, in order, instead of serving them."""
    applications: list[ServeApplication] = []
    monkeypatch.setattr(
        "services.local_server.serve_until_signalled", lambda application, *_: applications.append(application)
    )
    return applications


def test_serve_passes_its_dtype_to_both_model_halves(
    served: list[ServeApplication], tiny_model_dirs: dict[str, Path]
) -> None:
    assert main(["serve", "--model", str(tiny_model_dirs["glm4v"]), "--dtype", "bfloat16"]) == 0
    assert AppArgs.model_validate(served[0].args).dtype == "bfloat16"
    assert main(["serve", "--model", str(tiny_model_dirs["glm4v"])]) == 0
    assert AppArgs.model_validate(served[1].args).dtype == "auto"


def test_serve_passes_its_lora_adapters_to_the_decoder_and_refuses_a_malformed_one(
    served: list[ServeApplication], tiny_model_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    adapter = tmp_path / "receipts"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    model = str(tiny_model_dirs["glm4v"])
    assert main(["serve", "--model", model, "--lora-adapter", f"receipts={adapter}"]) == 0
    args = AppArgs.model_validate(served[0].args)
    assert args.decoder.lora.adapters == {"receipts": str(adapter.resolve())}
    assert args.decoder.engine_config().max_loras == args.decoder.lora.max_loaded

    assert main(["serve", "--model", model, "--lora-adapter", str(adapter)]) != 0
    assert "NAME=DIR" in capsys.readouterr().err
    assert main(["serve", "--model", model, "--lora-adapter", f"x={tmp_path}"]) != 0
    assert "not a PEFT adapter directory" in capsys.readouterr().err
    assert len(served) == 1


def test_serve_lora_root_turns_on_runtime_loading_from_that_directory(
    served: list[ServeApplication], tiny_model_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = str(tiny_model_dirs["glm4v"])
    assert main(["serve", "--model", model, "--lora-root", str(tmp_path)]) == 0
    lora = AppArgs.model_validate(served[0].args).decoder.lora
    assert (lora.adapter_root, lora.adapters) == (str(tmp_path.resolve()), {})
    assert main(["serve", "--model", model, "--lora-root", str(tmp_path / "missing")]) != 0
    assert "is not a directory" in capsys.readouterr().err
    assert len(served) == 1

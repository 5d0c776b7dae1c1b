"""Hostile and odd input over HTTP: each bad case is a 4xx naming the problem, each odd but valid case
is served, and after every case the gateway still answers a normal request."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.conftest import noise_image
from tests.http_server import serve_in_thread

MAX_BODY_BYTES = 8 << 20


def encode(image: Image.Image, format: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_request(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
        "max_tokens": 2,
        "temperature": 0,
        **extra,
    }


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path]) -> FastAPI:
    options = GatewayOptions(
        model_name="tiny",
        max_body_bytes=MAX_BODY_BYTES,
        max_messages=64,
        max_completion_tokens=1024,
        auth=AuthOptions(allow_anonymous=True),
    )
    return build_in_process_app(tiny_model_dirs["glm4v"], EngineConfig(max_num_seqs=4, max_model_len=1024), options)


@pytest.fixture(scope="module")
def server(app: FastAPI) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    """After every case, a normal request must still be served."""
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client
        normal = client.post("/v1/chat/completions", json=image_request(data_url(encode(noise_image(64, 48), "PNG"))))
        assert normal.status_code == 200, normal.text


def assert_refused(response: httpx.Response, status: int, param: str | None, message: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert message in error["message"].lower(), error["message"]


IMAGE_PARAM = "messages[0].content[0].image_url"


class TestHostileInput:
    def test_decompression_bomb_png(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=image_request(data_url(png_declaring(100_000, 100_000))))
        assert_refused(response, 400, IMAGE_PARAM, "pixels")

    def test_50_mb_body_with_content_length(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            content=b"{" + b" " * (50 << 20) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert_refused(response, 413, None, "larger than")

    def test_50_mb_body_streamed_without_content_length(self, client: httpx.Client) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(50):
                yield b"a" * (1 << 20)
            yield b'"}]}'

        response = client.post("/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
        assert_refused(response, 413, None, "larger than")

    def test_truncated_jpeg(self, client: httpx.Client) -> None:
        jpeg = encode(noise_image(256, 256), "JPEG")
        response = client.post(
            "/v1/chat/completions", json=image_request(data_url(jpeg[: len(jpeg) // 2], "image/jpeg"))
        )
        assert_refused(response, 400, IMAGE_PARAM, "truncated")

    def test_text_file_named_png(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=image_request(data_url(b"just some text\n" * 20)))
        assert_refused(response, 400, IMAGE_PARAM, "not a supported image")

    def test_zip_png_polyglot(self, client: httpx.Client) -> None:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("payload.sh", "echo hidden\n")
        polyglot = encode(noise_image(32, 32), "PNG") + archive.getvalue()
        response = client.post("/v1/chat/completions", json=image_request(data_url(polyglot)))
        assert_refused(response, 400, IMAGE_PARAM, "after the end of the png")

    def test_0x0_image(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=image_request(data_url(png_declaring(0, 0))))
        assert_refused(response, 400, IMAGE_PARAM, "not a supported image")

    def test_1x100000_image(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions", json=image_request(data_url(encode(Image.new("RGB", (1, 100_000)), "PNG")))
        )
        assert_refused(response, 400, IMAGE_PARAM, "aspect ratio")

    def test_invalid_base64(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=image_request("data:image/png;base64,iVBOR*w0KGgo!!"))
        assert_refused(response, 400, IMAGE_PARAM, "base64")

    def test_data_url_with_lying_media_type(self, client: httpx.Client) -> None:
        jpeg = encode(noise_image(64, 64), "JPEG")
        response = client.post("/v1/chat/completions", json=image_request(data_url(jpeg, "image/png")))
        assert_refused(response, 400, IMAGE_PARAM, "says png but the data is jpeg")

    def test_data_url_with_non_image_media_type(self, client: httpx.Client) -> None:
        png = encode(noise_image(64, 64), "PNG")
        response = client.post("/v1/chat/completions", json=image_request(data_url(png, "text/html")))
        assert_refused(response, 400, IMAGE_PARAM, "text/html is not a supported image type")

    def test_wrong_request_content_type(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            content=b"messages=hello",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert 400 <= response.status_code < 500
        assert "error" in response.json()

    def test_multipart_file_that_is_not_an_image(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/vqa", data={"question": "What?"}, files={"image": ("notes.png", b"plain text", "text/plain")}
        )
        assert_refused(response, 400, "image", "text/plain is not a supported image type")

    def test_10000_messages(self, client: httpx.Client) -> None:
        messages = [{"role": "user", "content": "hi"}] * 10_000
        response = client.post("/v1/chat/completions", json={"messages": messages})
        assert_refused(response, 400, "messages", "at most 64")

    def test_prompt_too_long(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 40_000}]})
        assert_refused(response, 400, "messages", "characters")

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-1", "2.5"])
    def test_nan_or_negative_temperature(self, client: httpx.Client, value: str) -> None:
        body = '{"messages": [{"role": "user", "content": "hi"}], "temperature": ' + value + "}"
        response = client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert_refused(response, 400, "temperature", "temperature")

    def test_max_tokens_of_10_to_the_9(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}
        )
        assert_refused(response, 400, "max_tokens", "at most 1024")

    @pytest.mark.parametrize(
        ("field", "value"),
        [("seed", 10**30), ("top_k", 10**12), ("stop_token_ids", [-1]), ("top_p", 0), ("stop", ["x"] * 5), ("n", 2)],
    )
    def test_sampling_parameters_out_of_range(self, client: httpx.Client, field: str, value: Any) -> None:
        response = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], field: value}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"].startswith(field)

    def test_non_utf8_bytes(self, client: httpx.Client) -> None:
        body = b'{"messages": [{"role": "user", "content": "\xff\xfe\xfa"}]}'
        response = client.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert "json" in response.json()["error"]["message"].lower()

    def test_remote_image_url_when_not_enabled(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=image_request("http://169.254.169.254/latest/meta-data"))
        assert_refused(response, 400, IMAGE_PARAM, "not enabled")

    def test_bad_request_timeout_header(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            headers={"x-request-timeout": "-3"},
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
        assert_refused(response, 400, "x-request-timeout", "greater than 0")


def animated_gif() -> bytes:
    frames = [Image.new("P", (48, 32), color) for color in (1, 2, 3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return encode(noise_image(64, 32), "JPEG", exif=exif.tobytes())


def palette_png_with_transparency() -> bytes:
    image = Image.new("P", (40, 40), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (10, 10, 30, 30))
    return encode(image, "PNG", transparency=0)


ODD_IMAGES = {
    "animated_gif": (animated_gif, "image/gif"),
    "cmyk_jpeg": (lambda: encode(noise_image(64, 64).convert("CMYK"), "JPEG"), "image/jpeg"),
    "16_bit_png": (lambda: encode(Image.fromarray(np.full((32, 32), 40_000, dtype=np.uint16)), "PNG"), "image/png"),
    "palette_png_with_transparency": (palette_png_with_transparency, "image/png"),
    "exif_rotated_photo": (exif_rotated_jpeg, "image/jpeg"),
    "webp": (lambda: encode(noise_image(64, 64), "WEBP"), "image/webp"),
    "bmp": (lambda: encode(noise_image(64, 64), "BMP"), "image/bmp"),
    "no_media_type": (lambda: encode(noise_image(64, 64), "PNG"), "application/octet-stream"),
}


class TestOddButValidInput:
    @pytest.mark.parametrize("case", sorted(ODD_IMAGES))
    def test_served(self, client: httpx.Client, case: str) -> None:
        make, media_type = ODD_IMAGES[case]
        response = client.post("/v1/chat/completions", json=image_request(data_url(make(), media_type)))
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["prompt_tokens"] > 0

    @pytest.mark.parametrize(("field", "value"), [("temperature", 1e-300), ("temperature", 5e-324), ("top_p", 5e-324)])
    def test_vanishing_temperature_or_top_p(self, client: httpx.Client, field: str, value: float) -> None:
        """Found by the fuzzer: such values rounded to invalid distributions in float32 and failed the engine."""
        response = client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                field: value,
                "max_tokens": 2,
            },
        )
        assert response.status_code == 200, response.text

    def test_unknown_extra_fields_are_ignored(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            json=image_request(
                data_url(encode(noise_image(32, 32), "PNG")),
                frequency_penalty=0,
                logit_bias={},
                parallel_tool_calls=False,
                some_future_field={"x": [1, 2]},
            ),
        )
        assert response.status_code == 200, response.text

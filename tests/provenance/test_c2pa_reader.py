"""Reading real signed manifests: generator, AI assertion, validation; hostile bytes never raise; offline."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.provenance.c2pa_reader import OFFLINE_SETTINGS, C2paManifestReader, C2paValidation, summarize_store
from tests.provenance.c2pa_signing import SigningChain, make_chain, manifest_definition, sign
from tests.provenance.synthetic import encoded, natural_image

FORMATS = [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")]


def _asset(fmt: str = "PNG", seed: int = 0) -> bytes:
    return encoded(natural_image(seed, 96, 64), fmt)


class TestReadsSignedManifests:
    """A manifest signed by an unlisted CA reads as valid (not trusted), with its generator and AI assertion."""

    @pytest.mark.parametrize(("fmt", "mime_type"), FORMATS)
    def test_ai_manifest_in_every_format(self, signing_chain: SigningChain, fmt: str, mime_type: str) -> None:
        summary = C2paManifestReader().read(sign(_asset(fmt), mime_type, signing_chain), mime_type)
        assert summary.validation is C2paValidation.VALID
        assert summary.claim_generator == "flashvqa-test-generator 1.0"
        assert summary.ai_generated

    @pytest.mark.parametrize(
        ("source_type", "ai"),
        [("compositeWithTrainedAlgorithmicMedia", True), ("digitalCapture", False), ("algorithmicMedia", False)],
    )
    def test_ai_assertion_follows_source_type(self, signing_chain: SigningChain, source_type: str, ai: bool) -> None:
        data = sign(_asset(), "image/png", signing_chain, manifest_definition(source_type))
        assert C2paManifestReader().read(data, "image/png").ai_generated is ai

    def test_generator_text_is_sanitised(self, signing_chain: SigningChain) -> None:
        hostile = "evil\r\nSet-Cookie: a=b\x07" + "x" * 500
        data = sign(_asset(), "image/png", signing_chain, manifest_definition(generator=hostile))
        generator = C2paManifestReader().read(data, "image/png").claim_generator
        assert generator is not None and generator.isprintable() and len(generator) <= 120


class TestDamagedManifestsNeverRaise:
    """Altered pixels read as invalid; damaged or truncated manifests read as unreadable; nothing raises."""

    def test_altered_pixels_are_invalid(self, signing_chain: SigningChain) -> None:
        data = bytearray(sign(_asset(), "image/png", signing_chain))
        idat = data.index(b"IDAT")
        data[idat + 20 : idat + 30] = bytes(10)
        assert C2paManifestReader().read(bytes(data), "image/png").validation is C2paValidation.INVALID

    @pytest.mark.parametrize("offset", [40, 300, 900, 2000])
    def test_corrupted_manifest(self, signing_chain: SigningChain, offset: int) -> None:
        data = bytearray(sign(_asset(), "image/png", signing_chain))
        start = data.index(b"caBX") + offset
        data[start : start + 16] = b"\xff" * 16
        assert C2paManifestReader().read(bytes(data), "image/png").validation in set(C2paValidation)

    @pytest.mark.parametrize(("fmt", "mime_type"), FORMATS)
    def test_truncated(self, signing_chain: SigningChain, fmt: str, mime_type: str) -> None:
        data = sign(_asset(fmt), mime_type, signing_chain)
        reader = C2paManifestReader()
        for cut in range(0, len(data), max(1, len(data) // 23)):
            assert reader.read(data[:cut], mime_type).validation in set(C2paValidation)

    def test_garbage_with_a_jumbf_header(self) -> None:
        data = b"\xff\xd8\xff\xeb\x00\x20JP\x00\x01\x00\x00\x00\x01\x00\x00\x00\x10jumbjumdc2pa\x00\x00\xff\xd9"
        assert C2paManifestReader().read(data, "image/jpeg").validation is C2paValidation.UNREADABLE

    @pytest.mark.parametrize(
        "store",
        [
            None,
            [],
            {"manifests": []},
            {"active_manifest": 3, "manifests": {"a": {"assertions": "x"}}},
            {"manifests": {"a": {"assertions": [{"label": "c2pa.actions", "data": {"actions": [None, 1]}}]}}},
        ],
    )
    def test_odd_store_json(self, store: object) -> None:
        assert not summarize_store(store).ai_generated

    def test_missing_sdk_is_reported(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` raise ImportError
        assert C2paManifestReader().read(b"\x89PNG", "image/png").validation is C2paValidation.UNAVAILABLE


class _Listener:
    """A loopback HTTP server that records the paths asked for and answers 404."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_error(404)

            def do_POST(self) -> None:
                self.do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    server = _Listener()
    yield server
    server.close()


class TestStaysOffline:
    """The reader fetches neither a remote manifest nor OCSP, even when the file points at a live server;
    the positive control shows the same file does make the SDK fetch under its default settings."""

    def test_no_remote_manifest_fetch(self, signing_chain: SigningChain, listener: _Listener) -> None:
        data = sign(_asset(), "image/png", signing_chain, remote_url=listener.url + "/manifest.c2pa")
        C2paManifestReader().read(data, "image/png")
        assert listener.paths == []
        C2paManifestReader(settings={**OFFLINE_SETTINGS, "verify": {"remote_manifest_fetch": True}}).read(
            data, "image/png"
        )
        assert listener.paths == ["/manifest.c2pa"]

    def test_no_ocsp_fetch(self, listener: _Listener) -> None:
        chain = make_chain(ocsp_url=listener.url + "/ocsp")
        data = sign(_asset(), "image/png", chain)
        assert C2paManifestReader().read(data, "image/png").validation is C2paValidation.VALID
        assert listener.paths == []
        C2paManifestReader(settings={"verify": {"ocsp_fetch": True}}).read(data, "image/png")
        assert listener.paths  # an OCSP request for the signer certificate

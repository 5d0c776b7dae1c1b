"""The facade: findings from all three checks, the policy's action, and the two wire forms of the report."""

from __future__ import annotations

import json
import pickle
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from services.provenance import (
    HEADER_NAME,
    C2paValidation,
    FindingKind,
    PolicyAction,
    ProvenanceChecker,
    ProvenanceOptions,
    ProvenancePolicy,
    ProvenanceReport,
    WatermarkStatus,
)
from services.provenance.dwt_dct_watermark import STABLE_DIFFUSION_XL, PixelConvention
from tests.provenance.c2pa_signing import SigningChain, manifest_definition, sign
from tests.provenance.marking import embed
from tests.provenance.synthetic import encoded, natural_image, png_bytes


def _png_with_parameters(rgb: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7")
    return png_bytes(rgb, pnginfo=info)


@pytest.fixture(scope="module")
def generated(signing_chain: SigningChain) -> bytes:
    """What an honest SDXL front-end uploads: watermark, A1111 parameters, and a signed C2PA manifest."""
    marked = embed(natural_image(3, 512, 512), STABLE_DIFFUSION_XL, PixelConvention.FLOAT)
    return sign(_png_with_parameters(marked), "image/png", signing_chain)


class TestFindings:
    """Each check reports what it found; a clean photo has no findings and is allowed."""

    def test_generated_image(self, generated: bytes) -> None:
        report = ProvenanceChecker().check(generated)
        assert report.findings == (FindingKind.C2PA_AI_CLAIM, FindingKind.AI_METADATA, FindingKind.INVISIBLE_WATERMARK)
        assert report.c2pa_validation is C2paValidation.VALID and report.ai_generated_claim
        assert report.c2pa_claim_generator == "flashvqa-test-generator 1.0"
        assert report.ai_metadata == ("png-text:parameters",)
        assert report.invisible_watermark and report.watermark_payload == "stable-diffusion-xl"
        assert report.action is PolicyAction.FLAG
        assert report.summary == (
            "flag; c2pa=valid; c2pa-ai; metadata=png-text:parameters; watermark=stable-diffusion-xl"
        )

    @pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
    def test_clean_photo(self, fmt: str) -> None:
        report = ProvenanceChecker().check(encoded(natural_image(4, 600, 400), fmt))
        assert report.findings == () and report.action is PolicyAction.ALLOW
        assert report.watermark_status is WatermarkStatus.NOT_DETECTED
        assert report.summary == "allow; watermark=not-detected"

    def test_camera_manifest_is_allowed(self, signing_chain: SigningChain) -> None:
        data = sign(
            encoded(natural_image(5, 300, 300), "JPEG"),
            "image/jpeg",
            signing_chain,
            manifest_definition("digitalCapture"),
        )
        report = ProvenanceChecker().check(data)
        assert report.findings == (FindingKind.C2PA_MANIFEST,) and report.action is PolicyAction.ALLOW

    def test_given_image_is_used_instead_of_the_bytes(self, generated: bytes) -> None:
        unmarked = Image.fromarray(natural_image(6, 512, 512))
        assert not ProvenanceChecker().check(generated, unmarked).invisible_watermark


class TestWatermarkBounds:
    """The decode runs only between the library's 256x256 minimum and `watermark_max_pixels`, and says why not."""

    def test_too_large(self) -> None:
        checker = ProvenanceChecker(ProvenanceOptions(watermark_max_pixels=512 * 512))
        report = checker.check(b"", Image.fromarray(natural_image(7, 513, 512)))
        assert report.watermark_status is WatermarkStatus.SKIPPED_TOO_LARGE

    @pytest.mark.parametrize("side", [5000, 40_000])  # 40,000 x 40,000 is a decompression bomb to Pillow
    def test_too_large_is_known_from_the_header(self, side: int) -> None:
        data = encoded(natural_image(7, 64, 64), "PNG")
        header = b"IHDR" + side.to_bytes(4, "big") * 2 + data[24:29]
        huge = data[:12] + header + zlib.crc32(header).to_bytes(4, "big") + data[33:]  # the pixels stay 64x64
        assert ProvenanceChecker().check(huge).watermark_status is WatermarkStatus.SKIPPED_TOO_LARGE

    def test_too_small(self) -> None:
        report = ProvenanceChecker().check(encoded(natural_image(8, 255, 256), "PNG"))
        assert report.watermark_status is WatermarkStatus.SKIPPED_TOO_SMALL

    @pytest.mark.parametrize("data", [b"", b"not an image", encoded(natural_image(9, 300, 300), "PNG")[:3000]])
    def test_undecodable(self, data: bytes) -> None:
        report = ProvenanceChecker().check(data)
        assert report.watermark_status is WatermarkStatus.SKIPPED_UNDECODABLE and report.action is PolicyAction.ALLOW

    def test_modes_other_than_rgb(self) -> None:
        marked = embed(natural_image(10, 512, 512), STABLE_DIFFUSION_XL, PixelConvention.UINT8)
        rgba = Image.fromarray(marked).convert("RGBA")
        assert ProvenanceChecker().check(b"", rgba).invisible_watermark


class TestPolicy:
    """The request gets the most severe action among its findings; each kind's action is configurable."""

    def test_most_severe_wins(self) -> None:
        policy = ProvenancePolicy(ai_metadata=PolicyAction.BLOCK, invisible_watermark=PolicyAction.ALLOW)
        assert policy.action_for([FindingKind.INVISIBLE_WATERMARK, FindingKind.AI_METADATA]) is PolicyAction.BLOCK
        assert policy.action_for([FindingKind.INVISIBLE_WATERMARK]) is PolicyAction.ALLOW
        assert policy.action_for([]) is PolicyAction.ALLOW

    def test_block_from_options(self, generated: bytes) -> None:
        options = ProvenanceOptions.model_validate({"policy": {"invisible_watermark": "block"}})
        assert ProvenanceChecker(options).check(generated).action is PolicyAction.BLOCK

    def test_bad_policy_value_is_refused(self) -> None:
        with pytest.raises(ValueError, match="policy"):
            ProvenanceOptions.model_validate({"policy": {"ai_metadata": "maybe"}})

    def test_disabled(self, generated: bytes) -> None:
        report = ProvenanceChecker(ProvenanceOptions(enabled=False)).check(generated)
        assert report == ProvenanceReport.disabled() and report.summary == "allow; watermark=disabled"

    def test_parts_can_be_switched_off(self, generated: bytes) -> None:
        options = ProvenanceOptions(read_c2pa=False, detect_watermark=False)
        report = ProvenanceChecker(options).check(generated)
        assert report.findings == (FindingKind.C2PA_MANIFEST, FindingKind.AI_METADATA)  # seen, not read
        assert report.c2pa_validation is None and report.watermark_status is WatermarkStatus.DISABLED


class TestWireForms:
    """The header value is short printable ASCII with no file text; the JSON form round-trips."""

    def test_header_never_carries_file_text(self, signing_chain: SigningChain) -> None:
        manifest = manifest_definition(generator="evil\r\nSet-Cookie: a=b")
        report = ProvenanceChecker().check(
            sign(encoded(natural_image(11, 64, 64), "PNG"), "image/png", signing_chain, manifest)
        )
        assert "evil" not in report.summary and report.summary.isascii() and report.summary.isprintable()
        assert HEADER_NAME == "x-flashvqa-provenance"

    def test_json(self, generated: bytes) -> None:
        body = json.loads(json.dumps(ProvenanceChecker().check(generated).to_json()))
        assert body["action"] == "flag"
        assert body["findings"] == ["c2pa_ai_claim", "ai_metadata", "invisible_watermark"]
        assert body["c2pa"] == {
            "present": True,
            "validation": "valid",
            "claim_generator": "flashvqa-test-generator 1.0",
            "ai_generated": True,
        }
        assert body["invisible_watermark"]["payload"] == "stable-diffusion-xl"


def test_report_is_small_to_pickle(generated: bytes) -> None:
    """It crosses Ray deployments, so it is a frozen dataclass of short strings."""
    assert len(pickle.dumps(ProvenanceChecker().check(generated))) < 1500

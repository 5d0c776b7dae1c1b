"""The gateway's watermark / provenance check: container scan, C2PA manifest, invisible watermark, policy."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from services.common.image_input import ALLOWED_FORMATS
from services.provenance.c2pa_reader import C2paManifestReader, ManifestSummary
from services.provenance.container_scan import ContainerScan, ScanLimits, scan_container
from services.provenance.dwt_dct_watermark import MIN_PIXELS, WatermarkMatch, detect_watermark
from services.provenance.options import FindingKind, ProvenanceOptions
from services.provenance.report import ProvenanceReport, WatermarkStatus


class ProvenanceChecker:
    """Checks one upload in a few milliseconds of CPU (no I/O); safe to share between threads.

    `check(data, image)` wants the image at its original resolution and orientation: the watermark lives in
    the generator's pixel grid, so a resized or EXIF-rotated copy hides it. Without `image`, the checker
    decodes `data` itself when the header's size is within `watermark_max_pixels`.
    """

    def __init__(self, options: ProvenanceOptions | None = None, *, c2pa_reader: C2paManifestReader | None = None):
        self.options = options or ProvenanceOptions()
        self._c2pa_reader = c2pa_reader or C2paManifestReader()
        self._scan_limits = ScanLimits(max_bytes=self.options.max_scan_bytes)

    def check(self, data: bytes, image: Image.Image | None = None) -> ProvenanceReport:
        if not self.options.enabled:
            return ProvenanceReport.disabled()
        scan = scan_container(data, self._scan_limits)
        manifest = self._read_manifest(data, scan)
        status, match = self._detect_watermark(data, image)
        findings = _findings(scan, manifest, match)
        return ProvenanceReport(
            action=self.options.policy.action_for(findings),
            findings=findings,
            c2pa_present=scan.c2pa_present,
            c2pa_validation=manifest.validation if manifest else None,
            c2pa_claim_generator=manifest.claim_generator if manifest else None,
            ai_generated_claim=bool(manifest and manifest.ai_generated),
            ai_metadata=scan.ai_metadata,
            watermark_status=status,
            watermark_payload=match.payload if match else None,
            watermark_matched_bits=f"{match.matched_bits}/{match.total_bits}" if match else None,
        )

    def _read_manifest(self, data: bytes, scan: ContainerScan) -> ManifestSummary | None:
        if not (self.options.read_c2pa and scan.c2pa_present and scan.mime_type):
            return None
        return self._c2pa_reader.read(data, scan.mime_type)

    def _detect_watermark(
        self, data: bytes, image: Image.Image | None
    ) -> tuple[WatermarkStatus, WatermarkMatch | None]:
        if not self.options.detect_watermark:
            return WatermarkStatus.DISABLED, None
        pixels = self._pixels(data, image)
        if isinstance(pixels, WatermarkStatus):
            return pixels, None
        match = detect_watermark(pixels, false_match_rate=self.options.watermark_false_match_rate)
        return (WatermarkStatus.DETECTED if match else WatermarkStatus.NOT_DETECTED), match

    def _pixels(self, data: bytes, image: Image.Image | None) -> npt.NDArray[np.uint8] | WatermarkStatus:
        if image is None:
            try:
                image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            except Image.DecompressionBombError:
                return WatermarkStatus.SKIPPED_TOO_LARGE
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                return WatermarkStatus.SKIPPED_UNDECODABLE
        pixel_count = image.width * image.height
        if pixel_count > self.options.watermark_max_pixels:
            return WatermarkStatus.SKIPPED_TOO_LARGE
        if pixel_count < MIN_PIXELS:
            return WatermarkStatus.SKIPPED_TOO_SMALL
        try:
            rgb = image if image.mode == "RGB" else image.convert("RGB")  # dropping alpha keeps the marked RGB
            return np.asarray(rgb)
        except (OSError, SyntaxError, ValueError):  # a truncated body surfaces only when the pixels load
            return WatermarkStatus.SKIPPED_UNDECODABLE


def _findings(
    scan: ContainerScan, manifest: ManifestSummary | None, match: WatermarkMatch | None
) -> tuple[FindingKind, ...]:
    findings = []
    if scan.c2pa_present:
        ai_claim = manifest is not None and manifest.ai_generated
        findings.append(FindingKind.C2PA_AI_CLAIM if ai_claim else FindingKind.C2PA_MANIFEST)
    if scan.ai_metadata:
        findings.append(FindingKind.AI_METADATA)
    if match is not None:
        findings.append(FindingKind.INVISIBLE_WATERMARK)
    return tuple(findings)

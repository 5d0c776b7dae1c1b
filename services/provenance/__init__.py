"""Watermark and provenance check for uploaded images: C2PA manifests, generator metadata, and the
DWT-DCT invisible watermark of Stable Diffusion and FLUX, with an allow / flag / block policy."""

from services.provenance.c2pa_reader import C2paValidation
from services.provenance.container_scan import ContainerScan, scan_container
from services.provenance.dwt_dct_watermark import KNOWN_PAYLOADS, WatermarkMatch, detect_watermark
from services.provenance.options import FindingKind, PolicyAction, ProvenanceOptions, ProvenancePolicy
from services.provenance.provenance_check import ProvenanceChecker
from services.provenance.report import HEADER_NAME, ProvenanceReport, WatermarkStatus

__all__ = [
    "HEADER_NAME",
    "KNOWN_PAYLOADS",
    "C2paValidation",
    "ContainerScan",
    "FindingKind",
    "PolicyAction",
    "ProvenanceChecker",
    "ProvenanceOptions",
    "ProvenancePolicy",
    "ProvenanceReport",
    "WatermarkMatch",
    "WatermarkStatus",
    "detect_watermark",
    "scan_container",
]

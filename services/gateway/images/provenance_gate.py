"""The gateway's use of the provenance check: every uploaded image's bytes, off the event loop, with the
verdicts of recent uploads remembered by digest."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from services.provenance import PolicyAction, ProvenanceChecker, ProvenanceOptions, ProvenanceReport


@dataclass(frozen=True)
class Upload:
    """An image as the client sent it (the check reads the container, not our normalised pixels), the request
    field that carried it, and the bytes' digest (taken where the upload is decoded, off the event loop)."""

    data: bytes
    param: str
    digest: bytes

    @classmethod
    def of(cls, data: bytes, param: str) -> Upload:
        return cls(data, param, hashlib.sha256(data).digest())  # SHA extensions: the fastest hashlib digest here


class ProvenancePolicyViolation(Exception):
    """An image whose provenance the policy blocks: answer 400 `provenance_policy_violation`."""

    def __init__(self, report: ProvenanceReport, param: str) -> None:
        findings = ", ".join(kind.value for kind in report.findings)
        super().__init__(f"the image was refused by the provenance policy (findings: {findings})")
        self.param = param


class ProvenanceGate:
    """Checks uploads concurrently in worker threads. A repeated upload (the same bytes: a retry, a
    follow-up question, a response-cache hit) is answered from memory, so the cache-hit path stays cheap."""

    def __init__(self, options: ProvenanceOptions, remembered: int = 4096) -> None:
        self.enabled = options.enabled
        self._checker = ProvenanceChecker(options)
        self._remembered = remembered
        self._recent: OrderedDict[bytes, ProvenanceReport] = OrderedDict()
        self._lock = threading.Lock()

    async def check(self, uploads: list[Upload]) -> list[ProvenanceReport]:
        """One report per upload; raises `ProvenancePolicyViolation` for the first blocked one. Remembered
        uploads are answered on the event loop (no thread hop on the cache-hit path), the others in threads."""
        remembered = [self._remembered_report(upload.digest) for upload in uploads]
        checked = iter(
            await asyncio.gather(
                *(
                    asyncio.to_thread(self._check_and_remember, upload)
                    for upload, report in zip(uploads, remembered, strict=True)
                    if report is None
                )
            )
        )
        reports = [report if report is not None else next(checked) for report in remembered]
        for upload, report in zip(uploads, reports, strict=True):
            if report.action is PolicyAction.BLOCK:
                raise ProvenancePolicyViolation(report, upload.param)
        return reports

    def _remembered_report(self, digest: bytes) -> ProvenanceReport | None:
        with self._lock:
            report = self._recent.get(digest)
            if report is not None:
                self._recent.move_to_end(digest)
            return report

    def _check_and_remember(self, upload: Upload) -> ProvenanceReport:
        report = self._checker.check(upload.data)
        with self._lock:
            self._recent[upload.digest] = report
            if len(self._recent) > self._remembered:
                self._recent.popitem(last=False)
        return report

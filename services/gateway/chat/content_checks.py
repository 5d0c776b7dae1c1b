"""The safety filter and the provenance check as one request meets them: its prompt before any work, its
images beside the cache lookup and the encoder (settled before the first byte is sent), its answer as it
streams. Every verdict that is not `allow` is counted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.gateway.api.request_report import RequestReport
from services.gateway.images.provenance_gate import ProvenanceGate, ProvenancePolicyViolation, Upload
from services.gateway.options import GatewayOptions
from services.gateway.telemetry.request_record import stage
from services.messages import RawImage
from services.provenance import PolicyAction, ProvenanceReport
from services.safety import Action, AnswerChecker, SafetyFilter, SafetyVerdict, raise_if_blocked
from services.telemetry.metrics import metrics


class ContentChecks:
    def __init__(self, options: GatewayOptions) -> None:
        self._safety = SafetyFilter.from_options(options.safety)
        self._check_image_safety = options.safety.check_image
        self._provenance = ProvenanceGate(options.provenance)

    def check_prompt(self, text: str, report: RequestReport) -> None:
        """Raises if the prompt is blocked; records its flags."""
        with stage("safety.prompt"):
            verdicts = counted(self._safety.check_prompt(text))
        raise_if_blocked(verdicts, param="messages")
        report.add(verdicts)

    def start_provenance(self, uploads: list[Upload]) -> ImageChecks:
        """The provenance check reads what the client sent, so it runs on cache hits too."""
        checks = ImageChecks()
        if uploads and self._provenance.enabled:
            checks.provenance = asyncio.ensure_future(self._check_provenance(uploads))
        return checks

    def start_image_safety(self, images: list[RawImage], checks: ImageChecks) -> None:
        if images and self._check_image_safety:
            checks.safety = asyncio.ensure_future(self._check_images(images))

    def answer_checker(self) -> AnswerChecker:
        return self._safety.answer_checker()

    async def _check_images(self, images: list[RawImage]) -> list[SafetyVerdict]:
        with stage("safety.image", images=len(images)):
            verdicts = await asyncio.gather(
                *(asyncio.to_thread(self._safety.check_image, image.to_image()) for image in images)
            )
        return counted([verdict for image_verdicts in verdicts for verdict in image_verdicts])

    async def _check_provenance(self, uploads: list[Upload]) -> list[ProvenanceReport]:
        with stage("provenance", images=len(uploads)):
            try:
                reports = await self._provenance.check(uploads)
            except ProvenancePolicyViolation:
                metrics().provenance_verdicts.inc(action=PolicyAction.BLOCK.value)
                raise
        for report in reports:
            metrics().provenance_verdicts.inc(action=report.action.value)
        return reports


@dataclass
class ImageChecks:
    """The image checks running beside the request's main path."""

    provenance: asyncio.Future[list[ProvenanceReport]] | None = None
    safety: asyncio.Future[list[SafetyVerdict]] | None = None

    async def settle(self, report: RequestReport) -> None:
        """Wait for the checks; raise if one blocks the request, else record what they found."""
        if self.provenance is not None:
            report.provenance = await self.provenance
        if self.safety is not None:
            verdicts = await self.safety
            raise_if_blocked(verdicts, param="messages")
            report.add(verdicts)

    def cancel(self) -> None:
        for check in (self.provenance, self.safety):
            if check is None:
                continue
            if not check.done():
                check.cancel()
            elif not check.cancelled():
                check.exception()  # the request already failed for another reason: drop this one quietly


def counted(verdicts: list[SafetyVerdict]) -> list[SafetyVerdict]:
    for verdict in verdicts:
        if verdict.action is not Action.ALLOW:
            metrics().safety_verdicts.inc(source=verdict.source, category=verdict.category, action=verdict.action.value)
    return verdicts

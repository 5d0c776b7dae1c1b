"""The gateway's work for one chat request: validate, decode images, consult the cache, stream the answer."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from services.common.image_input import ImageInputError, load_image
from services.gateway.admission.admission import Admission
from services.gateway.admission.auth import Tenant
from services.gateway.admission.deadline import within_deadline
from services.gateway.api.errors import APIError
from services.gateway.api.protocol import ChatCompletionRequest, ChatMessage, ImagePart
from services.gateway.backends import Backends
from services.gateway.cache.response_cache import (
    ResponseCache,
    cache_key,
    decode_answer,
    encode_answer,
    is_cacheable,
)
from services.gateway.chat.request_report import RequestReport
from services.gateway.images.image_url import EncodedImage, decode_image_url
from services.gateway.images.provenance_gate import ProvenanceGate, ProvenancePolicyViolation, Upload
from services.gateway.images.remote_image import RemoteImageFetcher
from services.gateway.options import GatewayOptions
from services.gateway.telemetry.answer_observer import AnswerObserver
from services.gateway.telemetry.request_record import current_record, stage
from services.messages import DecodeRequest, EncodeRequest, RawImage, RequestOutput
from services.provenance import PolicyAction, ProvenanceReport
from services.routing import conversation_affinity_key
from services.safety import Action, SafetyFilter, SafetyVerdict, raise_if_blocked
from services.telemetry.metrics import metrics
from services.telemetry.request_log import prompts_logged
from services.telemetry.tracing import current_carrier


class ChatService:
    def __init__(
        self, backends: Backends, options: GatewayOptions, admission: Admission, cache: ResponseCache | None
    ) -> None:
        self._backends = backends
        self.options = options
        self._admission = admission
        self._cache = cache
        self._fetcher = RemoteImageFetcher(options.remote_images)
        self._safety = SafetyFilter.from_options(options.safety)
        self._provenance = ProvenanceGate(options.provenance)
        # Cached answers were checked under this policy; another policy must not reuse them.
        self._policy_version = hashlib.blake2b(options.safety.model_dump_json().encode(), digest_size=8).hexdigest()

    async def outputs(
        self, request: ChatCompletionRequest, request_id: str, tenant: Tenant, deadline: float, report: RequestReport
    ) -> AsyncIterator[RequestOutput]:
        """The decoder's outputs for this request, until `deadline` (event loop time). Client errors and
        blocked content raise before the first output; `report` collects what the checks found."""
        observer = AnswerObserver(current_record())
        try:
            async with aclosing(self._outputs(request, request_id, tenant, deadline, report)) as outputs:
                async for output in outputs:
                    observer.observe(output)
                    yield output
        finally:
            observer.close()

    async def _outputs(
        self, request: ChatCompletionRequest, request_id: str, tenant: Tenant, deadline: float, report: RequestReport
    ) -> AsyncGenerator[RequestOutput, None]:
        record = current_record()
        prompt_text = "".join(_texts(request.messages))
        if record is not None:
            record.tenant = tenant.name
            record.prompt = prompt_text if prompts_logged() else None
        self._validate(request, prompt_text)
        with stage("safety.prompt"):
            prompt_verdicts = counted(self._safety.check_prompt(prompt_text))
        raise_if_blocked(prompt_verdicts, param="messages")
        report.add(prompt_verdicts)
        messages, images, uploads = await self._template_messages(request.messages)
        if record is not None:
            record.images = len(images)
        image_sizes = [(image.width, image.height) for image in images]
        await self._admission.charge_tokens(tenant, self._admission.estimate_prompt_tokens(prompt_text, image_sizes))
        # The image checks run beside the cache lookup and the encoder, not in front of them; their verdicts
        # are awaited before anything is sent, so a blocked image costs the client nothing and a clean one
        # adds no latency. The provenance check reads what the client sent, so it runs on cache hits too.
        checks = _ImageChecks(
            provenance=asyncio.ensure_future(self._check_provenance(uploads))
            if uploads and self._provenance.enabled
            else None,
        )
        try:
            params = request.to_sampling_params()
            key = None
            if self._cache is not None and is_cacheable(params, self.options.cache):
                key = cache_key(
                    self.options.model_name,
                    messages,
                    [image.content_hash for image in images],
                    params,
                    request.enable_thinking,
                    self._policy_version,
                )
                with stage("cache.lookup"):
                    cached = await self._cache.get(key)
                result = "miss" if cached is None else "hit"
                metrics().response_cache.inc(result=result)
                if record is not None:
                    record.cache = result
                if cached is not None:
                    hit, flags = decode_answer(cached, request_id)
                    await checks.settle(report)
                    report.add_flags(flags)
                    yield hit
                    return
            if images and self.options.safety.check_image:
                checks.safety = asyncio.ensure_future(self._check_images(images))
            # Other processes keep other event loop clocks: the deadline travels as wall-clock time.
            wall_deadline = time.time() + deadline - asyncio.get_running_loop().time()
            carrier = current_carrier()
            encodes = [EncodeRequest(image, wall_deadline, carrier) for image in images]
            affinity_key = conversation_affinity_key(messages, [image.content_hash for image in images])
            decode_request = DecodeRequest(
                request_id, messages, params, request.enable_thinking, wall_deadline, carrier, affinity_key
            )
            answer_checker = self._safety.answer_checker()
            outputs: list[RequestOutput] = []
            async with aclosing(within_deadline(self._backends.generate(decode_request, encodes), deadline)) as stream:
                async for output in stream:
                    if not outputs:
                        await checks.settle(report)
                    answer_verdicts = counted(answer_checker.feed(output.text))
                    raise_if_blocked(answer_verdicts, param=None)
                    report.add(answer_verdicts)
                    outputs.append(output)
                    yield output
        finally:
            checks.cancel()
        assert outputs and outputs[-1].finished
        await self._admission.charge_tokens(tenant, outputs[-1].num_output_tokens)
        if key is not None and self._cache is not None:
            value = encode_answer(RequestOutput.joined(outputs), report.flags)
            if len(value) <= self.options.cache.max_entry_bytes:
                await self._cache.put(key, value)

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

    def _validate(self, request: ChatCompletionRequest, prompt_text: str) -> None:
        options = self.options
        if request.model not in (None, options.model_name):
            raise APIError(
                404,
                f"model {request.model!r} does not exist; this server serves {options.model_name!r}",
                param="model",
                code="model_not_found",
            )
        if len(request.messages) > options.max_messages:
            raise APIError(
                400, f"{len(request.messages)} messages; at most {options.max_messages} are accepted", param="messages"
            )
        if len(prompt_text) > options.max_prompt_chars:
            raise APIError(
                400,
                f"the messages hold more than {options.max_prompt_chars} characters of text",
                param="messages",
                code="context_length_exceeded",
            )
        if request.constrains_answer and request.enable_thinking:
            # The grammar constrains the answer from its first token, where a thinking model would begin to think.
            raise APIError(
                400,
                "response_format cannot be combined with chat_template_kwargs.enable_thinking",
                param="response_format",
                code="invalid_response_format",
            )
        for name in ("max_completion_tokens", "max_tokens"):
            value = getattr(request, name)
            if value is not None and value > options.max_completion_tokens:
                raise APIError(400, f"{name} is {value}; at most {options.max_completion_tokens}", param=name)

    async def _template_messages(
        self, messages: list[ChatMessage]
    ) -> tuple[list[dict[str, Any]], list[RawImage], list[Upload]]:
        """OpenAI messages -> chat-template messages, with the images taken out (in order) and decoded, and
        the images as the client sent them."""
        converted: list[dict[str, Any]] = []
        pending: list[asyncio.Future[tuple[RawImage, Upload]]] = []
        try:
            for index, message in enumerate(messages):
                if message.content is None or isinstance(message.content, str):
                    converted.append({"role": message.role, "content": message.content or ""})
                    continue
                parts: list[dict[str, Any]] = []
                for part_index, part in enumerate(message.content):
                    if not isinstance(part, ImagePart):
                        parts.append({"type": "text", "text": part.text})
                        continue
                    param = f"messages[{index}].content[{part_index}].image_url"
                    if message.role != "user":
                        raise APIError(400, "images are accepted in user messages only", param=param)
                    if len(pending) == self.options.max_images_per_request:
                        raise APIError(
                            400, f"at most {self.options.max_images_per_request} images per request", param=param
                        )
                    pending.append(asyncio.ensure_future(self._image(part.image_url.url, param)))
                    parts.append({"type": "image"})
                converted.append({"role": message.role, "content": parts})
            decoded = await asyncio.gather(*pending)
        finally:  # after a refusal, drop the other images' work and their errors quietly
            for future in pending:
                if future.done() and not future.cancelled():
                    future.exception()
                future.cancel()
        return converted, [image for image, _ in decoded], [upload for _, upload in decoded]

    async def _image(self, url: str, param: str) -> tuple[RawImage, Upload]:
        if url.startswith(("http://", "https://")):
            with stage("image.fetch"):
                encoded = EncodedImage(await self._fetcher.fetch(url, param), declared_format=None)
            with stage("image.decode"):
                return await asyncio.to_thread(self._decode, encoded, param)
        # Base64 and image decoding are CPU work (milliseconds per photo): off the event loop, in parallel.
        with stage("image.decode"):
            return await asyncio.to_thread(
                lambda: self._decode(decode_image_url(url, param, self.options.max_image_bytes), param)
            )

    def _decode(self, encoded: EncodedImage, param: str) -> tuple[RawImage, Upload]:
        try:
            image = load_image(encoded.data, self.options.image_limits, encoded.declared_format)
        except ImageInputError as error:
            raise ImageInputError(str(error), param) from None
        metrics().image_pixels.observe(image.width * image.height)
        return RawImage.from_image(image), Upload.of(encoded.data, param)


@dataclass
class _ImageChecks:
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


def _texts(messages: list[ChatMessage]) -> list[str]:
    texts: list[str] = []
    for message in messages:
        if isinstance(message.content, str):
            texts.append(message.content)
        elif message.content is not None:
            texts.extend(part.text for part in message.content if not isinstance(part, ImagePart))
    return texts

"""The gateway's work for one chat request: admit its prompt, take out its images, answer from the cache or
stream the decoder's answer under the content checks, and keep the answer for next time."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from services.gateway.admission.admission import Admission
from services.gateway.admission.auth import Tenant
from services.gateway.admission.deadline import within_deadline
from services.gateway.api.protocol import ChatCompletionRequest
from services.gateway.api.request_report import RequestReport
from services.gateway.backends import Backends
from services.gateway.cache.response_cache import ResponseCache, cache_key, decode_answer, encode_answer, is_cacheable
from services.gateway.chat.content_checks import ContentChecks, ImageChecks, counted
from services.gateway.chat.request_validation import prompt_text, validate_request
from services.gateway.images.message_images import MessageImages, TemplatedMessages
from services.gateway.lora.served_models import ServedModel
from services.gateway.options import GatewayOptions
from services.gateway.telemetry.answer_observer import AnswerObserver
from services.gateway.telemetry.request_record import RequestRecord, current_record, stage
from services.messages import DecodeRequest, EncodeRequest, RequestOutput, SamplingParams
from services.routing import conversation_affinity_key
from services.safety import raise_if_blocked
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
        self._images = MessageImages(
            options.remote_images, options.image_limits, options.max_image_bytes, options.max_images_per_request
        )
        self._checks = ContentChecks(options)
        # Cached answers were checked under this policy; another policy must not reuse them.
        self._policy_version = hashlib.blake2b(options.safety.model_dump_json().encode(), digest_size=8).hexdigest()

    async def outputs(
        self,
        request: ChatCompletionRequest,
        served: ServedModel,
        request_id: str,
        tenant: Tenant,
        deadline: float,
        report: RequestReport,
    ) -> AsyncIterator[RequestOutput]:
        """`served`'s outputs for this request, until `deadline` (event loop time). Client errors and blocked
        content raise before the first output; `report` collects what the checks found."""
        observer = AnswerObserver(current_record(), served.id)
        try:
            async with aclosing(self._outputs(request, served, request_id, tenant, deadline, report)) as outputs:
                async for output in outputs:
                    observer.observe(output)
                    yield output
        finally:
            observer.close()

    async def _outputs(
        self,
        request: ChatCompletionRequest,
        served: ServedModel,
        request_id: str,
        tenant: Tenant,
        deadline: float,
        report: RequestReport,
    ) -> AsyncGenerator[RequestOutput, None]:
        record = current_record()
        templated = await self._admit(request, tenant, record, report)
        # The image checks run beside the cache lookup and the encoder, not in front of them; their verdicts
        # are awaited before anything is sent, so a blocked image costs the client nothing and a clean one
        # adds no latency.
        checks = self._checks.start_provenance(templated.uploads)
        try:
            params = request.to_sampling_params()
            key = self._cache_key(request, served, params, templated)
            cached = await self._cached(key, request_id, record) if key is not None else None
            if cached is not None:
                answer, flags = cached
                await checks.settle(report)
                report.add_flags(flags)
                yield answer
                return
            self._checks.start_image_safety(templated.images, checks)
            outputs: list[RequestOutput] = []
            async with aclosing(
                self._checked_answer(request, served, request_id, params, templated, deadline, checks, report)
            ) as stream:
                async for output in stream:
                    outputs.append(output)
                    yield output
        finally:
            checks.cancel()
        if not outputs or not outputs[-1].finished:
            raise RuntimeError("the decoder's stream ended before its answer finished")
        await self._admission.charge_tokens(tenant, outputs[-1].num_output_tokens)
        if key is not None and self._cache is not None:
            value = encode_answer(RequestOutput.joined(outputs), report.flags)
            if len(value) <= self.options.cache.max_entry_bytes:
                await self._cache.put(key, value)

    async def _admit(
        self, request: ChatCompletionRequest, tenant: Tenant, record: RequestRecord | None, report: RequestReport
    ) -> TemplatedMessages:
        """Validate, check the prompt, take out and decode the images, and charge the prompt's tokens."""
        text = prompt_text(request.messages)
        if record is not None:
            record.prompt = text if prompts_logged() else None
        validate_request(request, text, self.options)
        self._checks.check_prompt(text, report)
        templated = await self._images.template(request.messages)
        if record is not None:
            record.images = len(templated.images)
        image_sizes = [(image.width, image.height) for image in templated.images]
        await self._admission.charge_tokens(tenant, self._admission.estimate_prompt_tokens(text, image_sizes))
        return templated

    def _cache_key(
        self, request: ChatCompletionRequest, served: ServedModel, params: SamplingParams, templated: TemplatedMessages
    ) -> str | None:
        if self._cache is None or not is_cacheable(params, self.options.cache):
            return None
        return cache_key(
            served.cache_name,
            templated.messages,
            [image.content_hash for image in templated.images],
            params,
            request.enable_thinking,
            self._policy_version,
        )

    async def _cached(
        self, key: str, request_id: str, record: RequestRecord | None
    ) -> tuple[RequestOutput, list[str]] | None:
        if self._cache is None:
            return None
        with stage("cache.lookup"):
            cached = await self._cache.get(key)
        result = "miss" if cached is None else "hit"
        metrics().response_cache.inc(result=result)
        if record is not None:
            record.cache = result
        return None if cached is None else decode_answer(cached, request_id)

    async def _checked_answer(
        self,
        request: ChatCompletionRequest,
        served: ServedModel,
        request_id: str,
        params: SamplingParams,
        templated: TemplatedMessages,
        deadline: float,
        checks: ImageChecks,
        report: RequestReport,
    ) -> AsyncGenerator[RequestOutput, None]:
        """The decoder's answer, held until the image checks settle, and checked as it streams."""
        # Other processes keep other event loop clocks: the deadline travels as wall-clock time.
        wall_deadline = time.time() + deadline - asyncio.get_running_loop().time()
        carrier = current_carrier()
        hashes = [image.content_hash for image in templated.images]
        encodes = [EncodeRequest(image, wall_deadline, carrier) for image in templated.images]
        adapter = served.adapter
        decode_request = DecodeRequest(
            request_id,
            templated.messages,
            params,
            request.enable_thinking,
            wall_deadline,
            carrier,
            conversation_affinity_key(templated.messages, hashes, None if adapter is None else adapter.key),
            adapter,
        )
        answer_checker = self._checks.answer_checker()
        settled = False
        async with aclosing(within_deadline(self._backends.generate(decode_request, encodes), deadline)) as stream:
            async for output in stream:
                if not settled:
                    await checks.settle(report)
                    settled = True
                verdicts = counted(answer_checker.feed(output.text))
                raise_if_blocked(verdicts, param=None)
                report.add(verdicts)
                yield output

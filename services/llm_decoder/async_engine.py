"""Driving the synchronous engine from an event loop, one async stream per request.

The engine's queues are touched by one thread at a time: its steps run in a worker thread (so the replica's
event loop keeps accepting and streaming), and requests, aborts and stop-string finishes that arrive meanwhile
are queued here and applied between steps. A step's tokens are turned into text on the event loop while the
next step runs, so detokenizing and looking for stop strings cost the step nothing.

A request's prompt is rendered and checked (prompt, context length, capacity) in another worker thread when it
arrives, so a refusal is immediate and a long prompt does not hold up the streams; one with a response format
first waits here for its grammar, compiled in a worker thread while the engine goes on stepping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.adapter_loader import AdapterLoader, AdapterLoading
from services.llm_decoder.decode_timings import DecodeTimings
from services.llm_decoder.engine import EngineStats, LLMEngine, StepFailed, TokenOutput
from services.llm_decoder.engine.sequence import Sequence
from services.messages import AdapterRef, DecodeRequest, EngineDeadError, QueueFullError, RequestOutput, StepError
from services.telemetry.metrics import metrics

logger = logging.getLogger(__name__)


# A stream's outputs are sent at most this often (all that came meanwhile in one message), as Ray Serve LLM's
# `stream_batching_interval_ms` does: each message costs the decoder, the gateway and the proxy CPU (~1.6 ms
# in all per token at 16 streams on the CPU host), which one message per token per stream spends on sending.
DEFAULT_STREAM_INTERVAL_S = 0.05


# A model that fails this many steps in a row is broken (a lost device, a bad build), not tripped by one
# request: the engine then fails everything and reports unhealthy, and Serve replaces the replica.
MAX_FAILED_STEPS_IN_A_ROW = 3


class AsyncLLMEngine:
    def __init__(
        self,
        engine: LLMEngine,
        replica: str = "local",
        stream_interval_s: float = DEFAULT_STREAM_INTERVAL_S,
        adapters: AdapterLoading | None = None,
    ) -> None:
        """`stream_interval_s`: the least time between two messages of a stream (its first and last go at once);
        0 sends every step's output as it comes (or merged, when the consumer has fallen behind). `adapters`:
        the LoRA adapters read at start and where others may be read from."""
        self._engine = engine
        self._streams: dict[str, asyncio.Queue[RequestOutput | BaseException]] = {}
        self._timings: dict[str, DecodeTimings] = {}
        self._replica = replica
        self._stream_interval_s = stream_interval_s
        self._to_add: list[Sequence] = []
        self._to_abort: set[str] = set()
        self._to_finish: list[str] = []  # ended by a stop string in their text, still running in the engine
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._failed_steps_in_a_row = 0
        self._preemptions_exported = 0
        # Rendering and tokenising a prompt takes ~5 ms per 2.5k tokens: off the event loop, which streams the
        # running answers meanwhile, and one at a time (a fast tokenizer is not safe for concurrent calls).
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prompt-preparation")
        self._stepper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-step")
        self._adapters = AdapterLoader(engine, adapters or AdapterLoading(), self._preparer, self._start)

    @property
    def is_healthy(self) -> bool:
        return self._error is None

    async def generate(
        self, request: DecodeRequest, images: list[ImageEmbedding], timings: DecodeTimings | None = None
    ) -> AsyncIterator[RequestOutput]:
        """Stream one request's outputs; leaving the iteration early (or being cancelled) aborts it. `timings`,
        when given, is filled in as the request passes through the engine's steps."""
        if self._error is not None:
            raise EngineDeadError("the decoder engine has failed") from self._error
        adapter = None if request.adapter is None else await self._adapters.acquire(request.adapter)
        try:
            async for output in self._generate(request, images, adapter, timings):
                yield output
        finally:
            if request.adapter is not None:
                self._adapters.release(request.adapter)

    async def check_adapter(self, ref: AdapterRef) -> None:
        """Read and register `ref`'s adapter here, as a request naming it would. Raises AdapterLoadError."""
        await self._adapters.acquire(ref)
        self._adapters.release(ref)

    async def _generate(
        self, request: DecodeRequest, images: list[ImageEmbedding], adapter: str | None, timings: DecodeTimings | None
    ) -> AsyncIterator[RequestOutput]:
        request_id = request.request_id
        sequence = await asyncio.get_running_loop().run_in_executor(
            self._preparer, self._engine.prepare, request, images, adapter
        )
        if sequence.grammar is not None:
            # Shielded: the compilation is cached and shared with other requests of the same schema, and must
            # outlive this one's cancellation. Raises GrammarError if the schema cannot be compiled.
            await asyncio.shield(asyncio.wrap_future(sequence.grammar))
        self._engine.scheduler.check_capacity(pending=len(self._to_add))
        stream: asyncio.Queue[RequestOutput | BaseException] = asyncio.Queue()
        self._streams[request_id] = stream
        self._timings[request_id] = timings or DecodeTimings()
        self._timings[request_id].arrived_ns = time.time_ns()
        self._to_add.append(sequence)
        self._start()
        finished = False
        loop = asyncio.get_running_loop()
        next_message_at = loop.time()  # the first output goes at once: time to first token is not traded
        try:
            while not finished:
                item = await _next_merged(stream, next_message_at)
                finished = item.finished
                yield item
                next_message_at = loop.time() + self._stream_interval_s
        finally:
            self._streams.pop(request_id, None)
            self._timings.pop(request_id, None)
            if not finished:
                self._to_abort.add(request_id)
                self._wakeup.set()

    def stats(self) -> EngineStats:
        return self._engine.stats()

    def _start(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run())
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        unprocessed: list[TokenOutput] = []  # the last step's tokens, turned into text while the next one runs
        try:
            while True:
                self._apply_pending()
                if not self._engine.has_work:
                    self._process(unprocessed)
                    unprocessed = []
                    if self._to_add or self._to_abort or self._to_finish:
                        continue
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                started_ns = time.time_ns()
                step = loop.run_in_executor(self._stepper, self._engine.step_tokens)
                self._process(unprocessed)
                try:
                    unprocessed = await step
                except StepFailed as failed:
                    unprocessed = []
                    self._fail_step(failed)
                    continue
                self._failed_steps_in_a_row = 0
                self._time(unprocessed, started_ns, time.time_ns())
                self._export_state()
        except asyncio.CancelledError:
            self._fail_all(EngineDeadError("the decoder engine was shut down"))
            raise
        except Exception as error:  # a bug or a device failure: fail loudly, never leave clients hanging
            logger.exception("decoder engine loop failed")
            self._fail_all(error)

    def _process(self, tokens: list[TokenOutput]) -> None:
        """Text for a step's tokens, delivered to the streams; a stop string's request is finished in the
        engine before the next step but one (the next is already running)."""
        if not tokens:
            return
        outputs, stopped = self._engine.outputs.process(tokens)
        self._to_finish += stopped
        self._count_prefix_reuse(outputs)
        for output in outputs:
            self._deliver(output.request_id, output)

    def _time(self, outputs: list[TokenOutput], started_ns: int, finished_ns: int) -> None:
        for request_id in self._engine.prefills_started:
            timings = self._timings.get(request_id)
            if timings is not None:
                timings.prefill_started_ns = started_ns
        for output in outputs:
            timings = self._timings.get(output.request_id)
            if timings is None:
                continue
            if timings.prefill_finished_ns is None:
                timings.prefill_finished_ns = finished_ns
            if output.finished:
                timings.finished_ns = finished_ns

    def _count_prefix_reuse(self, outputs: list[RequestOutput]) -> None:
        if not self._engine.config.enable_prefix_caching:
            return
        for output in outputs:
            if output.num_output_tokens == 1:  # its first token: the step prefilled it
                metrics().prefix_cache_queried_tokens.inc(output.num_prompt_tokens, replica=self._replica)
                metrics().prefix_cache_hit_tokens.inc(output.num_reused_tokens, replica=self._replica)

    def _export_state(self) -> None:
        stats = self._engine.stats()
        metrics().running_sequences.set(stats.num_running, replica=self._replica)
        metrics().waiting_sequences.set(stats.num_waiting + len(self._to_add), replica=self._replica)
        metrics().kv_cache_usage.set(stats.kv_cache_usage, replica=self._replica)
        if stats.num_preemptions > self._preemptions_exported:
            metrics().preemptions.inc(stats.num_preemptions - self._preemptions_exported, replica=self._replica)
            self._preemptions_exported = stats.num_preemptions

    def _apply_pending(self) -> None:
        self._adapters.between_steps()
        adds, self._to_add = self._to_add, []
        for sequence in adds:
            if sequence.request_id in self._to_abort:
                self._to_abort.discard(sequence.request_id)
                continue
            try:
                self._engine.enqueue(sequence)
            except QueueFullError as error:
                self._deliver(sequence.request_id, error)
        aborts, self._to_abort = self._to_abort, set()
        for request_id in aborts:
            self._engine.abort(request_id)
        finishes, self._to_finish = self._to_finish, []
        for request_id in finishes:
            self._engine.finish(request_id)

    def _fail_step(self, failed: StepFailed) -> None:
        """End the failed step's streams with an error; raise (the engine is dead) if steps keep failing."""
        self._failed_steps_in_a_row += 1
        if self._failed_steps_in_a_row >= MAX_FAILED_STEPS_IN_A_ROW:
            raise failed.cause  # every stream, this step's too, ends with EngineDeadError
        logger.error(
            "decoder step failed; its %d requests end with an error", len(failed.request_ids), exc_info=failed.cause
        )
        self._engine.outputs.discard(failed.request_ids)
        for request_id in failed.request_ids:
            self._deliver(request_id, StepError(f"the decoder failed while generating this answer: {failed.cause}"))

    def _deliver(self, request_id: str, item: RequestOutput | BaseException) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            stream.put_nowait(item)

    def _fail_all(self, error: BaseException) -> None:
        self._error = error
        dead = error if isinstance(error, EngineDeadError) else EngineDeadError(f"the decoder engine failed: {error}")
        self._adapters.fail(dead)
        for request_id in list(self._streams):
            self._deliver(request_id, dead)


async def _next_merged(stream: asyncio.Queue[RequestOutput | BaseException], not_before: float) -> RequestOutput:
    """The next output, merged with every output that is queued behind it or arrives before `not_before` (the
    event loop's clock), unless the request finishes first: a consumer that fell behind (a busy gateway) gets
    one message for the steps it missed, and no stream sends more often than its interval."""
    loop = asyncio.get_running_loop()
    parts = [_output(await stream.get())]
    while not parts[-1].finished:
        if stream.empty():
            if loop.time() >= not_before:
                break
            try:
                # Not asyncio.wait_for: before Python 3.12 it may swallow the caller's cancellation (a client
                # that went away) when an output arrives at the same moment, and the sequence would run on.
                async with asyncio.timeout_at(not_before):
                    later = await stream.get()
            except TimeoutError:
                break
        else:
            later = stream.get_nowait()
        parts.append(_output(later))
    return RequestOutput.joined(parts)  # once: a backlog may be thousands of outputs


def _output(item: RequestOutput | BaseException) -> RequestOutput:
    if isinstance(item, BaseException):
        raise item
    return item

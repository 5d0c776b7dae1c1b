"""The load test's scenarios as locust users (`FastHttpUser`), one class per `Scenario`.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000     # the web UI; or `python -m loadtest.run`

The runner sets each class's `fixed_count`, `max_tokens`, `think_time_s` and timeouts with --config-users.
A request's stats name is its scenario; streaming answers also report a `TTFT` entry of the same name (the
time to the first SSE chunk with text), and the overload scenario counts its 429/503 answers under
"overload refused" (as successes: a fast refusal is what overload must produce). Set FLASHVQA_API_KEY
when the server requires keys."""

from __future__ import annotations

import itertools
import random
import time
from functools import cache
from typing import Any, ClassVar

from locust import FastHttpUser, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from loadtest.images import ImageSize, TestImage, picture
from loadtest.payloads import FOLLOW_UPS, QUESTIONS, answer_text, auth_headers, chat_body, user_message, vqa_form
from loadtest.scenarios import TTFT, Scenario
from loadtest.sse import SSEStream, carries_text

CHAT = "/v1/chat/completions"
VQA = "/v1/vqa"
REFUSALS = (429, 503)
# Every cold request gets new pixels, also new to a cache that outlived an earlier run (Redis keeps an hour).
_fresh_seeds = itertools.count(random.SystemRandom().randrange(1 << 48))
_request_numbers = itertools.count()


def fresh_picture(size: ImageSize = ImageSize.SQUARE) -> TestImage:
    return picture(next(_fresh_seeds), size)


@cache
def picture_pool(size: ImageSize, count: int) -> tuple[TestImage, ...]:
    """The same few pictures for the whole run (seeds 0..count-1)."""
    return tuple(picture(seed, size) for seed in range(count))


def unique_question() -> str:
    """A new prompt, so that the response cache cannot answer (the image may well be cached)."""
    return f"{random.choice(QUESTIONS)} (#{next(_request_numbers)})"


class FlashVQAUser(FastHttpUser):
    abstract = True
    scenario: ClassVar[Scenario]
    max_tokens = 16
    think_time_s = 0.2  # mean pause between a user's requests
    network_timeout = 30.0  # no byte for this long: a timeout (an error)
    connection_timeout = 30.0

    def wait_time(self) -> float:
        return random.uniform(0, 2 * self.think_time_s)

    @classmethod
    def prepare(cls) -> None:
        """Generate the pictures the scenario reuses before the clock starts (a photo takes ~0.5 s of CPU,
        which would stall every user of this process)."""

    @property
    def headers(self) -> dict[str, str]:
        # The server's deadline matches ours, so it frees the sequence of a request we stopped waiting for.
        return {"x-request-timeout": str(self.network_timeout)} | auth_headers()

    def ask(self, messages: list[dict[str, Any]], name: str | None = None) -> str | None:
        """A JSON chat completion; its answer, or None after a failure (already reported)."""
        with self._post(CHAT, chat_body(messages, self.max_tokens), "application/json", name) as response:
            return _judged_answer(response)

    def _post(
        self, path: str, body: bytes, content_type: str, name: str | None = None, stream: bool = False
    ) -> ResponseContextManager:
        headers = self.headers | {"content-type": content_type}
        return self.client.post(
            path,
            data=body,  # type: ignore[arg-type]  # locust's annotation leaves out bytes, which it sends as they are
            headers=headers,
            name=name or self.scenario.value,
            stream=stream,
            catch_response=True,
        )


class ColdUser(FlashVQAUser):
    scenario = Scenario.COLD

    @task
    def new_picture(self) -> None:
        self.ask([user_message(fresh_picture(), random.choice(QUESTIONS))])


class CachedUser(FlashVQAUser):
    scenario = Scenario.CACHED
    pool_size = 3

    @classmethod
    def prepare(cls) -> None:
        picture_pool(ImageSize.SQUARE, cls.pool_size)

    def on_start(self) -> None:
        """Ask every pair once (counted apart, as "cached warm-up"): what follows should all be hits."""
        for image in picture_pool(ImageSize.SQUARE, self.pool_size):
            for question in QUESTIONS[: self.pool_size]:
                self.ask([user_message(image, question)], name=f"{self.scenario.value} warm-up")

    @task
    def same_pictures(self) -> None:
        image = random.choice(picture_pool(ImageSize.SQUARE, self.pool_size))
        self.ask([user_message(image, random.choice(QUESTIONS[: self.pool_size]))])


class ConversationUser(FlashVQAUser):
    scenario = Scenario.CONVERSATION

    @task
    def question_and_follow_up(self) -> None:
        first = user_message(fresh_picture(), random.choice(QUESTIONS))
        answer = self.ask([first])
        if answer is not None:
            self.ask(
                [
                    first,
                    {"role": "assistant", "content": answer},
                    {"role": "user", "content": random.choice(FOLLOW_UPS)},
                ]
            )


class StreamingUser(FlashVQAUser):
    scenario = Scenario.STREAMING

    @task
    def streamed_answer(self) -> None:
        body = chat_body([user_message(fresh_picture(), random.choice(QUESTIONS))], self.max_tokens, stream=True)
        started = time.perf_counter()
        with self._post(CHAT, body, "application/json", stream=True) as response:
            if _failed(response):
                return
            try:
                events, first_text_at, done = _read_events(response)
            except (ValueError, OSError) as error:  # a malformed event; a timeout or reset mid-stream
                response.failure(_describe(error))
                return
            finally:
                response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            if first_text_at is not None:
                self._report_ttft(first_text_at - started)
            if errors := [event["error"] for event in events if "error" in event]:
                response.failure(f"error event: {errors[0].get('code') or errors[0].get('message')}")
            elif first_text_at is None or not done:
                response.failure("the stream ended without text or [DONE]")

    def _report_ttft(self, seconds: float) -> None:
        self.environment.events.request.fire(
            request_type=TTFT,
            name=self.scenario.value,
            response_time=seconds * 1000,
            response_length=0,
            exception=None,
            context={},
        )


class MixedSizesUser(FlashVQAUser):
    scenario = Scenario.MIXED_SIZES
    variants = 2  # per size; the bytes repeat (the encoder cache may hit), the upload and decoding do not

    @classmethod
    def prepare(cls) -> None:
        for size in ImageSize:
            picture_pool(size, cls.variants)

    @task
    def any_size(self) -> None:
        image = random.choice(picture_pool(random.choice(list(ImageSize)), self.variants))
        self.ask([user_message(image, unique_question())])


class MultipartUser(FlashVQAUser):
    scenario = Scenario.MULTIPART

    @task
    def form_upload(self) -> None:
        body, content_type = vqa_form(fresh_picture(), random.choice(QUESTIONS), self.max_tokens)
        with self._post(VQA, body, content_type) as response:
            _judged_answer(response)


class OverloadUser(FlashVQAUser):
    """More of these than the stack holds: each gets an answer or, at once, a 429 or 503."""

    scenario = Scenario.OVERLOAD
    pool_size = 8  # the decoder is what overflows: pictures repeat, prompts never

    @classmethod
    def prepare(cls) -> None:
        picture_pool(ImageSize.SQUARE, cls.pool_size)

    def wait_time(self) -> float:
        # A burst: users who ask again almost at once, so a freed place is taken before the next
        # refused user comes back (with the steady users' pauses the refusal share swung from 5% to 22%).
        return random.uniform(0, 0.2 * self.think_time_s)

    @task
    def ask_anyway(self) -> None:
        image = random.choice(picture_pool(ImageSize.SQUARE, self.pool_size))
        body = chat_body([user_message(image, unique_question())], self.max_tokens)
        with self._post(CHAT, body, "application/json") as response:
            if response.status_code in REFUSALS:
                response.request_meta["name"] = self.scenario.refused_name
                response.success()
            else:
                _judged_answer(response)


def _read_events(response: ResponseContextManager) -> tuple[list[dict[str, Any]], float | None, bool]:
    """An SSE answer's events, when its first text arrived (perf_counter), and whether [DONE] came."""
    stream, events, first_text_at = SSEStream(), [], None
    # Byte by byte until the first text: a larger read waits until that many bytes have come.
    for byte in response.iter_content(chunk_size=1, decode_content=False):
        new = stream.feed(byte)
        events += new
        if any(carries_text(event) for event in new):
            first_text_at = time.perf_counter()
            break
    for data in response.iter_content(chunk_size=1 << 16, decode_content=False):
        events += stream.feed(data)
    return events, first_text_at, stream.done


def _failed(response: ResponseContextManager) -> bool:
    """Reports anything but a 200 as a failure, named by its status or, without one, by its exception."""
    if response.status_code == 200:
        return False
    # Without a status there was no answer: the session kept the exception (a timeout, a reset).
    no_answer = response.request_meta["exception"]
    response.failure(f"HTTP {response.status_code}" if response.status_code else _describe(no_answer))
    return True


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _judged_answer(response: ResponseContextManager) -> str | None:
    if _failed(response):
        return None
    try:
        return answer_text(response.content or b"")
    except ValueError as error:
        response.failure(str(error))
        return None


@events.test_start.add_listener
def _prepare_pictures(environment: Environment, **_: Any) -> None:
    for user_class in environment.user_classes:
        if issubclass(user_class, FlashVQAUser):
            user_class.prepare()

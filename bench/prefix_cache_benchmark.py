"""Time to first token of a follow-up question about the same image, with reuse and without: the small model,
a 448x448 image, in one process on this host (no Ray, no HTTP: what reuse saves, not the serving overheads).

With reuse, the vision encoder's embedding cache and the decoder's prefix cache are on; without, both are off,
so the follow-up encodes the image again and prefills the whole conversation. Each round starts a conversation
about a new image: the first question (its greedy answer untimed), then the follow-up (the conversation so far
and a new question), timed from its arrival at the encoder to its first token. The two setups take turns in
every round, so other load on the machine weighs on both; figures are medians over rounds.

    .venv/bin/python -m bench.prefix_cache_benchmark [--model models/small-glm4v] [--rounds 7]
    (from the repository root; `flashvqa build-tiny-model --family glm4v --size small --out models/small-glm4v`)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from bench.timing import say
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import EncodeRequest, RawImage, RequestOutput, SamplingParams
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from services.vision_encoder.embedding_cache import EmbeddingCache
from services.vision_encoder.encoder import VisionEncoder, unbatched

IMAGE_SIDE = 448
FIRST_QUESTION = "What is in this picture?"
FOLLOW_UP = "What colour is the red shape?"


@dataclass(frozen=True)
class FollowUpTiming:
    ttft_s: float  # arrival at the encoder to the first token
    decoder_s: float  # of which the decoder: admission, prefill, first token
    prompt_tokens: int
    reused_tokens: int


class Conversations:
    """One setup: an encoder with its embedding cache and a decoder engine with its prefix cache, on or off."""

    def __init__(self, vision: VisionHalf, language: LanguageHalf, reuse: bool, answer_tokens: int) -> None:
        embedding_cache = EmbeddingCache(256 << 20 if reuse else 0)
        self.encoder = VisionEncoder(partial(unbatched, encode=vision.encode), embedding_cache)
        config = EngineConfig(max_num_seqs=2, max_model_len=2048, enable_prefix_caching=reuse)
        self.engine = LLMEngine(language, config)
        self.answer = SamplingParams(max_tokens=answer_tokens, temperature=0.0, ignore_eos=True)

    async def two_turns(self, image: RawImage, name: str) -> FollowUpTiming:
        first = image_question(FIRST_QUESTION, 1)
        answer = await self._ask(f"{name}-first", first, image)
        follow_up = [
            *first,
            {"role": "assistant", "content": "".join(o.text for o in answer)},
            {"role": "user", "content": [{"type": "text", "text": FOLLOW_UP}]},
        ]
        started = time.perf_counter()
        embedding = await self.encoder.encode(EncodeRequest(image))
        encoded = time.perf_counter()
        self.engine.add_request(f"{name}-follow-up", follow_up, [embedding], self.answer)
        first_token = self._first_output(f"{name}-follow-up")
        timing = FollowUpTiming(
            time.perf_counter() - started,
            time.perf_counter() - encoded,
            first_token.num_prompt_tokens,
            first_token.num_reused_tokens,
        )
        self._drain()  # the rest of the answer, untimed
        return timing

    async def _ask(self, request_id: str, messages: list[dict[str, Any]], image: RawImage) -> list[RequestOutput]:
        embedding = await self.encoder.encode(EncodeRequest(image))
        self.engine.add_request(request_id, messages, [embedding], self.answer)
        return [output for output in self._drain() if output.request_id == request_id]

    def _first_output(self, request_id: str) -> RequestOutput:
        while True:
            for output in self.engine.step():
                if output.request_id == request_id:
                    return output

    def _drain(self) -> list[RequestOutput]:
        outputs = []
        while self.engine.has_work:
            outputs += self.engine.step()
        return outputs


async def run(args: argparse.Namespace) -> None:
    cpu = torch.device("cpu")
    vision, language = VisionHalf(args.model, cpu), LanguageHalf(args.model, cpu)
    setups = {reuse: Conversations(vision, language, reuse, args.answer_tokens) for reuse in (True, False)}
    say(
        f"model {args.model}, CPU, {torch.get_num_threads()} torch threads; {IMAGE_SIDE}x{IMAGE_SIDE} images, "
        f"first answer {args.answer_tokens} tokens; {args.rounds} rounds after one warm-up round"
    )
    timings: dict[bool, list[FollowUpTiming]] = {True: [], False: []}
    for round_index in range(args.rounds + 1):
        image = _noise_image(seed=round_index)
        for reuse, setup in setups.items():
            timing = await setup.two_turns(image, f"round{round_index}")
            if round_index > 0:
                timings[reuse].append(timing)
    medians = {reuse: _report(reuse, timings[reuse]) for reuse in (True, False)}
    (ttft_with, decoder_with), (ttft_without, decoder_without) = medians[True], medians[False]
    say(
        f"follow-up TTFT with reuse / without: {ttft_with / ttft_without:.1%} (target: under 30%); "
        f"the decoder alone (prefix cache only): {decoder_with / decoder_without:.1%}"
    )


def _report(reuse: bool, timings: list[FollowUpTiming]) -> tuple[float, float]:
    ttft = statistics.median(t.ttft_s for t in timings) * 1000
    decoder = statistics.median(t.decoder_s for t in timings) * 1000
    prompt = statistics.median(t.prompt_tokens for t in timings)
    reused = statistics.median(t.reused_tokens for t in timings)
    fastest = min(t.ttft_s for t in timings) * 1000
    say(
        f"{'with' if reuse else 'without':>7} reuse: follow-up TTFT p50 {ttft:6.1f} ms (min {fastest:6.1f}), "
        f"of which the decoder {decoder:6.1f} ms; prompt {prompt:.0f} tokens, {reused:.0f} reused"
    )
    return ttft, decoder


def _noise_image(seed: int) -> RawImage:
    """A new image each round (random pixels: no two rounds share an embedding or a prefix)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
    return RawImage.from_image(Image.fromarray(pixels, "RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/small-glm4v"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--answer-tokens", type=int, default=32)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()

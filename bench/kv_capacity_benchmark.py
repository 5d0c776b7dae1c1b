"""How many 600-token image questions one KV budget keeps resident: dense slots against paged blocks.

    .venv/bin/python -m bench.kv_capacity_benchmark [--model DIR] [--slots 4] [--prompt-tokens 600]

The budget is what `--slots` dense slots of `max_model_len` (4096) tokens take: the engine before paging
reserved one such region per running sequence, whatever its length, so it held exactly `--slots` sequences.
The paged engine gets the same bytes as blocks (`kv_cache_bytes`) and as many sequence slots as it wants
(`max_num_seqs` 256, so only memory bounds it); it then answers twice as many questions as fit, each a
picture and a question of `--prompt-tokens` tokens and `--max-tokens` of answer, and the run records the most
sequences resident at once, their KV bytes each, and the preemptions. Twice: every question about a picture
of its own, then every question about one picture (its blocks shared). Image embeddings are random rows of
the real grid: the vision tower does not matter to the KV cache. Without `--model` it builds the `small`
random model in a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import SamplingParams
from services.models.kv_cache import BLOCK_SIZE
from services.models.language_half import LanguageHalf
from services.tiny_models.model_builder import build_tiny_model

MAX_MODEL_LEN = 4096
IMAGE_GRID = (1, 36, 60)  # 540 placeholder tokens after the 2x2 merge


@dataclass(frozen=True)
class Residency:
    most_resident: int
    kv_bytes_per_resident: float
    preemptions: int
    answered: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model directory (default: build the small random model)")
    parser.add_argument("--slots", type=int, default=4, help="dense slots whose bytes make the budget")
    parser.add_argument("--prompt-tokens", type=int, default=600)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or build_tiny_model("glm4v", Path(scratch) / "small-glm4v", size="small")
        language = LanguageHalf(model, torch.device("cpu"), dtype=torch.bfloat16)
        shape = language.kv_shape
        budget = args.slots * MAX_MODEL_LEN * shape.bytes_per_token()
        _say(
            f"KV budget {budget / 2**20:.1f} MiB ({shape.bytes_per_token()} bytes per token): dense slots of "
            f"{MAX_MODEL_LEN} tokens hold {args.slots} sequences, "
            f"{MAX_MODEL_LEN * shape.bytes_per_token() / 1024:.0f} KiB of KV each"
        )
        question = _question(language, args.prompt_tokens)
        fit = budget // (shape.bytes_per_block() * -(-(args.prompt_tokens + args.max_tokens) // BLOCK_SIZE))
        for shared in (False, True):
            result = _run(language, budget, question, count=2 * int(fit), max_tokens=args.max_tokens, shared=shared)
            label = "one picture for all" if shared else "a picture each"
            _say(
                f"paged, {label}: {result.most_resident} of {2 * int(fit)} resident at most "
                f"({result.most_resident / args.slots:.1f}x the dense slots), "
                f"{result.kv_bytes_per_resident / 1024:.0f} KiB of KV each, {result.preemptions} preemptions, "
                f"{result.answered} answered"
            )


def _question(language: LanguageHalf, prompt_tokens: int) -> list[dict]:
    """An image question whose prompt, with the picture's tokens, is `prompt_tokens` long."""
    words = 0
    while True:
        messages = image_question("What is in this picture? " + "Look closely. " * words, 1)
        length = language.render_prompt(messages, [IMAGE_GRID]).num_tokens
        if length >= prompt_tokens:
            return messages
        words += 1


def _run(
    language: LanguageHalf, budget: int, question: list[dict], count: int, max_tokens: int, shared: bool
) -> Residency:
    config = EngineConfig(
        max_num_seqs=256,
        max_model_len=MAX_MODEL_LEN,
        max_waiting=count,
        max_num_batched_tokens=4096,
        kv_cache_bytes=budget,
    )
    engine = LLMEngine(language, config)
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    generator = torch.Generator().manual_seed(0)
    rows = IMAGE_GRID[1] * IMAGE_GRID[2] // 4
    for index in range(count):
        embeds = torch.randn(rows, language.hidden_size, generator=generator, dtype=torch.float32)
        image = ImageEmbedding("shared" if shared else f"image-{index}", IMAGE_GRID, embeds.to(torch.bfloat16))
        engine.add_request(f"r{index}", question, [image], params)
    most, bytes_each, answered = 0, 0.0, 0
    while engine.has_work:
        answered += sum(output.finished for output in engine.step())
        stats = engine.stats()
        resident = stats.num_running
        if resident > most:
            held = stats.num_kv_blocks - stats.num_free_kv_blocks
            most, bytes_each = resident, held * language.kv_shape.bytes_per_block() / resident
    return Residency(most, bytes_each, engine.stats().num_preemptions, answered)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""What JSON-Schema-constrained decoding costs per token: decode step time with and without a grammar at batch
1 and 16 on the small model, and the part of a step spent filling and applying the token masks.

Every constrained sequence follows a list of at least four receipts of `examples/receipt_schema.json` (so each
stays in the batch for the measured steps, passing through enums, numbers, patterns and free strings). The
unconstrained and constrained runs alternate, `--rounds` times, and each figure is the median over rounds of
the per-round median step: other work on the machine then weighs on both sides alike.

    .venv/bin/python -m bench.structured_output_benchmark [--model models/small-glm4v] [--steps 30] [--rounds 5]
    (from the repository root; `flashvqa build-tiny-model --family glm4v --size small --out models/small-glm4v`)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench.timing import percentile, say, timed_seconds
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.structured_output import GrammarMatcher, TokenMasker
from services.local_pipeline import image_question
from services.messages import GrammarSpec, SamplingParams
from services.models.language_half import LanguageHalf

RECEIPT = Path(__file__).parents[1] / "examples" / "receipt_schema.json"
BATCHES = (1, 16)


class TimedTokenMasker(TokenMasker):
    """The engine's masker, keeping the time of each call."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__(vocab_size)
        self.seconds: list[float] = []

    def apply(self, logits: torch.Tensor, matchers: list[GrammarMatcher | None]) -> torch.Tensor:
        start = time.perf_counter()
        masked = super().apply(logits, matchers)
        self.seconds.append(time.perf_counter() - start)
        return masked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/small-glm4v"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    language = LanguageHalf(args.model, torch.device("cpu"))
    receipt = json.loads(RECEIPT.read_text())
    receipts = {
        "type": "object",
        "properties": {"receipts": {"type": "array", "items": receipt["schema"], "minItems": 4}},
        "required": ["receipts"],
    }
    grammar = GrammarSpec.for_schema(receipts, strict=True)
    say(
        f"model {args.model}, CPU, {torch.get_num_threads()} torch threads; {args.steps} decode steps x {args.rounds} "
        "rounds; grammar: a list of >= 4 receipts"
    )
    ratios: dict[int, tuple[float, float]] = {}
    for batch in BATCHES:
        plain, constrained, masking = [], [], []
        for _ in range(args.rounds):
            plain.append(_decode_step_seconds(language, batch, None, args.steps)[0])
            step, mask = _decode_step_seconds(language, batch, grammar, args.steps)
            constrained.append(step)
            masking.append(mask)
        base, with_grammar, mask = (statistics.median(values) * 1000 for values in (plain, constrained, masking))
        ratios[batch] = ((with_grammar - base) / base, mask / base)
        say(
            f"batch {batch:>2}: decode step p50 {base:6.2f} ms unconstrained, {with_grammar:6.2f} ms constrained "
            f"-> overhead {with_grammar - base:+5.2f} ms/step, {(with_grammar - base) / batch:+5.3f} ms/token "
            f"({ratios[batch][0]:+.1%} of the step); token masks alone {mask:5.2f} ms/step ({ratios[batch][1]:.1%})"
        )
    step_ratio, mask_ratio = ratios[16]
    say(
        f"constrained-decoding overhead at batch 16: {step_ratio:+.1%} of the decode step by step time, token masks "
        f"{mask_ratio:.1%} (target: under 10%)"
    )


def _decode_step_seconds(
    language: LanguageHalf, batch: int, grammar: GrammarSpec | None, steps: int
) -> tuple[float, float]:
    """Median decode step of `batch` sequences, and the median time of a step's token masks."""
    engine = LLMEngine(language, EngineConfig(max_num_seqs=16, max_model_len=1024))
    masker = TimedTokenMasker(language.lm_head_weight.shape[0])
    engine.token_masks = masker
    params = SamplingParams(max_tokens=steps + 10, temperature=0, ignore_eos=True, grammar=grammar)
    for index in range(batch):
        engine.add_request(f"r{index}", image_question(f"Read receipt {index}: " + "word " * 60, 0), [], params)
    engine.step()  # admits and prefills the whole batch
    masker.seconds.clear()
    times = timed_seconds(engine.step, steps - 1)  # one warm-up step, then steps - 1 timed ones
    assert engine.stats().num_running == batch, "a sequence finished early: the measured batch shrank"
    return percentile(times, 0.5), statistics.median(masker.seconds) if masker.seconds else 0.0


if __name__ == "__main__":
    main()

"""The decoder engine alone, no serving: prefill time and decode step time at batch 1, 4 and 16, and
the decode tokens/s ratio of batch 16 to batch 1 (what continuous batching can give at most).

    .venv/bin/python bench/engine_decode_benchmark.py [--model models/small-glm4v] [--steps 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import SamplingParams
from services.models.language_half import LanguageHalf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/small-glm4v"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--prompt-words", type=int, default=90)
    args = parser.parse_args()
    language = LanguageHalf(args.model, torch.device("cpu"))
    tokens_per_s: dict[int, float] = {}
    for batch in (1, 4, 16):
        engine = LLMEngine(language, EngineConfig(max_num_seqs=16, max_model_len=1024))
        params = SamplingParams(max_tokens=args.steps + 10, temperature=0, ignore_eos=True)
        for index in range(batch):
            engine.add_request(f"r{index}", image_question("word " * (args.prompt_words + index), 0), [], params)
        start = time.perf_counter()
        engine.step()  # admits and prefills the whole batch
        prefill_ms = (time.perf_counter() - start) * 1000 / batch
        step_times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            engine.step()
            step_times.append(time.perf_counter() - start)
        median = sorted(step_times)[len(step_times) // 2]
        tokens_per_s[batch] = batch / median
        _say(
            f"batch {batch:>2}: prefill {prefill_ms:6.1f} ms/sequence, decode step p50 {median * 1000:6.1f} ms "
            f"-> {tokens_per_s[batch]:7.1f} tokens/s"
        )
    _say(f"decode tokens/s, batch 16 vs 1: {tokens_per_s[16] / tokens_per_s[1]:.1f}x")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Latency of the safety checks on one CPU thread: the image models on a 512x512 image (preprocessing and
inference apart), the prompt check, and the streamed-answer check per delta.

    .venv/bin/python -m bench.safety_benchmark [--repeats 50]   (from the repository root)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from bench.timing import percentile, say, timed_seconds
from services.safety import SafetyFilter, SafetyOptions, nudenet_detector, opennsfw_classifier

PROMPT_EN = "Please read this receipt and tell me the total, the date, and which items were bought on discount. " * 2
PROMPT_ZH = "請仔細閱讀這張收據，告訴我總金額、日期，以及哪些商品是打折購買的。謝謝你的幫忙！" * 2
ANSWER_DELTA_EN = " the total"  # about one token
ANSWER_DELTA_ZH = "总金额"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8))

    start = time.perf_counter()
    safety = SafetyFilter.from_options(SafetyOptions())
    say(f"SafetyFilter.from_options (open_nsfw, terms, OpenCC): {(time.perf_counter() - start) * 1000:.0f} ms")
    classifier = opennsfw_classifier.OpenNSFWClassifier()
    batch = opennsfw_classifier.preprocess(image)[np.newaxis]
    session = classifier._session
    _report("open_nsfw preprocess", lambda: opennsfw_classifier.preprocess(image), args.repeats)
    _report("open_nsfw inference", lambda: session.run(None, {session.get_inputs()[0].name: batch}), args.repeats)
    _report("check_image (open_nsfw, total)", lambda: safety.check_image(image), args.repeats)

    if importlib.util.find_spec("nudenet") is not None:
        detector = nudenet_detector.NudeNetDetector()
        nudenet_batch, visible = nudenet_detector.preprocess(image)
        output = detector._session.run(None, {detector._input_name: nudenet_batch})[0][0]
        _report("NudeNet preprocess", lambda: nudenet_detector.preprocess(image), args.repeats)
        _report(
            "NudeNet inference",
            lambda: detector._session.run(None, {detector._input_name: nudenet_batch}),
            args.repeats,
        )
        _report(
            "NudeNet post-processing (numpy)",
            lambda: nudenet_detector.decode_detections(output, visible),
            args.repeats * 20,
        )
        _report("NudeNet scores (total)", lambda: detector.scores(image), args.repeats)

    _report(f"check_prompt, English, {len(PROMPT_EN)} chars", lambda: safety.check_prompt(PROMPT_EN), 2000)
    _report(f"check_prompt, Chinese, {len(PROMPT_ZH)} chars", lambda: safety.check_prompt(PROMPT_ZH), 2000)
    for delta in (ANSWER_DELTA_EN, ANSWER_DELTA_ZH):
        checker = safety.answer_checker()
        _report(f"answer feed({delta!r})", lambda delta=delta, checker=checker: checker.feed(delta), 20000)


def _report(name: str, run: Callable[[], object], repeats: int) -> None:
    times = timed_seconds(run, repeats)
    p50, p90 = statistics.median(times), percentile(times, 0.9)
    unit, scale = ("ms", 1e3) if p50 > 1e-3 else ("us", 1e6)
    say(f"{name:<45} p50 {p50 * scale:8.2f} {unit}   p90 {p90 * scale:8.2f} {unit}")


if __name__ == "__main__":
    main()

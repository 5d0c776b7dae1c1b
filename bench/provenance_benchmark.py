"""The provenance check's cost per image: the container scan, the C2PA read, and the DWT-DCT watermark decode
(ours, both pixel conventions and all payloads, against `invisible-watermark`'s own decoder), at 512x512
and 1024x1024.

    .venv/bin/python -m bench.provenance_benchmark [--repeats 30]   (from the repository root)
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import numpy as np
from imwatermark import WatermarkDecoder
from PIL import Image, PngImagePlugin

from bench.timing import percentile, say, timed_seconds
from services.provenance import ProvenanceChecker, scan_container
from services.provenance.c2pa_reader import C2paManifestReader
from services.provenance.dwt_dct_watermark import PixelConvention, block_votes, detect_watermark, rgb_planes
from tests.provenance.c2pa_signing import SigningChain, make_chain, sign
from tests.provenance.synthetic import encoded, natural_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    chain = make_chain()
    for side in (512, 1024):
        _bench_size(side, args.repeats, chain)


def _bench_size(side: int, repeats: int, chain: SigningChain) -> None:
    rgb = natural_image(side, side, side)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7")
    png = encoded(rgb, "PNG", pnginfo=info, compress_level=1)
    signed = sign(png, "image/png", chain)
    jpeg = encoded(rgb, "JPEG", quality=90)
    say(f"--- {side}x{side} (PNG {len(png) >> 10} kB, JPEG {len(jpeg) >> 10} kB)")
    _time("container scan, PNG with text chunk", lambda: scan_container(png), repeats)
    _time("container scan, signed PNG", lambda: scan_container(signed), repeats)
    _time("container scan, JPEG", lambda: scan_container(jpeg), repeats)
    _time("C2PA read + validate (offline)", lambda: C2paManifestReader().read(signed, "image/png"), repeats)
    planes = rgb_planes(rgb)
    _time("ours: votes, uint8 convention", lambda: block_votes(planes, PixelConvention.UINT8), repeats)
    _time("ours: votes, float convention", lambda: block_votes(planes, PixelConvention.FLOAT), repeats)
    _time("ours: detect (2 conventions x 4 payloads)", lambda: detect_watermark(rgb), repeats)
    decoder = WatermarkDecoder("bits", 48)
    _time("imwatermark decode, 48 bits, uint8", lambda: decoder.decode(bgr, "dwtDct"), max(3, repeats // 5))
    checker = ProvenanceChecker()
    image = Image.open(io.BytesIO(signed))
    image.load()
    _time("whole check, decoded image given", lambda: checker.check(signed, image), repeats)
    _time("whole check, decoding the PNG itself", lambda: checker.check(signed), max(3, repeats // 3))


def _time(label: str, work: Callable[[], object], repeats: int) -> None:
    times_ms = [seconds * 1000 for seconds in timed_seconds(work, repeats)]
    say(
        f"{label:<46} min {times_ms[0]:8.3f} ms   p50 {percentile(times_ms, 0.5):8.3f} ms   "
        f"p99 {percentile(times_ms, 0.99):8.3f} ms"
    )


if __name__ == "__main__":
    main()

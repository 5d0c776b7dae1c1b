"""Marking test images with `imwatermark.WatermarkEncoder` itself, fed as each generator feeds it: 8-bit BGR
(SD 1.x/2.x scripts) or float32 BGR in 0..255 (diffusers' SDXL watermarker, generative-models, FLUX)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from imwatermark import WatermarkEncoder

from services.provenance.dwt_dct_watermark import PixelConvention, WatermarkPayload

Rgb = npt.NDArray[np.uint8]


def embed(rgb: Rgb, payload: WatermarkPayload, convention: PixelConvention) -> Rgb:
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", [int(bit) for bit in payload.bits])
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if convention is PixelConvention.FLOAT:
        marked = np.clip(np.round(encoder.encode(bgr.astype(np.float32), "dwtDct")), 0, 255).astype(np.uint8)
    else:
        marked = encoder.encode(bgr, "dwtDct")
    return np.ascontiguousarray(marked[..., ::-1])

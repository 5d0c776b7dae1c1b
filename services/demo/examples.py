"""The example pictures (the README, docs/demo-model.md): held-out scenes drawn by the demo's own renderer,
so the shipped demo model meets them as it meets any held-out picture (it never trained on them).

    python -m services.demo.examples   # rewrites examples/images/
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.demo.dataset import Split, split_of
from services.demo.drawing import render
from services.demo.scene import ReceiptScene, Scene, ShapesScene

EXAMPLES_DIR = Path(__file__).parents[2] / "examples" / "images"

# A train ticket (RAIL 12306, TRANSPORT: a travel expense, total 268.00) and four red stars.
EXAMPLE_SCENES: dict[str, Scene] = {
    "receipt.png": ReceiptScene(merchant=1, date="2026-05-08", category=0, total="268.00"),
    "shapes.png": ShapesScene(shape=3, colour=0, cells=(1, 3, 5, 7), jitter=(0, 0)),
}


def write_examples(directory: Path = EXAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, scene in EXAMPLE_SCENES.items():
        assert split_of(scene) is Split.HELDOUT, f"{name} must be a picture training never sees"
        render(scene).save(directory / name)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    sys.stdout.writelines(f"{path}\n" for path in write_examples())

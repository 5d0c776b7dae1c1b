"""The sizes a tiny model is built in (`flashvqa build-tiny-model --size`)."""

from typing import Literal

Size = Literal["tiny", "small"]
SIZES: tuple[Size, ...] = ("tiny", "small")

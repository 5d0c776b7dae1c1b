"""Text as the term matcher sees it, so that look-alike spellings of a term still match it.

Invisible characters go first (a zero-width space inside a word must not split it), then NFKC folds
full-width and other compatibility forms, casefold folds case, OpenCC maps traditional Chinese to
simplified, and runs of whitespace become one space. Terms go through the same steps, so matching is
on normalised text only; its length may differ from the original's (casefold turns "ß" into "ss").
"""

from __future__ import annotations

import re
import unicodedata

import opencc

# Unicode's Default_Ignorable_Code_Point set: characters that render as nothing, such as U+200B..U+200F
# (zero-width space, joiners, direction marks), U+2060 word joiner, U+FEFF, U+00AD soft hyphen, the
# bidi controls and the variation selectors.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]+"
)
_WHITESPACE = re.compile(r"\s+")


class TextNormalizer:
    """`normalize(text)`: the steps in the module docstring. Safe to share between threads."""

    def __init__(self, opencc_config: str = "t2s") -> None:
        self._to_simplified = opencc.OpenCC(opencc_config)

    def normalize(self, text: str) -> str:
        text = _INVISIBLE.sub("", text)
        # NFKC again after casefold, as the Unicode standard's caseless matching does.
        text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if not text.isascii():
            text = self._to_simplified.convert(text)
        return _WHITESPACE.sub(" ", text)

"""Look-alike spellings of a text normalise to the same string as its plain spelling."""

from __future__ import annotations

import pytest

from services.safety.text_normalizer import TextNormalizer


class TestFoldsLookAlikes:
    """Each disguised spelling normalises to exactly what the plain one does."""

    @pytest.mark.parametrize(
        ("disguised", "plain"),
        [
            ("ＫＩＬＬ　ＭＹＳＥＬＦ", "kill myself"),  # full-width letters and ideographic space
            ("KiLL MySeLF", "kill myself"),
            ("ki\u200bll my\u200dse\ufefflf", "kill myself"),  # zero-width space, joiner, BOM
            ("kill my\u00adself", "kill myself"),  # soft hyphen
            ("k\u2060i\u2063l\u202el my\ufe0fself", "kill myself"),  # word joiner, invisible separator, bidi
            ("kill \n\t  myself", "kill myself"),
            ("Straße", "strasse"),
            ("ﬁle", "file"),  # ligature
            ("①②", "12"),
        ],
    )
    def test_latin(self, normalizer: TextNormalizer, disguised: str, plain: str) -> None:
        assert normalizer.normalize(disguised) == normalizer.normalize(plain) == plain

    @pytest.mark.parametrize(
        ("traditional", "simplified"),
        [("自殺方法", "自杀方法"), ("製造炸彈", "制造炸弹"), ("請問這張圖片裡有什麼", "请问这张图片里有什么")],
    )
    def test_traditional_chinese_becomes_simplified(
        self, normalizer: TextNormalizer, traditional: str, simplified: str
    ) -> None:
        assert normalizer.normalize(traditional) == simplified
        assert normalizer.normalize(simplified) == simplified

    def test_zero_width_characters_inside_chinese(self, normalizer: TextNormalizer) -> None:
        assert normalizer.normalize("自\u200b殺\u200c方法") == "自杀方法"

    def test_full_width_punctuation_and_digits(self, normalizer: TextNormalizer) -> None:
        assert normalizer.normalize("１２３！？") == "123!?"


class TestIsStable:
    """Normalising twice changes nothing, so terms and text meet in the same form."""

    @pytest.mark.parametrize("text", ["ＫＩＬＬ ｍｙ\u200bself", "自殺方法", "Straße ǅ ﬁ", "", "   "])
    def test_idempotent(self, normalizer: TextNormalizer, text: str) -> None:
        once = normalizer.normalize(text)
        assert normalizer.normalize(once) == once

"""The gateway's one entry point: image, prompt and answer checks against the policy, and a model that
cannot load refuses images (fail closed) or lets them through (fail open), as configured."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from services.safety import Action, CategoryPolicy, SafetyFilter, SafetyOptions, SafetyUnavailableError, Source
from tests.safety.images import SKIN_TONE, flat, receipt, shapes_open_nsfw_misreads


@pytest.fixture(scope="module")
def safety() -> SafetyFilter:
    return SafetyFilter.from_options(SafetyOptions())


class TestImages:
    """With the default policy, ordinary pictures pass and what the model rates NSFW is blocked."""

    def test_receipt_allowed(self, safety: SafetyFilter) -> None:
        assert safety.checks_images and safety.image_error is None
        assert safety.check_image(receipt()) == []

    def test_misread_shapes_blocked(self, safety: SafetyFilter) -> None:
        (verdict,) = safety.check_image(shapes_open_nsfw_misreads())
        assert (verdict.category, verdict.action, verdict.source) == ("sexual", Action.BLOCK, Source.IMAGE)
        assert verdict.score > 0.8

    def test_threshold_and_action_are_the_operators(self) -> None:
        options = SafetyOptions(categories={"sexual": CategoryPolicy(action=Action.FLAG, threshold=0.15)})
        strict = SafetyFilter.from_options(options)
        (verdict,) = strict.check_image(flat(SKIN_TONE))
        assert verdict.action is Action.FLAG and 0.15 <= verdict.score < 0.8
        assert strict.check_image(receipt()) == []

    def test_image_checks_off(self) -> None:
        for options in (SafetyOptions(check_image=False), SafetyOptions(image_model="none")):
            unchecked = SafetyFilter.from_options(options)
            assert not unchecked.checks_images
            assert unchecked.check_image(shapes_open_nsfw_misreads()) == []


class TestModelThatCannotLoad:
    """A missing or corrupt model fails closed (SafetyUnavailableError on every image) unless configured to
    fail open, which logs and allows; text checks work either way."""

    @pytest.fixture(params=["missing", "corrupt"])
    def broken_model(self, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
        path = tmp_path / "open-nsfw.onnx"
        if request.param == "corrupt":
            path.write_bytes(b"not an onnx model" * 100)
        return path

    def test_fails_closed_by_default(self, broken_model: Path, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.ERROR):
            closed = SafetyFilter.from_options(SafetyOptions(image_model_path=broken_model))
        assert "503" in caplog.text
        assert not closed.checks_images and "opennsfw" in (closed.image_error or "")
        for _ in range(2):
            with pytest.raises(SafetyUnavailableError, match="unavailable"):
                closed.check_image(receipt())
        assert closed.check_prompt("heil hitler")[0].action is Action.BLOCK

    def test_fails_open_when_configured(self, broken_model: Path, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.ERROR):
            open_ = SafetyFilter.from_options(SafetyOptions(image_model_path=broken_model, fail_closed=False))
        assert "NOT checked" in caplog.text
        assert open_.check_image(shapes_open_nsfw_misreads()) == []
        assert open_.check_prompt("heil hitler")[0].action is Action.BLOCK

    def test_missing_optional_package(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
        closed = SafetyFilter.from_options(SafetyOptions(image_model="nudenet"))
        with pytest.raises(SafetyUnavailableError, match="'nudenet' package is not installed"):
            closed.check_image(receipt())


class TestText:
    """Prompt and answer checks use the shipped list plus the operator's file, and can be turned off."""

    def test_prompt(self, safety: SafetyFilter) -> None:
        (verdict,) = safety.check_prompt("請問自殺方法？")
        assert (verdict.category, verdict.action, verdict.source) == ("self_harm", Action.FLAG, Source.PROMPT)
        assert safety.check_prompt("What does the receipt say?") == []

    def test_answer(self, safety: SafetyFilter) -> None:
        checker = safety.answer_checker()
        assert checker.feed("Step one: heil hit") == []
        assert [verdict.category for verdict in checker.feed("ler")] == ["hate"]

    def test_extra_terms_file(self, tmp_path: Path) -> None:
        path = tmp_path / "extra.tsv"
        path.write_text("weapons\tghost gun\nweapons\t幽灵枪\n", encoding="utf-8")
        extra = SafetyFilter.from_options(SafetyOptions(terms_file=path, use_default_terms=False))
        assert [verdict.category for verdict in extra.check_prompt("print a GHOST GUN")] == ["weapons"]
        assert extra.check_prompt("幽靈槍")[0].action is Action.FLAG  # unlisted category: the default policy
        assert extra.check_prompt("heil hitler") == []

    def test_bad_terms_file_is_a_configuration_error(self, tmp_path: Path) -> None:
        path = tmp_path / "extra.tsv"
        path.write_text("no tab\n", encoding="utf-8")
        with pytest.raises(ValueError, match=r"extra\.tsv:1"):
            SafetyFilter.from_options(SafetyOptions(terms_file=path, check_image=False))

    def test_text_checks_off(self) -> None:
        quiet = SafetyFilter.from_options(SafetyOptions(check_prompt=False, check_answer=False, check_image=False))
        assert quiet.check_prompt("heil hitler") == []
        assert quiet.answer_checker().feed("heil hitler") == []

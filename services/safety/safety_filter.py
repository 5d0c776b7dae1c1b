"""The one object the gateway holds: checks an image, a prompt and a streamed answer against the policy."""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image

from services.safety.answer_checker import AnswerChecker
from services.safety.errors import ModelLoadError, SafetyUnavailableError
from services.safety.image_classifier import ImageClassifier, load_image_classifier
from services.safety.options import SafetyOptions
from services.safety.policy import SafetyPolicy
from services.safety.term_list import DEFAULT_TERMS_PATH, Term, read_terms
from services.safety.term_matcher import TermMatcher
from services.safety.text_normalizer import TextNormalizer
from services.safety.verdict import SafetyVerdict, Source

logger = logging.getLogger(__name__)


class SafetyFilter:
    """Each check returns the verdicts of the categories that tripped and are not `allow` (empty: clean).

    When the image model could not load (`image_error` says why), `check_image` raises
    SafetyUnavailableError if the filter fails closed, and allows every image if it fails open.
    """

    def __init__(
        self,
        policy: SafetyPolicy,
        *,
        term_matcher: TermMatcher,
        image_classifier: ImageClassifier | None = None,
        image_error: str | None = None,
        fail_closed: bool = True,
        check_prompt: bool = True,
        check_answer: bool = True,
    ) -> None:
        self.policy = policy
        self.image_error = image_error
        self.fail_closed = fail_closed
        self._matcher = term_matcher
        self._image_classifier = image_classifier
        self._check_prompt = check_prompt
        self._check_answer = check_answer

    @classmethod
    def from_options(cls, options: SafetyOptions) -> SafetyFilter:
        """Loads the term list (a bad terms file raises: it is configuration) and the image model (a model
        that cannot load is logged and recorded, and refuses or allows images as `fail_closed` says)."""
        terms = _terms(options) if options.check_prompt or options.check_answer else []
        image_classifier, image_error = None, None
        if options.uses_image_model:
            try:
                image_classifier = load_image_classifier(options.image_model, options.image_model_path)
            except ModelLoadError as error:
                image_error = f"the {options.image_model} image safety model is unavailable: {error}"
                consequence = "image requests fail with 503" if options.fail_closed else "images are NOT checked"
                logger.error("%s; %s", image_error, consequence)
        return cls(
            options.policy,
            term_matcher=TermMatcher(terms, TextNormalizer()),
            image_classifier=image_classifier,
            image_error=image_error,
            fail_closed=options.fail_closed,
            check_prompt=options.check_prompt,
            check_answer=options.check_answer,
        )

    @property
    def checks_images(self) -> bool:
        return self._image_classifier is not None

    def check_image(self, image: Image.Image) -> list[SafetyVerdict]:
        """Blocking (about 10-30 ms of one CPU thread): the gateway runs it in a worker thread."""
        if self._image_classifier is None:
            if self.image_error is not None and self.fail_closed:
                raise SafetyUnavailableError(self.image_error)
            return []
        try:
            scores = self._image_classifier.scores(image)
        except Exception as error:  # onnxruntime's errors derive from Exception alone
            if self.fail_closed:
                raise SafetyUnavailableError(f"the image safety model failed: {error}") from error
            logger.exception("the image safety model failed; the image is allowed (fail_closed=False)")
            return []
        return self._verdicts(scores, Source.IMAGE)

    def check_prompt(self, text: str) -> list[SafetyVerdict]:
        if not self._check_prompt:
            return []
        found = self._matcher.categories_in(text)
        return self._verdicts(dict.fromkeys(sorted(found), 1.0), Source.PROMPT)

    def answer_checker(self) -> AnswerChecker:
        """A checker for one streamed answer (one that never reports when answers are not checked)."""
        matcher = self._matcher if self._check_answer else TermMatcher([], self._matcher.normalizer)
        return AnswerChecker(matcher, self.policy)

    def _verdicts(self, scores: dict[str, float], source: Source) -> list[SafetyVerdict]:
        verdicts = (self.policy.verdict(category, score, source) for category, score in scores.items())
        return [verdict for verdict in verdicts if verdict is not None]


def _terms(options: SafetyOptions) -> list[Term]:
    paths: list[Path] = [DEFAULT_TERMS_PATH] if options.use_default_terms else []
    if options.terms_file is not None:
        paths.append(options.terms_file)
    return [term for path in paths for term in read_terms(path)]

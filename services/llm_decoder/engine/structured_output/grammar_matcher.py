"""Where one sequence's output stands in its grammar."""

from __future__ import annotations

import logging

import llguidance

logger = logging.getLogger(__name__)


class GrammarMatcher:
    """Advanced by every token the sequence samples; tells which tokens may come next (see `TokenMasker`)
    and when the output is complete."""

    def __init__(self, matcher: llguidance.LLMatcher) -> None:
        self.llmatcher = matcher

    @property
    def is_finished(self) -> bool:
        """Complete: only an end-of-sequence token could follow. Also true after a matcher error."""
        return self.llmatcher.is_stopped()

    def accept(self, token_id: int) -> None:
        # Tokens are sampled under this matcher's mask, so a refusal means the grammar hit a parser limit
        # mid-output: the sequence then ends as it stands rather than failing the whole batch.
        if not self.llmatcher.consume_token(token_id):
            logger.warning("grammar matcher refused token %d: %s", token_id, self.llmatcher.get_error())

"""What the decoder streams back for one request: new text and token ids, and whether it ended."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestOutput:
    """What one step produced for one request: new text and token ids, and whether it ended."""

    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None
    num_prompt_tokens: int
    num_output_tokens: int
    num_reused_tokens: int = 0  # prompt tokens whose KV came from the prefix cache (OpenAI's `cached_tokens`)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @staticmethod
    def joined(outputs: list[RequestOutput]) -> RequestOutput:
        """Consecutive outputs of one request, as one (in linear time: a whole answer is thousands)."""
        last = outputs[-1]
        if any(o.request_id != last.request_id or o.finished for o in outputs[:-1]):
            raise ValueError("only consecutive outputs of one request, the last of them alone finished, join")
        return RequestOutput(
            request_id=last.request_id,
            text="".join(output.text for output in outputs),
            token_ids=tuple(token for output in outputs for token in output.token_ids),
            finish_reason=last.finish_reason,
            num_prompt_tokens=last.num_prompt_tokens,
            num_output_tokens=last.num_output_tokens,
            num_reused_tokens=last.num_reused_tokens,
        )

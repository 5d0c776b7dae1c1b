"""A conversation's key is the same on every turn, and differs between conversations that share no KV."""

from __future__ import annotations

from typing import Any

from services.routing import conversation_affinity_key

IMAGE = {"type": "image"}


def _user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


FIRST_TURN = [_user(IMAGE, _text("What is this?"))]
FOLLOW_UP = [*FIRST_TURN, {"role": "assistant", "content": "A receipt."}, _user(_text("Is it a travel expense?"))]


class TestConversationAffinityKey:
    def test_every_turn_keeps_the_first_turns_key(self) -> None:
        assert conversation_affinity_key(FIRST_TURN, ["h1"]) == conversation_affinity_key(FOLLOW_UP, ["h1"])

    def test_a_later_image_does_not_change_it(self) -> None:
        with_another_image = [*FOLLOW_UP, {"role": "assistant", "content": "Yes."}, _user(IMAGE, _text("And this?"))]
        assert conversation_affinity_key(with_another_image, ["h1", "h2"]) == conversation_affinity_key(
            FIRST_TURN, ["h1"]
        )

    def test_another_image_is_another_key(self) -> None:
        assert conversation_affinity_key(FIRST_TURN, ["h1"]) != conversation_affinity_key(FIRST_TURN, ["h2"])

    def test_the_same_picture_with_another_first_question_shares_the_key(self) -> None:
        other_question = [_user(IMAGE, _text("How much was paid?"))]
        assert conversation_affinity_key(other_question, ["h1"]) == conversation_affinity_key(FIRST_TURN, ["h1"])

    def test_text_before_the_image_and_a_system_prompt_are_part_of_it(self) -> None:
        text_first = [_user(_text("Look:"), IMAGE)]
        with_system = [{"role": "system", "content": "Answer briefly."}, *FIRST_TURN]
        keys = {conversation_affinity_key(messages, ["h1"]) for messages in (FIRST_TURN, text_first, with_system)}
        assert len(keys) == 3

    def test_text_only_conversations_are_keyed_by_their_first_question(self) -> None:
        first = [{"role": "user", "content": "Hello"}]
        follow_up = [*first, {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "How are you?"}]
        other = [{"role": "user", "content": "Good morning"}]
        assert conversation_affinity_key(first, []) == conversation_affinity_key(follow_up, [])
        assert conversation_affinity_key(first, []) != conversation_affinity_key(other, [])

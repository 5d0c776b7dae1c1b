"""Training the demo adapter: every answer is restyled as a sentence that starts with it, tokens and all (the
base's answer stays where the base reads it), and a few steps write an adapter the server loads."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import torch
from transformers import AutoTokenizer

from services.demo.adapter_training import AdapterTrainConfig, train_adapter
from services.demo.dataset import Split, samples
from services.demo.questions import LANGUAGES, QuestionKind
from services.demo.sentences import in_sentences
from services.demo.shipped import DEMO_MODEL
from services.models.language_half import LanguageHalf
from services.models.lora import load_peft_adapter


def test_every_answer_becomes_a_sentence_that_starts_with_its_tokens() -> None:
    tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL)
    seen = set()
    for sample in islice(samples(Split.TRAIN, 0), 300):
        question, restyled = sample.question, in_sentences(sample).question
        assert (restyled.kind, restyled.text, restyled.language) == (question.kind, question.text, question.language)
        assert restyled.answer.startswith(question.answer) and restyled.answer != question.answer
        answer_ids = tokenizer(question.answer, add_special_tokens=False)["input_ids"]
        assert tokenizer(restyled.answer, add_special_tokens=False)["input_ids"][: len(answer_ids)] == answer_ids
        assert restyled.answer.endswith("." if question.language == "en" else "。")
        seen.add((question.kind, question.language))
    assert seen == {(kind, language) for kind in QuestionKind for language in LANGUAGES}


def test_a_few_steps_write_an_adapter_the_server_loads(tmp_path: Path) -> None:
    accuracy = train_adapter(AdapterTrainConfig(out=tmp_path, steps=2, batch_size=2, eval_per_group=1))
    assert set(accuracy) == {kind.value for kind in QuestionKind}
    assert {path.name for path in tmp_path.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    assert json.loads((tmp_path / "adapter_config.json").read_text())["base_model_name_or_path"] == DEMO_MODEL.name
    language = LanguageHalf(DEMO_MODEL, torch.device("cpu"), torch.float32)
    assert load_peft_adapter("smoke", tmp_path, language.text_model, max_rank=8).rank == 8

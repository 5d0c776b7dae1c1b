"""A small byte-level BPE tokenizer carrying a family's real special tokens.

There is no model hub here, so test and demo models need a tokenizer the project makes itself. Byte-level
BPE encodes any text (Chinese included) and round-trips it exactly, like the real tokenizers; the vocabulary
is learnt from a generated corpus of the questions and answers this service is about.
"""

from __future__ import annotations

import itertools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from services.models.family import GLM4V, QWEN2_5_VL, ModelFamily

# In the order of the real vocabularies' added tokens (GLM-4.1V/4.5V/4.6V; Qwen2.5-VL).
SPECIAL_TOKENS: dict[str, list[str]] = {
    GLM4V.name: [
        "<|endoftext|>",
        "[MASK]",
        "[gMASK]",
        "[sMASK]",
        "<sop>",
        "<eop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
        "<|begin_of_image|>",
        "<|end_of_image|>",
        "<|begin_of_video|>",
        "<|end_of_video|>",
        "<|begin_of_audio|>",
        "<|end_of_audio|>",
        "<|begin_of_transcription|>",
        "<|end_of_transcription|>",
        "<|code_prefix|>",
        "<|code_middle|>",
        "<|code_suffix|>",
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
        "<arg_key>",
        "</arg_key>",
        "<arg_value>",
        "</arg_value>",
        "/nothink",
        "<|begin_of_box|>",
        "<|end_of_box|>",
        "<|image|>",
        "<|video|>",
    ],
    QWEN2_5_VL.name: [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|object_ref_start|>",
        "<|object_ref_end|>",
        "<|box_start|>",
        "<|box_end|>",
        "<|quad_start|>",
        "<|quad_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<tool_call>",
        "</tool_call>",
    ],
}
# Tokens that end an assistant turn (the real generation_config's eos ids).
STOP_TOKENS: dict[str, list[str]] = {
    GLM4V.name: ["<|endoftext|>", "<|user|>", "<|observation|>"],
    QWEN2_5_VL.name: ["<|im_end|>", "<|endoftext|>"],
}
PAD_TOKEN: dict[str, str] = {GLM4V.name: "<|endoftext|>", QWEN2_5_VL.name: "<|endoftext|>"}

_COLOURS = [
    ("red", "红色"),
    ("green", "绿色"),
    ("blue", "蓝色"),
    ("yellow", "黄色"),
    ("black", "黑色"),
    ("white", "白色"),
    ("orange", "橙色"),
    ("purple", "紫色"),
]
_SHAPES = [("circle", "圆形"), ("square", "正方形"), ("triangle", "三角形"), ("star", "星形")]
_CATEGORIES = [("transport", "交通"), ("meals", "餐饮"), ("lodging", "住宿"), ("office", "办公")]
_QUESTIONS = [
    "What is in this picture?",
    "Describe the image.",
    "What colour is the {colour_en} shape?",
    "How many {shape_en}s are there?",
    "Is this a travel expense?",
    "What is the total?",
    "What brand is this?",
    "Is this image safe?",
    "这是什么品牌?",
    "这张图片里有什么?",
    "这是差旅费吗?",
    "总金额是多少?",
    "图中有几个{shape_zh}?",
]
_ANSWERS = [
    "The image shows a {colour_en} {shape_en}.",
    "There are {count} {shape_en}s.",
    "Yes, this is a {category_en} expense of {amount} yuan.",
    "No, it is not a travel expense.",
    "图中有一个{colour_zh}的{shape_zh}。",
    "这是{category_zh}费用,总计{amount}元。",
    "是的。",
    "不是。",
    "The total is {amount}.",
    "I cannot tell from this image.",
]


def training_corpus() -> list[str]:
    """Deterministic sentences in English and Chinese covering the service's vocabulary."""
    lines: list[str] = []
    combos = itertools.product(_COLOURS, _SHAPES, _CATEGORIES, range(1, 6))
    for index, ((colour_en, colour_zh), (shape_en, shape_zh), (category_en, category_zh), count) in enumerate(combos):
        fields = {
            "colour_en": colour_en,
            "colour_zh": colour_zh,
            "shape_en": shape_en,
            "shape_zh": shape_zh,
            "category_en": category_en,
            "category_zh": category_zh,
            "count": count,
            "amount": f"{(index * 37) % 1000}.{index % 100:02d}",
        }
        lines.extend(template.format(**fields) for template in _QUESTIONS + _ANSWERS)
    lines.append("0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}<>/\\-+*=_#@%&$")
    return lines


def build_tokenizer(family: ModelFamily, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train the BPE on the corpus and add `family`'s special tokens after the learnt vocabulary."""
    tokenizer = Tokenizer(models.BPE())
    # One token per digit, as Qwen2's tokenizer does: numbers stay compositional, so a small model can read
    # a price digit by digit instead of learning a token for every amount.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=STOP_TOKENS[family.name][0],
        pad_token=PAD_TOKEN[family.name],
        additional_special_tokens=SPECIAL_TOKENS[family.name],
        clean_up_tokenization_spaces=False,
    )
    return wrapped

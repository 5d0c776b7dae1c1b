"""The check an engine runs before it serves: the engine's own path (a prompt chunk, then decode steps over
the paged KV cache, through the chosen attention backend) must give the logits that transformers' own forward
gives over the whole sequence at once.

It catches what would otherwise answer wrongly without an error: a transformers version whose layers no longer
call our cache or attention function, a backend that reads the wrong keys, a dtype that loses too much. It
runs on a short text prompt and a few fixed continuation tokens, in blocks no sequence holds yet.
"""

from __future__ import annotations

import torch

from services.llm_decoder.engine.model_runner import ModelRunner
from services.llm_decoder.engine.scheduler import Chunk, ScheduledStep
from services.llm_decoder.engine.sequence import Sequence
from services.messages import SamplingParams
from services.models.attention.step import ATTENTION_IMPLEMENTATION
from services.models.language_half import Prompt

# Largest difference allowed between the two paths' logits, relative to the largest reference logit: bf16
# rounds each layer's activations to 8 bits of mantissa; fp32 differs only by summation order.
TOLERANCE = {torch.float32: 1e-3, torch.float16: 3e-2, torch.bfloat16: 6e-2}
PROMPT_TOKENS = 40  # over two blocks and, at a small budget, several chunks
NUM_DECODES = 4


class SelfCheckError(RuntimeError):
    """The engine's incremental decode disagrees with a full forward: serving would give wrong answers."""


@torch.inference_mode()
def check_incremental_decode(runner: ModelRunner, budget: int) -> float:
    """The largest relative logit difference found, with prompt chunks of at most `budget` tokens; raises
    SelfCheckError beyond the dtype's tolerance."""
    language = runner.language
    num_tokens = min(PROMPT_TOKENS, runner.num_blocks * runner.kv.block_size - NUM_DECODES)
    words = language.tokenizer("Is the engine right? Check each step.", add_special_tokens=False)["input_ids"]
    token_ids = (words * num_tokens)[:num_tokens]
    prompt = Prompt(token_ids, (), torch.arange(num_tokens).expand(3, -1), rope_delta=0)
    sequence = Sequence("self-check", prompt, [], SamplingParams(), max_tokens=NUM_DECODES + 1)
    sequence.block_table = list(range(-(-(num_tokens + NUM_DECODES) // runner.kv.block_size)))

    # The prompt in chunks of the step budget (the later ones attend over cached keys), then decode steps.
    incremental = []
    for start in range(0, num_tokens, budget):
        length = min(budget, num_tokens - start)
        chunk = Chunk(sequence, start, length, samples=start + length == num_tokens)
        incremental.append(runner.run(ScheduledStep([], [chunk], [])))
    for index, token in enumerate(token_ids[:NUM_DECODES]):  # any valid tokens do
        sequence.output_token_ids.append(token)
        decode = Chunk(sequence, num_tokens + index, 1, samples=True)
        incremental.append(runner.run(ScheduledStep([decode], [], [])))
    got = torch.cat(incremental)

    tokens = sequence.token_ids(0, sequence.num_tokens)
    expected = _full_forward(runner, tokens, sequence.positions(0, len(tokens)))[num_tokens - 1 :]
    difference = ((got - expected).abs().max() / expected.abs().max().clamp_min(1e-6)).item()
    dtype = language.lm_head_weight.dtype
    if not difference <= TOLERANCE.get(dtype, TOLERANCE[torch.bfloat16]):
        raise SelfCheckError(
            f"incremental decode through the {runner.attention.name!r} attention backend differs from a full "
            f"forward by {difference:.2e} of the largest logit (tolerance for {dtype}: {TOLERANCE.get(dtype)}); "
            "refusing to serve. Check the transformers version, the attention backend and the dtype."
        )
    return difference


def _full_forward(runner: ModelRunner, token_ids: list[int], positions: torch.Tensor) -> torch.Tensor:
    """transformers' own forward of the text model over the whole sequence, with its own SDPA attention."""
    language = runner.language
    text_model = language.text_model
    config = text_model.config
    config._attn_implementation = "sdpa"
    try:
        hidden = text_model(
            inputs_embeds=language.embed(token_ids, []),
            position_ids=positions.unsqueeze(1).to(runner.device),
            use_cache=False,
        ).last_hidden_state[0]
    finally:
        config._attn_implementation = ATTENTION_IMPLEMENTATION
    return torch.nn.functional.linear(hidden, language.lm_head_weight).float()

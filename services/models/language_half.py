"""The language half: chat template, tokenizer, placeholder expansion, and the text model with a KV cache.

It never loads the vision tower: image embeddings arrive ready-made from the vision half (another process
in production) and are scattered into the image placeholder positions of the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

from services.common.device import to_device
from services.common.image_embedding import ImageEmbedding
from services.messages import PromptError
from services.models.attention.step import ATTENTION_IMPLEMENTATION, AttentionStep
from services.models.checkpoint import Weights, load_submodel, random_submodel, read_tensor
from services.models.family import family_for_model_type
from services.models.kv_cache import KVShape
from services.models.mrope import mrope_positions


@dataclass(frozen=True)
class Prompt:
    """A rendered, tokenised prompt with each image placeholder expanded to its token count."""

    token_ids: list[int]
    image_grids: tuple[tuple[int, int, int], ...]
    positions: torch.Tensor  # [3, num_tokens]
    rope_delta: int
    image_spans: tuple[tuple[int, int], ...] = ()  # [start, end) of each image's placeholder tokens, in order

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


class LanguageHalf:
    """Prompt building and the text model's forward pass; holds no per-request state."""

    def __init__(
        self, model_dir: Path, device: torch.device, dtype: torch.dtype = torch.float32, weights: Weights = "checkpoint"
    ) -> None:
        """`weights="random"`: the directory's dimensions with random weights, nothing read (benchmarks)."""
        config = AutoConfig.from_pretrained(model_dir)
        self.family = family_for_model_type(config.model_type)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        text_class = self.family.hf_class("text_class")
        self.text_model = (
            random_submodel(text_class, config.text_config, device, dtype)
            if weights == "random"
            else load_submodel(model_dir, text_class, config.text_config, self.family.text_key_mapping, device, dtype)
        )
        # Every layer's attention goes through the engine's backend (registered with transformers on import).
        self.text_model.config._attn_implementation = ATTENTION_IMPLEMENTATION
        self.text_config = config.text_config
        self._embed_tokens = self.text_model.get_input_embeddings()
        embedding: torch.Tensor = self._embed_tokens.weight  # type: ignore[assignment]
        self.lm_head_weight: torch.Tensor = (
            embedding
            if config.tie_word_embeddings
            else torch.randn_like(embedding) * config.text_config.initializer_range
            if weights == "random"
            else read_tensor(model_dir, "lm_head.weight", device, dtype)
        )
        self.hidden_size: int = config.text_config.hidden_size
        self.image_token_id: int = config.image_token_id
        self.merge_size: int = config.vision_config.spatial_merge_size
        self.stop_token_ids: frozenset[int] = frozenset(_stop_token_ids(model_dir, config))

    # -- prompt -------------------------------------------------------------------------------------------

    def render_prompt(
        self,
        messages: list[dict[str, Any]],
        image_grids: list[tuple[int, int, int]],
        enable_thinking: bool = False,
    ) -> Prompt:
        """Chat template -> token ids, with the i-th image placeholder repeated once per token of image i."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking
        )
        if not isinstance(text, str):
            raise TypeError("the chat template rendered no text")
        placeholder = self.family.image_token
        pieces = text.split(placeholder)
        if len(pieces) - 1 != len(image_grids):
            raise PromptError(f"the messages hold {len(pieces) - 1} images but {len(image_grids)} were encoded")
        expanded = pieces[0] + "".join(
            placeholder * self.num_image_tokens(grid) + piece
            for grid, piece in zip(image_grids, pieces[1:], strict=True)
        )
        token_ids: list[int] = self.tokenizer(expanded, add_special_tokens=False)["input_ids"]
        positions, rope_delta = mrope_positions(
            [token == self.image_token_id for token in token_ids], image_grids, self.merge_size
        )
        spans: list[tuple[int, int]] = []
        for grid in image_grids:
            start = token_ids.index(self.image_token_id, spans[-1][1] if spans else 0)
            spans.append((start, start + self.num_image_tokens(grid)))
        return Prompt(token_ids, tuple(image_grids), positions, rope_delta, tuple(spans))

    def num_image_tokens(self, grid: tuple[int, int, int]) -> int:
        t, h, w = grid
        return t * h * w // self.merge_size**2

    # -- forward ------------------------------------------------------------------------------------------

    def check_images(self, prompt: Prompt, images: list[ImageEmbedding]) -> None:
        if [image.grid_thw for image in images] != list(prompt.image_grids):
            raise PromptError("image embeddings do not match the prompt's images")

    @staticmethod
    def image_rows(
        prompt: Prompt, images: list[ImageEmbedding], start: int, end: int
    ) -> list[tuple[int, torch.Tensor]]:
        """The image embedding rows of prompt tokens [start, end), each run as (its first token's offset from
        `start`, rows): a chunk may begin or end inside an image."""
        rows = []
        for (image_start, image_end), image in zip(prompt.image_spans, images, strict=True):
            first, last = max(start, image_start), min(end, image_end)
            if first < last:
                rows.append((first - start, image.embeds[first - image_start : last - image_start]))
        return rows

    def embed(self, token_ids: list[int] | torch.Tensor, image_rows: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """`[1, len(token_ids), hidden]` input embeddings of a flat batch (token ids on the host or already on the
        device): the tokens' embeddings, with each image run (its first token's index in the batch, rows) in
        place of its placeholder tokens."""
        ids = token_ids if isinstance(token_ids, torch.Tensor) else to_device(token_ids, self.device)
        embeds: torch.Tensor = self._embed_tokens(ids)
        if image_rows:
            index = torch.cat([torch.arange(offset, offset + len(rows)) for offset, rows in image_rows])
            values = to_device(torch.cat([rows for _, rows in image_rows]), self.device, embeds.dtype)
            embeds = embeds.index_copy(0, to_device(index, self.device), values)
        return embeds.unsqueeze(0)

    @property
    def kv_shape(self) -> KVShape:
        config = self.text_config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return KVShape(config.num_hidden_layers, config.num_key_value_heads, head_dim, self.lm_head_weight.dtype)

    @torch.inference_mode()
    def forward(
        self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, step: AttentionStep, sample_rows: torch.Tensor
    ) -> torch.Tensor:
        """Logits `[R, V]` at the `R` batch positions `sample_rows` of a flat batch.

        inputs_embeds: [1, T, H]; position_ids: [3, 1, T]. We run the decoder layers ourselves (rather than the
        text model's forward) so that the attention and the KV layout are the engine's: `step` stores each
        layer's new keys and runs the chosen backend over every row's real length.
        """
        text_model: Any = self.text_model
        hidden = inputs_embeds
        rotary = text_model.rotary_emb(hidden, position_ids)
        for layer in text_model.layers:
            hidden = layer(hidden, attention_mask=None, position_embeddings=rotary, cache=step, attention_step=step)
        hidden = text_model.norm(hidden[0, sample_rows])
        return torch.nn.functional.linear(hidden, self.lm_head_weight).float()


def _stop_token_ids(model_dir: Path, config: Any) -> list[int]:
    try:
        eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
    except OSError:
        eos = None
    if eos is None:
        eos = config.text_config.eos_token_id
    if eos is None:
        return []
    return [eos] if isinstance(eos, int) else list(eos)

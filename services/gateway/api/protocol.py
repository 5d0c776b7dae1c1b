"""The OpenAI wire schemas we speak, in the order of the OpenAI API reference.

Unknown fields are accepted and ignored, as OpenAI-compatible servers do. Requests convert themselves
into the engine's terms (`to_sampling_params`)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from services.messages import GrammarSpec, SamplingParams

MAX_STOP_CHARS = 256
# A response_format schema is compiled into a grammar on the decoder: bound the work one request can ask for.
MAX_SCHEMA_CHARS = 32 << 10
MAX_SCHEMA_DEPTH = 32  # nested objects and arrays of the schema document itself


class OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- requests ---------------------------------------------------------------------------------------------


class TextPart(OpenAIModel):
    type: Literal["text"]
    text: str


class ImageURL(OpenAIModel):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImagePart(OpenAIModel):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(OpenAIModel):
    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(OpenAIModel):
    include_usage: bool = False


class TextFormat(OpenAIModel):
    type: Literal["text"]

    def to_grammar(self) -> GrammarSpec | None:
        return None


class JsonObjectFormat(OpenAIModel):
    type: Literal["json_object"]

    def to_grammar(self) -> GrammarSpec | None:
        return GrammarSpec.json_object()


class JsonSchema(OpenAIModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    # `schema` would shadow a BaseModel attribute: the field takes the wire name as its alias.
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="a JSON Schema; absent: any object")
    strict: bool | None = False

    @field_validator("schema_")
    @classmethod
    def _bounded(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            if len(json.dumps(schema, ensure_ascii=False, separators=(",", ":"))) > MAX_SCHEMA_CHARS:
                raise ValueError(f"the schema is longer than {MAX_SCHEMA_CHARS} characters of JSON")
            if _depth(schema) > MAX_SCHEMA_DEPTH:
                raise ValueError(f"the schema nests objects and arrays deeper than {MAX_SCHEMA_DEPTH} levels")
        return schema


class JsonSchemaFormat(OpenAIModel):
    type: Literal["json_schema"]
    json_schema: JsonSchema

    def to_grammar(self) -> GrammarSpec | None:
        if self.json_schema.schema_ is None:
            return GrammarSpec.json_object()
        return GrammarSpec.for_schema(self.json_schema.schema_, strict=bool(self.json_schema.strict))


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]
_RESPONSE_FORMAT: TypeAdapter[TextFormat | JsonObjectFormat | JsonSchemaFormat] = TypeAdapter(ResponseFormat)


def parse_response_format(text: str) -> TextFormat | JsonObjectFormat | JsonSchemaFormat:
    """A `response_format` sent as JSON text (the `/v1/vqa` form field). Raises pydantic's ValidationError."""
    return _RESPONSE_FORMAT.validate_json(text)


def _depth(document: Any) -> int:
    """How deeply a JSON document nests objects and arrays (a scalar: 0)."""
    depth, level = 0, [document]
    while containers := [node for node in level if isinstance(node, dict | list)]:
        depth += 1
        level = [child for node in containers for child in (node.values() if isinstance(node, dict) else node)]
    return depth


class ChatCompletionRequest(OpenAIModel):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="deprecated by OpenAI; max_completion_tokens wins")
    n: Literal[1] = 1
    response_format: ResponseFormat | None = None
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    user: str | None = None
    # Extensions, as vLLM names them.
    top_k: int = Field(0, ge=-1, lt=2**31, description="0 or -1: off")
    stop_token_ids: list[Annotated[int, Field(ge=0, lt=2**31)]] = Field(default_factory=list, max_length=64)
    ignore_eos: bool = False
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    return_token_ids: bool = Field(False, description="add each choice's generated token ids")

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: str | list[str] | None) -> str | list[str] | None:
        strings = [stop] if isinstance(stop, str) else stop or []
        if len(strings) > 4 or not all(0 < len(string) <= MAX_STOP_CHARS for string in strings):
            raise ValueError(f"stop takes up to 4 non-empty strings of at most {MAX_STOP_CHARS} characters")
        return stop

    @property
    def constrains_answer(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    @property
    def enable_thinking(self) -> bool:
        """GLM thinks only when asked: long thoughts ruin time to the answer."""
        return bool(self.chat_template_kwargs.get("enable_thinking", False))

    def to_sampling_params(self) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return SamplingParams(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=max(self.top_k, 0),
            seed=self.seed,
            stop=tuple(stop),
            stop_token_ids=tuple(self.stop_token_ids),
            ignore_eos=self.ignore_eos,
            grammar=self.response_format.to_grammar() if self.response_format else None,
        )


# -- responses --------------------------------------------------------------------------------------------


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _now() -> int:
    return int(time.time())


class PromptTokensDetails(OpenAIModel):
    cached_tokens: int = Field(0, description="prompt tokens whose KV the decoder reused (its prefix cache)")


class Usage(OpenAIModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)


class AssistantMessage(OpenAIModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(OpenAIModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None
    token_ids: list[int] | None = None


class ChatCompletionResponse(OpenAIModel):
    id: str = Field(default_factory=new_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[Choice]
    usage: Usage
    provenance: list[dict[str, Any]] | None = Field(
        None, description="flashvqa: what the provenance check found, one report per image in request order"
    )


class Delta(OpenAIModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(OpenAIModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None
    token_ids: list[int] | None = None


class ChatCompletionChunk(OpenAIModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    provenance: list[dict[str, Any]] | None = Field(None, description="flashvqa: in the first chunk only")


class ModelCard(OpenAIModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now)
    owned_by: str = "flashvqa"
    parent: str | None = None  # a LoRA adapter's base model, as vLLM lists it


class ModelList(OpenAIModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LoadLoRAAdapterRequest(BaseModel):
    """`POST /v1/load_lora_adapter`, as vLLM takes it."""

    model_config = ConfigDict(extra="forbid")

    lora_name: str = Field(min_length=1, max_length=64, description="the model id requests will name it by")
    lora_path: str = Field(
        min_length=1, max_length=4096, description="the adapter directory, under the decoders' adapter root"
    )
    load_inplace: bool = Field(False, description="replace an adapter of that name (answers underway finish)")


class UnloadLoRAAdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_name: str = Field(min_length=1, max_length=64)


class LoRAAdapterCard(OpenAIModel):
    """What a load or unload answers: the adapter as `/v1/models` lists it."""

    id: str
    object: Literal["lora_adapter"] = "lora_adapter"
    parent: str
    status: Literal["loaded", "unloaded"]

"""The OpenAI wire format: request bodies, their checks, and the JSON the server answers with.

Requests are pydantic models that refuse unknown fields (as OpenAI's API does: a misspelt
``max_token`` is an error, not a silent default). Fields OpenAI defines that longspec cannot honour
(logprobs, penalties, several choices, tools) are accepted at their neutral values and refused
otherwise, naming the field. ``top_k`` and ``ignore_eos`` are extensions, spelt as vLLM spells them.
"""
from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..text_stream import check_stop_strings

_INT32_MAX = (1 << 31) - 1
_UINT64 = 1 << 64


class OpenAIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def validation_error_to_openai(errors: list[dict]) -> OpenAIError:
    """A pydantic/FastAPI validation failure -> the first problem, said as OpenAI says it."""
    if not errors:
        return bad_request("invalid request body")
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    kind = err.get("type", "")
    if kind == "json_invalid":
        return bad_request("We could not parse the JSON body of your request: " + str(err.get("msg", "")),
                           code="invalid_json")
    if kind == "extra_forbidden":
        return bad_request(f"Unrecognized request argument supplied: {'.'.join(loc)}", param=".".join(loc) or None)
    if kind == "missing":
        return bad_request(f"Missing required parameter: '{'.'.join(loc)}'.", param=".".join(loc) or None,
                           code="missing_required_parameter")
    param = ".".join(loc) or None
    # A union lists one failure per alternative; the field name and pydantic's sentence suffice.
    return bad_request(f"Invalid value for '{param}': {err.get('msg', 'invalid')}.", param=param,
                       code="invalid_value")


# ---------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = False
    continuous_usage_stats: bool = False  # sent by some vLLM clients; ignored


class _SamplingRequest(_Strict):
    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    # Extensions (vLLM's names).
    top_k: int | None = None
    ignore_eos: bool | None = False


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = None
    echo: bool | None = False
    best_of: int | None = None
    suffix: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, ...: kept, passed to the template
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(_SamplingRequest):
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None


# ---------------------------------------------------------------------------------------------
@dataclass
class Sampling:
    """What one request asks of ``Engine.generate``."""

    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop: list[str]
    ignore_eos: bool

    def engine_kwargs(self) -> dict:
        return dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                    top_k=self.top_k, seed=self.seed, stop=self.stop, ignore_eos=self.ignore_eos)


def _unsupported(param: str, what: str) -> OpenAIError:
    return bad_request(f"{param}: {what} is not supported by longspec", param=param, code="unsupported_parameter")


def check_sampling(req: _SamplingRequest, *, default_max_tokens: int | None) -> Sampling:
    """The checks shared by both endpoints; a failure names the field (HTTP 400)."""
    if req.n is not None and req.n != 1:
        raise bad_request(f"n must be 1 (longspec generates one choice per request), got {req.n}", param="n")
    max_tokens = req.max_tokens
    if isinstance(req, ChatRequest) and req.max_completion_tokens is not None:
        max_tokens = req.max_completion_tokens
    if max_tokens is None:
        max_tokens = default_max_tokens if default_max_tokens is not None else _INT32_MAX  # up to the context
    elif not 1 <= max_tokens <= _INT32_MAX:
        raise bad_request(f"max_tokens must be between 1 and {_INT32_MAX}, got {max_tokens}", param="max_tokens")
    temperature = 1.0 if req.temperature is None else req.temperature
    if not 0.0 <= temperature <= 2.0:
        raise bad_request(f"temperature must be between 0 and 2, got {temperature}", param="temperature")
    top_p = 1.0 if req.top_p is None else req.top_p
    if not 0.0 < top_p <= 1.0:
        raise bad_request(f"top_p must be in (0, 1], got {top_p}", param="top_p")
    top_k = 0 if req.top_k in (None, -1) else req.top_k
    if not 0 <= top_k <= _INT32_MAX:
        raise bad_request(f"top_k must be -1 or 0 (off) or a positive count, got {req.top_k}", param="top_k")
    # No seed: a fresh one, so repeated sampled requests differ, as with OpenAI. A negative seed
    # is taken modulo 2**64 (the engine's seeds are unsigned 64-bit).
    seed = secrets.randbits(63) if req.seed is None else req.seed % _UINT64
    try:
        stop = check_stop_strings(req.stop)
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc), param="stop") from None
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name) not in (None, 0, 0.0):
            raise _unsupported(name, "a non-zero penalty")
    if req.logit_bias:
        raise _unsupported("logit_bias", "logit_bias")
    return Sampling(max_tokens, temperature, top_p, top_k, seed, stop, bool(req.ignore_eos))


def check_completion(req: CompletionRequest) -> tuple[str | list[int], Sampling]:
    """-> (the prompt as text or token ids, sampling). OpenAI's default max_tokens here is 16."""
    sampling = check_sampling(req, default_max_tokens=16)
    if req.logprobs is not None:
        raise _unsupported("logprobs", "logprobs")
    if req.echo:
        raise _unsupported("echo", "echo")
    if req.best_of not in (None, 1):
        raise _unsupported("best_of", "best_of > 1")
    if req.suffix:
        raise _unsupported("suffix", "suffix")
    prompt = req.prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], (str, list)):
        if len(prompt) != 1:
            raise bad_request(f"prompt: longspec serves one prompt per request, got {len(prompt)}", param="prompt")
        prompt = prompt[0]
    if not prompt:
        raise bad_request("prompt must not be empty", param="prompt")
    return prompt, sampling


def check_chat(req: ChatRequest) -> tuple[list[dict], Sampling]:
    """-> (messages as the chat template wants them, sampling)."""
    sampling = check_sampling(req, default_max_tokens=None)
    if req.logprobs or req.top_logprobs:
        raise _unsupported("logprobs", "logprobs")
    if req.tools:
        raise _unsupported("tools", "tool calling")
    if req.response_format and req.response_format.get("type", "text") != "text":
        raise _unsupported("response_format", f"response_format {req.response_format.get('type')!r}")
    if not req.messages:
        raise bad_request("messages must hold at least one message", param="messages")
    messages = []
    for i, m in enumerate(req.messages):
        content = m.content
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            texts = []
            for j, part in enumerate(content):
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise bad_request(f"messages[{i}].content[{j}]: only text parts are supported",
                                      param=f"messages.{i}.content")
                texts.append(part["text"])
            content = "".join(texts)
        extra = {k: v for k, v in (m.model_extra or {}).items() if k != "tool_calls"}
        messages.append({**extra, "role": m.role, "content": content or ""})
    return messages, sampling


# ---------------------------------------------------------------------------------------------
def finish_reason(engine_reason: str) -> str:
    """The engine's reason -> OpenAI's: EOS and stop tokens/strings are "stop", running out of
    max_tokens or of context is "length"."""
    return "stop" if engine_reason in ("eos", "stop") else "length"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class ResponseShape:
    """The ids, timestamps and JSON objects of one response (full or streamed)."""

    def __init__(self, kind: Literal["completion", "chat"], model: str):
        self.kind = kind
        self.model = model
        self.id = ("cmpl-" if kind == "completion" else "chatcmpl-") + uuid.uuid4().hex
        self.created = int(time.time())

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def full(self, text: str, reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
        if self.kind == "completion":
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            body = self._head("text_completion")
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": reason}
            body = self._head("chat.completion")
        body.update(choices=[choice], usage=usage(prompt_tokens, completion_tokens))
        return body

    def chunk(self, text: str | None = None, reason: str | None = None, *, first: bool = False,
              with_usage_field: bool = False) -> dict:
        if self.kind == "completion":
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": reason}
            body = self._head("text_completion")
        else:
            delta: dict = {}
            if first:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            body = self._head("chat.completion.chunk")
        body["choices"] = [choice]
        if with_usage_field:
            body["usage"] = None
        return body

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict:
        obj = "text_completion" if self.kind == "completion" else "chat.completion.chunk"
        body = self._head(obj)
        body.update(choices=[], usage=usage(prompt_tokens, completion_tokens))
        return body

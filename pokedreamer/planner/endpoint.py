"""One request to an OpenAI-compatible chat endpoint, and what its answer or error means.

Servers differ in how they can be held to the Plan schema, so a request is sent in one of four
**modes**, strongest first:

- ``structured``: ``response_format`` json_schema (OpenAI, vLLM, Ollama, recent llama.cpp);
- ``schema``: ``{"type": "json_object", "schema": ...}``, which llama-cpp-python's server turns
  into a grammar (its request model has no json_schema, and even a 270M model then answers a
  valid plan);
- ``json``: ``{"type": "json_object"}``, JSON of any shape, the schema only in the prompt;
- ``prompt``: no ``response_format`` at all, for servers that refuse every kind of it.

A server says it cannot take a mode by a 4xx, or by a 5xx whose body is a validation error that
names ``response_format`` (llama-cpp-python answers an unknown response_format with 500). Such an
answer will not change by asking again, so it is never retried; rate limits, other server
errors, timeouts and refused connections are.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import openai
from pydantic import ValidationError

from pokedreamer.errors import one_line
from pokedreamer.planner.subgoals import Plan

Mode = Literal["structured", "schema", "json", "prompt"]
MODES: tuple[Mode, ...] = ("structured", "schema", "json", "prompt")
"""The modes, from the one that binds the model hardest to the one every server takes."""

Refusal = Literal["named", "unnamed"]
"""How a server refused a request's mode: by an error naming ``response_format`` (certain), or
by a bare 4xx that may be about the format or about anything else in the request."""

MAX_ERROR_CHARS = 300

# Statuses that say nothing about the request's format: credentials, permission, a timeout on
# the server's side, a body too large, a rate limit.
_NOT_ABOUT_FORMAT = frozenset({401, 403, 408, 413, 429})
_FORMAT_FIELD = re.compile(r"response_format", re.IGNORECASE)
# What a request-validation error says, in pydantic's, FastAPI's and common servers' words.
_INVALID_REQUEST = re.compile(
    r"validation error|input should be|literal_error|invalid|not supported|unsupported",
    re.IGNORECASE,
)


class CallFailed(Exception):
    """Ends a planner call with a one-line error that is already fit to record."""


@dataclass
class Answer:
    """What one answered request said."""

    content: str | None
    parsed: Plan | None = None
    refusal: str | None = None
    usage: tuple[int, int] = (0, 0)
    """Prompt and completion tokens."""


def lower(mode: Mode) -> Mode | None:
    """The next weaker mode, None below ``prompt``."""
    index = MODES.index(mode) + 1
    return MODES[index] if index < len(MODES) else None


def response_format(mode: Mode, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``response_format`` a request in ``mode`` carries (``structured`` lets the SDK build
    its own from the Plan model)."""
    if mode == "schema":
        return {"type": "json_object", "schema": schema}
    if mode == "json":
        return {"type": "json_object"}
    return None


def request(
    client: openai.OpenAI,
    model: str,
    messages: list[dict[str, Any]],
    mode: Mode,
    schema: dict[str, Any],
    timeout: float,
) -> Answer:
    """Sends one chat request in ``mode``; SDK errors propagate for the caller to judge."""
    completions = client.chat.completions.with_raw_response
    # Raw responses throughout, so that an answer that fails to parse as a Plan still yields its
    # text and token counts (parse() raises from inside the SDK and loses both).
    if mode != "structured":
        fmt = response_format(mode, schema)
        raw = completions.create(
            model=model,
            messages=messages,
            timeout=timeout,
            # Through extra_body, since the SDK's type for json_object has no "schema" key.
            extra_body={"response_format": fmt} if fmt is not None else None,
        )
        return answer_from(raw.http_response)
    raw = completions.parse(
        model=model,
        messages=messages,
        response_format=Plan,
        timeout=timeout,
    )
    answer = answer_from(raw.http_response)
    try:
        parsed = raw.parse()
    except (ValidationError, openai.LengthFinishReasonError):
        return answer  # validated again by the caller, which words the errors for the repair
    message = parsed.choices[0].message if parsed.choices else None
    answer.parsed = message.parsed if message is not None else None
    return answer


def format_refusal(exc: BaseException) -> Refusal | None:
    """Whether ``exc`` is a server refusing the request's response_format, and how surely."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code in _NOT_ABOUT_FORMAT:
        return None
    param = _error_param(exc)
    if param is not None and param != "response_format":
        return None  # the server named the field it could not take, and it is another one
    text = status_message(exc)
    named = bool(_FORMAT_FIELD.search(text)) or param == "response_format"
    if 400 <= exc.status_code < 500:
        return "named" if named else "unnamed"
    if exc.status_code >= 500 and named and _INVALID_REQUEST.search(text):
        return "named"
    return None


def transient(exc: BaseException) -> bool:
    """Worth retrying: rate limits, server errors, timeouts and connection failures. Other 4xx
    answers, and a 5xx that is a refused response_format, will not change by asking again."""
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return True
        return exc.status_code >= 500 and format_refusal(exc) is None
    return isinstance(exc, openai.APIConnectionError)  # APITimeoutError is one too


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After, or OpenAI's retry-after-ms), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return max(float(headers["retry-after-ms"]) / 1000.0, 0.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            # The other form the header may take: an HTTP date.
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (ValueError, TypeError, OverflowError):
        return None


def status_message(exc: openai.APIStatusError) -> str:
    """The message of an error answer, from OpenAI's {"error": {"message"}} or a bare one."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
        if isinstance(body.get("detail"), str | list):
            return str(body["detail"])  # FastAPI's own 422 body
    return exc.message


def _error_param(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    param = inner.get("param") if isinstance(inner, dict) else None
    return param if isinstance(param, str) else None


def answer_from(response: Any) -> Answer:
    """The first choice's text and refusal, and the token usage, from a chat.completion
    response. Read defensively, since local servers differ in what they leave out."""
    try:
        data = response.json()
    except ValueError:
        raise CallFailed(
            one_line(f"the endpoint's answer is not JSON: {response.text[:80]!r}", MAX_ERROR_CHARS)
        ) from None
    if not isinstance(data, dict):
        raise CallFailed("the endpoint's answer is not a chat completion")
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        message = {}
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    content = message.get("content")
    refusal = message.get("refusal")
    return Answer(
        content=content if isinstance(content, str) else None,
        refusal=refusal if isinstance(refusal, str) and refusal else None,
        usage=(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))),
    )


def _count(value: Any) -> int:
    """A token count as the server gave it, 0 when it gave none or something else."""
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0

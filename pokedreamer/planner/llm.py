"""The LLM planner: one OpenAI-compatible chat call that turns a prompt into a checked ``Plan``.

It speaks to OpenAI, vLLM, llama.cpp's server and Ollama's ``/v1`` alike. A call asks in the
strongest mode the endpoint has not refused (``planner.endpoint``: structured outputs, JSON mode
with the schema attached, plain JSON mode, or no response_format at all) and steps down past
each mode the server refuses; a refusal that names ``response_format`` is remembered for the
planner's life at once, a bare 4xx only once a weaker mode has been answered. Below structured
outputs the schema is spelled out in the system message. An answer that is not a valid ``Plan``
gets one repair turn carrying the validation errors. A valid plan is then checked against the
game's facts (maps, events, coordinates), and a plan with problems is rejected rather than
clamped: the caller falls back to the heuristic planner, which is better than a plan quietly
changed into something the model did not mean.

Whatever happens, ``plan()`` returns a ``PlannerCall`` (the record for the subgoal trace) and never
raises; a failure is a one-line ``error`` with ``plan=None``. The API key appears in no record,
log line or error text.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception

from pokedreamer.errors import Location, UserError, dotted, one_line, validation_summary
from pokedreamer.planner.endpoint import (
    MAX_ERROR_CHARS,
    MODES,
    Answer,
    CallFailed,
    Mode,
    Refusal,
    format_refusal,
    lower,
    request,
    retry_after,
    status_message,
    transient,
)
from pokedreamer.planner.subgoals import Plan
from pokedreamer.planner.validate import check

if TYPE_CHECKING:
    from pokedreamer.config import PlannerSettings
    from pokedreamer.planner.facts import GameFacts

log = logging.getLogger(__name__)

BUDGET_ERROR = "budget"
"""``PlannerCall.error`` of a call refused because max_calls_per_hour were made in the last hour."""

_WINDOW_S = 3600.0
_NO_KEY = "not-needed"  # local servers (Ollama, llama.cpp) take any key; the client insists on one
_MAX_REPAIR_ERRORS = 12


@dataclass
class PlannerCall:
    """One planner call as the subgoal trace records it. Never holds the API key."""

    trigger: str
    """Why a plan was asked for (the replanning trigger)."""
    prompt: list[dict[str, Any]]
    """The messages of the last request sent (or, refused by the budget, that would have been),
    with a screenshot replaced by "<screenshot N bytes>"."""
    raw_response: str | None = None
    """The model's last answer, as text."""
    plan: Plan | None = None
    """The checked plan; None on any failure."""
    error: str | None = None
    """One line saying why there is no plan ("budget" when the hourly budget refused the call)."""
    repaired: bool = False
    """Whether a repair turn was needed (the first answer was not a valid Plan)."""
    mode: Mode = "structured"
    """How the last request asked for JSON (``planner.endpoint.MODES``): "structured",
    "schema" (JSON mode with the schema attached), "json" or "prompt"."""
    attempts: int = 0
    """HTTP requests sent: retries, each weaker mode tried and the repair turn count."""
    latency_s: float = 0.0
    """Wall-clock seconds the call took, waits between retries included."""
    prompt_tokens: int = 0
    """Prompt tokens over every answered request of the call."""
    completion_tokens: int = 0
    """Completion tokens over every answered request of the call."""

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values (the plan dumped by its schema)."""
        return {
            "trigger": self.trigger,
            "prompt": self.prompt,
            "raw_response": self.raw_response,
            "plan": self.plan.model_dump(mode="json") if self.plan is not None else None,
            "error": self.error,
            "repaired": self.repaired,
            "mode": self.mode,
            "attempts": self.attempts,
            "latency_s": self.latency_s,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass(frozen=True)
class PlannerTotals:
    """What an LLMPlanner has spent since it was made."""

    calls: int = 0
    """Calls admitted by the budget (each may send several requests)."""
    requests: int = 0
    """HTTP requests sent."""
    refused: int = 0
    """Calls refused by the budget without contacting the server."""
    failed: int = 0
    """Admitted calls that ended without a plan."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Refused(Exception):
    """A server's answer that it cannot take the request's mode; carries the error as one line."""

    def __init__(self, how: Refusal, line: str) -> None:
        super().__init__(line)
        self.how = how


@dataclass
class _Progress:
    """What a call has done so far; becomes the PlannerCall whichever way the call ends."""

    deadline: float
    mode: Mode
    messages: list[dict[str, Any]] = field(default_factory=list)
    raw_response: str | None = None
    attempts: int = 0
    repaired: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMPlanner:
    """Asks an OpenAI-compatible endpoint for plans, within an hourly call budget.

    The budget counts calls, not requests: a call is one decision to ask for a plan, and the
    requests inside it are already bounded (``max_attempts`` per request, at most five requests:
    one per mode stepped down through and a repair) and by a deadline of ``deadline_factor`` ×
    timeout_s. Every admitted call counts, failed ones included, since failures can cost too.

    Thread-safe: the planner service calls ``plan`` from a worker thread.
    """

    def __init__(
        self,
        settings: PlannerSettings,
        facts: GameFacts,
        clock: Callable[[], float] = time.monotonic,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        backoff_max_s: float = 4.0,
        retry_after_max_s: float = 30.0,
        deadline_factor: float = 3.0,
        mode: Mode = "structured",
        response_schema: dict[str, Any] | None = None,
    ) -> None:
        """``clock`` drives the hourly budget and ``sleep`` waits between retries (tests pass
        fakes of both); the retry knobs exist so that tests can make the backoff short.
        ``mode`` is the first mode to ask in, for a caller that knows its server (llama-cpp-python
        takes ``schema`` and not ``structured``). ``response_schema`` is the schema sent as the
        response format, when it differs from the Plan's own (the local model's grammar form);
        answers are validated against the Plan either way."""
        self.settings = settings
        self.facts = facts
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._retry_after_max_s = retry_after_max_s
        self._deadline_s = deadline_factor * settings.timeout_s
        key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        # Kept only to scrub it from text that came back from the server (some echo the key in
        # a 401 message); the placeholder is not a secret.
        self._secret = key if key and key != _NO_KEY else ""
        self._closed = False
        try:
            self._client = openai.OpenAI(
                base_url=settings.base_url or None,
                api_key=key or _NO_KEY,
                # tenacity retries instead, so that Retry-After, the backoff and the call's
                # deadline are all ours; the client's own retries would stack on top of them.
                max_retries=0,
                timeout=settings.timeout_s,
            )
        except Exception as exc:  # a malformed base_url is a setting to fix, not a crash
            raise UserError(
                self._scrub(_line(f"planner.base_url {settings.base_url!r}: {exc}"))
            ) from None
        self._mode: Mode = mode
        self._schema_object = response_schema or Plan.model_json_schema()
        # Spelled as the prompt library's {{schema}} spells it, so that a system prompt that
        # already carries the schema is recognised and not sent it twice.
        self._schema = json.dumps(Plan.model_json_schema())
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()
        self._totals = PlannerTotals()

    @property
    def mode(self) -> Mode:
        """The mode the next call asks in: the strongest the endpoint has not refused."""
        return self._mode

    @property
    def structured_outputs(self) -> bool:
        """False once the endpoint has refused structured outputs."""
        return self._mode == "structured"

    @property
    def totals(self) -> PlannerTotals:
        with self._lock:
            return self._totals

    def close(self) -> None:
        """Releases the HTTP connections; a call still in flight then fails without a retry."""
        self._closed = True
        self._client.close()

    def __enter__(self) -> LLMPlanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def plan(
        self, system: str, user: str, trigger: str, screenshot_png: bytes | None = None
    ) -> PlannerCall:
        """Asks for a plan. Never raises: every failure is a PlannerCall with ``plan=None`` and a
        one-line ``error``, so that the caller can fall back to the heuristic planner."""
        started = time.monotonic()
        mode = self._mode
        progress = _Progress(
            deadline=started + self._deadline_s,
            mode=mode,
            messages=self._messages(system, user, screenshot_png, mode),
        )
        if not self._admit():
            log.info("planner call (%s) refused: %d calls in the last hour", trigger, self._limit)
            self._count(refused=1)
            return self._record(progress, trigger, started, None, BUDGET_ERROR)
        plan: Plan | None = None
        error: str | None = None
        try:
            plan = self._run(progress, system, user, screenshot_png)
        except CallFailed as exc:
            error = str(exc)
        except Exception as exc:  # the contract is "never raises": the caller must get a record
            trace = "".join(traceback.format_exception(exc))
            log.debug("planner call failed unexpectedly:\n%s", self._scrub(trace))
            error = _line(f"{type(exc).__name__}: {exc}")
        call = self._record(progress, trigger, started, plan, error)
        self._count(
            calls=1,
            requests=call.attempts,
            failed=int(plan is None),
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
        )
        log.info(
            "planner call (%s): %s in %.2f s, %s mode, %d request(s), %d+%d tokens%s",
            trigger,
            "plan" if plan is not None else f"no plan ({call.error})",
            call.latency_s,
            call.mode,
            call.attempts,
            call.prompt_tokens,
            call.completion_tokens,
            ", repaired" if call.repaired else "",
        )
        return call

    # --- one call --------------------------------------------------------------------------

    def _run(self, progress: _Progress, system: str, user: str, screenshot: bytes | None) -> Plan:
        answer = self._first_answer(progress, system, user, screenshot)
        if answer.refusal is not None:
            raise CallFailed(_line(f"the model refused: {self._scrub(answer.refusal)}"))

        plan, problems = self._validate(answer)
        if plan is None:
            progress.repaired = True
            messages = [
                *progress.messages,
                {"role": "assistant", "content": answer.content or ""},
                {"role": "user", "content": self._repair_prompt(problems, progress.messages)},
            ]
            try:
                answer = self._send(progress, messages, progress.mode)
            except _Refused as exc:
                # The mode was answered a moment ago: this refusal is about something else.
                raise CallFailed(str(exc)) from None
            plan, problems = self._validate(answer)
            if plan is None:
                raise CallFailed(_line(f"invalid plan after a repair turn: {problems}"))

        issues = check(plan, self.facts)
        if issues:
            raise CallFailed(_line("plan rejected: " + "; ".join(issues)))
        return plan

    def _first_answer(
        self, progress: _Progress, system: str, user: str, screenshot: bytes | None
    ) -> Answer:
        """The call's first answer: asked in the remembered mode, then in each weaker one while
        the server refuses the mode or answers it with nothing."""
        mode = progress.mode
        while True:
            weaker = lower(mode)
            messages = self._messages(system, user, screenshot, mode)
            try:
                answer = self._send(progress, messages, mode)
            except _Refused as exc:
                if weaker is None:
                    raise CallFailed(str(exc)) from None
                log.info("endpoint refused %s mode (%s); trying %s mode", mode, exc, weaker)
                if exc.how == "named":
                    # The server said the response_format is what it cannot take: asking in
                    # this mode again, this run, would only be refused again.
                    self._step_down(weaker)
                mode = weaker
                continue
            if answer.content or answer.refusal is not None or weaker is None:
                # A bare 4xx is remembered only once a weaker mode has been answered: when every
                # mode is refused alike (a wrong model name) the format was not the problem.
                self._step_down(mode)
                return answer
            log.info("%s mode came back empty; trying %s mode", mode, weaker)
            mode = weaker

    def _step_down(self, mode: Mode) -> None:
        """Remembers ``mode`` for later calls if it is weaker than the one remembered."""
        with self._lock:
            if MODES.index(mode) > MODES.index(self._mode):
                log.info("planner endpoint: %s mode from now on", mode)
                self._mode = mode

    def _messages(
        self, system: str, user: str, screenshot: bytes | None, mode: Mode
    ) -> list[dict[str, Any]]:
        if mode != "structured" and self._schema not in system:
            # JSON mode only promises some JSON object; the schema in the prompt says which.
            system = (
                f"{system}\n\nAnswer with one JSON object, and nothing else, that matches this "
                f"JSON schema:\n{self._schema}"
            )
        content: str | list[dict[str, Any]] = user
        if screenshot is not None:
            url = "data:image/png;base64," + base64.b64encode(screenshot).decode("ascii")
            content = [
                {"type": "text", "text": user},
                {"type": "image_url", "image_url": {"url": url}},
            ]
        return [{"role": "system", "content": system}, {"role": "user", "content": content}]

    def _repair_prompt(self, problems: str, messages: list[dict[str, Any]]) -> str:
        text = (
            f"That answer is not a valid plan: {problems}. Answer again with only the corrected "
            "JSON object."
        )
        if self._schema not in str(messages[0].get("content", "")):
            # An off-schema answer in structured mode means the server may be ignoring the
            # response format; then the schema has to be said in words.
            text += f" It must match this JSON schema:\n{self._schema}"
        return text

    def _validate(self, answer: Answer) -> tuple[Plan | None, str]:
        if answer.parsed is not None:
            return answer.parsed, ""
        if not answer.content:
            return None, "the answer was empty"
        try:
            return Plan.model_validate_json(answer.content), ""
        except ValidationError as exc:
            return None, validation_summary(exc, _where, most=_MAX_REPAIR_ERRORS)

    # --- one request, with retries ---------------------------------------------------------

    def _send(self, progress: _Progress, messages: list[dict[str, Any]], mode: Mode) -> Answer:
        """Sends one request, retrying transient failures, and books it into ``progress``.
        Raises ``_Refused`` when the server refuses the mode's response_format."""
        progress.messages = messages
        progress.mode = mode
        if time.monotonic() >= progress.deadline:
            raise CallFailed(f"out of time: the call took over {self._deadline_s:g} s")
        retrying = Retrying(
            retry=retry_if_exception(transient),
            wait=self._wait,
            stop=lambda state: self._stop(state, progress.deadline),
            before_sleep=self._log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        tries = 0
        try:
            for attempt in retrying:
                with attempt:
                    tries += 1
                    progress.attempts += 1
                    # The call's deadline bounds the request too, not just the waits between.
                    timeout = min(self.settings.timeout_s, progress.deadline - time.monotonic())
                    answer = request(
                        self._client,
                        self.settings.model,
                        messages,
                        mode,
                        self._schema_object,
                        max(timeout, 0.001),
                    )
        except openai.APITimeoutError:
            raise CallFailed(
                f"timed out ({tries} attempt(s), {self.settings.timeout_s:g} s each at most)"
            ) from None
        except openai.APIConnectionError as exc:
            raise CallFailed(
                _line(
                    f"cannot connect to the planner endpoint ({tries} attempt(s)): "
                    f"{self._describe(exc)}"
                )
            ) from None
        except openai.APIStatusError as exc:
            how = format_refusal(exc) if mode != "prompt" else None
            if how is not None:
                raise _Refused(how, self._describe(exc)) from None
            note = ""
            wait = retry_after(exc)
            if transient(exc) and wait is not None and tries < self._max_attempts:
                note = f"; it asked to wait {wait:g} s, past the call's {self._deadline_s:g} s"
            raise CallFailed(_line(f"{self._describe(exc)} ({tries} attempt(s)){note}")) from None
        except openai.OpenAIError as exc:
            raise CallFailed(_line(f"{type(exc).__name__}: {self._describe(exc)}")) from None
        progress.raw_response = self._scrub(answer.content) if answer.content else answer.content
        progress.prompt_tokens += answer.usage[0]
        progress.completion_tokens += answer.usage[1]
        return answer

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, self._retry_after_max_s)
        # Exponential with a little jitter, so that several agents rate-limited together do not
        # come back in step.
        wait = self._backoff_s * 2 ** (state.attempt_number - 1)
        return min(wait + random.uniform(0, self._backoff_s), self._backoff_max_s)

    def _stop(self, state: RetryCallState, deadline: float) -> bool:
        # Also stop when the wait alone would run past the call's deadline: a retry that cannot
        # finish in time only delays the fallback.
        if state.attempt_number >= self._max_attempts or self._closed:
            return True
        return time.monotonic() + state.upcoming_sleep >= deadline

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "planner request failed (%s); retry %d in %.2f s",
            self._describe(exc) if exc is not None else "?",
            state.attempt_number,
            state.upcoming_sleep,
        )

    # --- budget, records, secrets ----------------------------------------------------------

    @property
    def _limit(self) -> int:
        return self.settings.max_calls_per_hour

    def _admit(self) -> bool:
        with self._lock:
            now = self._clock()
            while self._admitted and now - self._admitted[0] >= _WINDOW_S:
                self._admitted.popleft()
            if len(self._admitted) >= self._limit:
                return False
            self._admitted.append(now)
            return True

    def _count(self, **deltas: int) -> None:
        with self._lock:
            t = self._totals
            self._totals = PlannerTotals(
                **{name: getattr(t, name) + deltas.get(name, 0) for name in t.__dataclass_fields__}
            )

    def _record(
        self,
        progress: _Progress,
        trigger: str,
        started: float,
        plan: Plan | None,
        error: str | None,
    ) -> PlannerCall:
        return PlannerCall(
            trigger=trigger,
            prompt=[self._scrub_message(m) for m in progress.messages],
            raw_response=progress.raw_response,
            plan=plan,
            error=self._scrub(error) if error is not None else None,
            repaired=progress.repaired,
            mode=progress.mode,
            attempts=progress.attempts,
            latency_s=time.monotonic() - started,
            prompt_tokens=progress.prompt_tokens,
            completion_tokens=progress.completion_tokens,
        )

    def _scrub_message(self, message: dict[str, Any]) -> dict[str, Any]:
        content = message.get("content")
        if isinstance(content, list):
            content = [self._scrub_part(part) for part in content]
        elif isinstance(content, str):
            content = self._scrub(content)
        return {**message, "content": content}

    def _scrub_part(self, part: Any) -> Any:
        if not isinstance(part, dict):
            return part
        if part.get("type") == "image_url":
            # The trace would otherwise hold ~10 KB of base64 per call; the size says enough.
            url = str(part.get("image_url", {}).get("url", ""))
            data = url.partition("base64,")[2]
            size = len(base64.b64decode(data)) if data else 0
            return {"type": "image_url", "image_url": {"url": f"<screenshot {size} bytes>"}}
        if isinstance(part.get("text"), str):
            return {**part, "text": self._scrub(part["text"])}
        return part

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _describe(self, exc: BaseException) -> str:
        """A short, key-free description of an SDK error."""
        if isinstance(exc, openai.APIStatusError):
            text = f"HTTP {exc.status_code}: {status_message(exc)}"
        elif isinstance(exc, openai.APITimeoutError):
            text = "timed out"
        elif isinstance(exc, openai.APIConnectionError):
            # The SDK says only "Connection error."; the cause says which (refused, DNS, ...).
            cause = exc.__cause__
            text = f"{exc.message} {cause}" if cause is not None else exc.message
        else:
            text = str(exc)
        return self._scrub(_line(text))


def _line(text: str) -> str:
    """An error text as one line short enough for a log line and the trace."""
    return one_line(text, MAX_ERROR_CHARS)


def _where(loc: Location) -> str:
    return dotted(loc) or "(the whole answer)"

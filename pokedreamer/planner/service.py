"""System 2 at work beside the agent loop: when to plan, planning without blocking, falling back.

The loop calls ``observe(step, state)`` after every env step. It advances the subgoal queue and
notices triggers: the start, a subgoal done or timed out, new dialog, a new map, a battle's end,
being stuck, the periodic timer. The heuristic planner answers a trigger at once. The LLM is asked
on a worker thread, one call at a time and at most one per ``min_interval_s``: a trigger that comes
while it may not be asked waits and is asked as soon as it may, and a battle's stream of messages
asks it once. Until the LLM's plan arrives, and once it is done, the heuristic planner's plan is
pursued, so System 1 always has a subgoal; a failed or rejected LLM plan is replaced by the
heuristic planner's, recorded as "fallback". With ``planner.pace = "wait"`` ``observe`` waits for
each LLM plan instead: the game stands still while System 2 thinks. Every planning event becomes a
``PlanRecord`` for the episode's subgoal trace.

A person may set the subgoal (``steer``): it becomes a plan of its own, recorded as "human", and
holds until it is done or has timed out (``subgoal_timeout``), or the person clears it or asks
for a new plan; then the planner plans again as after any plan. While it holds no trigger asks
for a plan, and an LLM answer to a question asked before it is set aside.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from pokedreamer.errors import one_line, validation_summary
from pokedreamer.planner.prompts import plan_schema
from pokedreamer.planner.subgoals import Plan, StateView, Subgoal, describe
from pokedreamer.planner.validate import check

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pokedreamer.config import PlannerSettings
    from pokedreamer.env.graph import MapGraph
    from pokedreamer.env.state import GameState
    from pokedreamer.planner.facts import GameFacts
    from pokedreamer.planner.heuristic import HeuristicPlanner
    from pokedreamer.planner.llm import LLMPlanner, PlannerCall
    from pokedreamer.planner.prompts import PromptLibrary

Source = Literal["llm", "heuristic", "fallback", "human"]

HUMAN_TRIGGER = "set by a person"
"""The trigger of a person's subgoal in the trace."""
MAX_PROBLEM_CHARS = 300
_SUBGOAL = TypeAdapter(Subgoal)

BATTLE_STREAM = ("new dialog", "stuck")
"""Triggers that a battle raises over and over (each message is new dialog; no tile is new):
within one battle only the first asks the LLM."""


@dataclass
class PlanRecord:
    """One line of plans.jsonl: a planning event and everything needed to understand it."""

    step: int
    trigger: str
    source: Source
    plan: dict[str, Any] | None
    error: str | None = None
    prompt: list[dict[str, Any]] | None = None
    raw_response: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time: float = field(default_factory=time.time)
    mode: str | None = None
    """How the LLM was asked for JSON (planner.endpoint.Mode); None for a plan with no LLM call,
    and then left out of the line."""

    def json(self) -> str:
        # pydantic-core's encoder: compact UTF-8 JSON ~30x faster than json.dumps of asdict,
        # which matters as the heuristic planner replans at every new dialog page.
        fields = self.__dict__
        if fields["mode"] is None:
            fields = {k: v for k, v in fields.items() if k != "mode"}
        return pydantic_core.to_json(fields).decode()


@dataclass
class TokenLedger:
    """What a run has spent on the LLM, shared by every env's planner, against its token
    budget (``max_tokens``, 0: none) and at its prices per 1,000 tokens."""

    max_tokens: int = 0
    prompt_price_per_1k: float = 0.0
    completion_price_per_1k: float = 0.0
    calls: int = 0
    """LLM calls answered (with a plan or not)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notice: str | None = None
    """A line to tell the user once (the budget is spent); ``take_notice`` hands it over and
    leaves "" (told)."""

    @classmethod
    def of(cls, settings: PlannerSettings) -> TokenLedger:
        return cls(
            settings.max_tokens, settings.prompt_price_per_1k, settings.completion_price_per_1k
        )

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def priced(self) -> bool:
        return self.prompt_price_per_1k > 0 or self.completion_price_per_1k > 0

    @property
    def cost(self) -> float:
        return (
            self.prompt_tokens * self.prompt_price_per_1k
            + self.completion_tokens * self.completion_price_per_1k
        ) / 1000

    def spent(self) -> bool:
        """Whether the token budget is used up, so the LLM is not asked any more; the first
        time it is, ``notice`` says so."""
        if not self.max_tokens or self.tokens < self.max_tokens:
            return False
        if self.notice is None:
            self.notice = (
                f"the LLM's token budget is spent ({self.tokens:,} of planner.max_tokens = "
                f"{self.max_tokens:,}): the heuristic planner plans from now on"
            )
        return True

    def add(self, call: PlannerCall) -> None:
        self.calls += 1
        self.prompt_tokens += call.prompt_tokens
        self.completion_tokens += call.completion_tokens

    def take_notice(self) -> str | None:
        """The line to tell the user, once."""
        notice, self.notice = self.notice, ""
        return notice or None

    def totals(self) -> dict[str, int | float]:
        """Calls, prompt and completion tokens, and the cost when priced."""
        out: dict[str, int | float] = {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }
        if self.priced:
            out["cost"] = round(self.cost, 6)
        return out

    def metrics(self) -> dict[str, float]:
        """The totals as ``planner/...`` metrics; none before the first call."""
        if not self.calls:
            return {}
        return {f"planner/{name}": float(value) for name, value in self.totals().items()}

    def restore(self, metrics: dict[str, Any]) -> None:
        """Continues from a run's last ``kind: "planner"`` metrics line (a resumed run)."""
        self.calls = int(metrics.get("calls", 0))
        self.prompt_tokens = int(metrics.get("prompt_tokens", 0))
        self.completion_tokens = int(metrics.get("completion_tokens", 0))


class PlannerService:
    def __init__(
        self,
        settings: PlannerSettings,
        facts: GameFacts,
        heuristic: HeuristicPlanner,
        prompts: PromptLibrary | None = None,
        llm: LLMPlanner | None = None,
        sink: Callable[[PlanRecord], None] | None = None,
        *,
        ledger: TokenLedger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``ledger``: the run's LLM spending (shared by every env's service); ``clock`` and
        ``sleep`` time the LLM's calls against ``min_interval_s`` (tests pass fakes)."""
        if settings.kind in ("llm", "local") and (llm is None or prompts is None):
            raise ValueError("an LLM planner needs an LLMPlanner and a PromptLibrary")
        self.kind = settings.kind
        self.facts = facts
        self.heuristic = heuristic
        self.prompts = prompts
        self.llm = llm
        self.settings = settings
        self.sink = sink or (lambda record: None)
        self.ledger = ledger if ledger is not None else TokenLedger.of(settings)
        self._clock = clock
        self._sleep = sleep
        self.plan: Plan | None = None
        self.source: Source | None = None
        """Who made the plan pursued now."""
        self.queue: deque[Any] = deque()
        self.outcomes: deque[str] = deque(maxlen=8)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="planner") if llm else None
        self._pending: tuple[Future[PlannerCall], int, str] | None = None
        self._deferred: tuple[str, int] | None = None
        """The trigger (and its step) the LLM is to be asked about once it may be."""
        self._in_battle_asked = False
        self._last_call = -float("inf")
        self._subgoal_since = 0
        self._last_plan_step = 0
        self._last_text: tuple[str, ...] = ()
        self._last_map: int | None = None
        self._last_battle = "none"
        self._tiles: set[tuple[int, int, int]] = set()
        self._last_new_tile = 0

    # --- what the agent reads -------------------------------------------------------------

    @property
    def subgoal(self) -> Any | None:
        """The subgoal to pursue now, or None."""
        return self.queue[0] if self.queue else None

    @property
    def goal(self) -> str:
        return self.plan.goal if self.plan else ""

    @property
    def busy(self) -> bool:
        """Whether an LLM call is in flight."""
        return self._pending is not None

    @property
    def deferred(self) -> str | None:
        """The trigger waiting for the LLM to be free, if any."""
        return self._deferred[0] if self._deferred is not None else None

    @property
    def paced(self) -> bool:
        """Whether the game waits for each LLM plan (``planner.pace = "wait"``)."""
        return self.llm is not None and self.settings.pace == "wait"

    # --- the loop's hook ------------------------------------------------------------------

    def observe(self, step: int, state: GameState, screen: Any = None) -> None:
        """Called after every env step; cheap, and never waits for the LLM unless paced.
        ``screen`` (shade indices, 144x160) is sent to vision models when ``planner.vision``
        is on."""
        if self.kind == "none":
            return
        adopted = self._collect(step, state)
        trigger = self._trigger(step, state)
        if self.steered:
            return  # a person's subgoal holds until it is done or timed out
        if self.llm is None:
            if trigger is not None:
                self._adopt(step, state, trigger, "heuristic", self.heuristic.plan(state))
            return
        if trigger is not None and self._asks_llm(trigger, state):
            self._deferred = self._deferred or (trigger, step)
        self._ask(step, state, screen)
        if self.paced and self._pending is not None:
            self.wait()
            adopted = self._collect(step, state) or adopted
        # The heuristic plan rules until the LLM's arrives, once it is done, and once the LLM
        # may not be asked any more; free to make, it follows every trigger as the heuristic
        # planner alone would.
        heuristic_rules = self.source != "llm" or self.ledger.spent()
        if not self.queue or (trigger is not None and heuristic_rules and not adopted):
            why = trigger or "no subgoal"
            self._adopt(step, state, why, "heuristic", self.heuristic.plan(state))

    def request(self, step: int, state: GameState, trigger: str, screen: Any = None) -> None:
        """Asks for a new plan now (e.g. the dashboard's "replan"); the LLM, as soon as it
        may be asked. A person's subgoal gives way at once to the heuristic planner's plan."""
        if self.llm is None or self.source == "human":
            self._adopt(step, state, trigger, "heuristic", self.heuristic.plan(state))
        if self.llm is None:
            return
        self._deferred = (trigger, step)
        self._ask(step, state, screen)

    def steer(self, step: int, state: GameState, subgoal: Subgoal) -> None:
        """Pursues a person's subgoal from now on, as a plan of its own recorded as "human",
        until it is done, times out or the person clears it (``request``)."""
        self._deferred = None  # a question about the game before the person spoke
        plan = Plan(goal=f"a person's subgoal: {describe(subgoal)}", subgoals=[subgoal])
        self._adopt(step, state, HUMAN_TRIGGER, "human", plan)

    @property
    def steered(self) -> bool:
        """Whether a person's subgoal is pursued now."""
        return self.source == "human" and bool(self.queue)

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the LLM call in flight, if any, has returned; the next ``observe`` adopts
        its plan. False if ``timeout`` seconds passed first."""
        if self._pending is None:
            return True
        done, _ = wait_for([self._pending[0]], timeout)
        return bool(done)

    def close(self, wait: bool = False) -> None:
        """Stops planning; ``wait`` lets a call in flight finish (so its client may be closed)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)

    # --- internals ------------------------------------------------------------------------

    def _collect(self, step: int, state: GameState) -> bool:
        """Adopts the answer of the call in flight if it has come; whether it had."""
        if self._pending is None or not self._pending[0].done():
            return False
        future, asked_at, trigger = self._pending
        self._pending = None
        call = future.result()
        self.ledger.add(call)
        if self.steered:
            return False  # asked before the person set their subgoal, which holds
        if call.plan is not None:
            self._adopt(step, state, trigger, "llm", call.plan, call=call, asked_at=asked_at)
        else:
            self._adopt(
                step, state, trigger, "fallback", self.heuristic.plan(state),
                call.error or "no plan", call=call, asked_at=asked_at,
            )  # fmt: skip
        return True

    def _asks_llm(self, trigger: str, state: GameState) -> bool:
        """Whether ``trigger`` is worth an LLM call: in a battle, only the first of its stream
        of messages (and of its stuck spells) is."""
        if state.battle == "none" or trigger not in BATTLE_STREAM:
            return True
        if self._in_battle_asked:
            return False
        self._in_battle_asked = True
        return True

    def _ask(self, step: int, state: GameState, screen: Any) -> None:
        """Starts the LLM call on the deferred trigger, if one waits and the LLM may be asked:
        no call in flight, the token budget not spent, ``min_interval_s`` gone by (waited out
        when paced)."""
        if self._deferred is None or self._pending is not None:
            return
        if self.ledger.spent():
            self._deferred = None
            return
        early = self._last_call + self.settings.min_interval_s - self._clock()
        if early > 0:
            if not self.paced:
                return
            self._sleep(early)
        trigger, since = self._deferred
        self._deferred = None
        if since != step:
            trigger = f"{trigger} at step {since}"
        self._last_call = self._clock()
        assert self.prompts is not None
        system, user = render_prompt(
            self.prompts, state, trigger, self.goal, self.outcomes, self.facts.graph
        )
        assert self._pool is not None and self.llm is not None
        png = screen_png(screen) if self.settings.vision and screen is not None else None
        future = self._pool.submit(self.llm.plan, system, user, trigger, png)
        self._pending = (future, step, trigger)

    def _trigger(self, step: int, state: GameState) -> str | None:
        trigger = None
        if self.plan is None:
            trigger = "start"
        if state.battle == "none":
            self._in_battle_asked = False
        view = StateView.from_game_state(state) if self.queue else None
        while self.queue and bool(self.queue[0].done(view, self.facts)):
            self.outcomes.append(f"done: {describe(self.queue.popleft())}")
            self._subgoal_since = step
            trigger = trigger or ("plan done" if not self.queue else "subgoal done")
        if self.queue and step - self._subgoal_since > self.settings.subgoal_timeout:
            self.outcomes.append(f"timed out: {describe(self.queue.popleft())}")
            self._subgoal_since = step
            trigger = trigger or "subgoal timeout"
        if state.text and state.text != self._last_text:
            trigger = trigger or "new dialog"
        self._last_text = state.text
        if self._last_map is not None and state.map_id != self._last_map:
            trigger = trigger or "map change"
        self._last_map = state.map_id
        # The plan made in a battle's last frames ("win the battle") would outlive it: its
        # subgoal is neither done nor failed out of battle, so nothing else asks again.
        if state.battle == "none" and self._last_battle != "none":
            trigger = trigger or "battle over"
        self._last_battle = state.battle
        if state.tile not in self._tiles:
            self._tiles.add(state.tile)
            self._last_new_tile = step
        elif step - self._last_new_tile >= self.settings.stuck_steps:
            self._last_new_tile = step  # once per stretch of being stuck
            trigger = trigger or "stuck"
        if step - self._last_plan_step >= self.settings.replan_every:
            trigger = trigger or "periodic"
        return trigger

    def _adopt(
        self, step: int, state: GameState, trigger: str, source: Source, plan: Plan,
        error: str | None = None, call: PlannerCall | None = None, asked_at: int | None = None,
    ) -> None:  # fmt: skip
        self.plan = plan
        self.source = source
        self.queue = still_to_do(plan, StateView.from_game_state(state), self.facts)
        self._subgoal_since = step
        self._last_plan_step = step
        record = PlanRecord(
            step=step,
            trigger=trigger if asked_at is None else f"{trigger} (asked at step {asked_at})",
            source=source,
            plan=plan.model_dump(),
            error=error,
        )
        if call is not None:
            record.prompt = call.prompt
            record.raw_response = call.raw_response
            record.latency_s = call.latency_s
            record.prompt_tokens = call.prompt_tokens
            record.completion_tokens = call.completion_tokens
            record.mode = call.mode
        self.sink(record)


def render_prompt(
    prompts: PromptLibrary,
    state: GameState,
    trigger: str,
    goal: str,
    outcomes: Iterable[str],
    graph: MapGraph | None = None,
) -> tuple[str, str]:
    """The system and user prompts an LLM is asked for a plan with: the system template with
    the Plan schema, the user template with the state (and, from the run's map graph, where
    the current map's known exits lead), its dialog, how the last subgoals ended (oldest
    first), why a plan is asked for and the current goal."""
    system = prompts.render("system", schema=plan_schema())
    summary = state.summary()
    exits = graph.describe_exits(state.map_id) if graph is not None else None
    user = prompts.render(
        "user",
        state_summary=summary if exits is None else f"{summary}\n{exits}",
        dialog=" / ".join(state.text),
        recent_outcomes="\n".join(outcomes),
        trigger=trigger,
        goal=goal,
    )
    return system, user


def read_subgoal(text: str, facts: GameFacts) -> tuple[Subgoal | None, str]:
    """A person's subgoal, one JSON object of the closed schema, validated and checked against
    the game as an LLM's plan is; else None and every problem, in one line."""
    try:
        subgoal = _SUBGOAL.validate_json(text)
    except ValidationError as exc:
        return None, one_line(validation_summary(exc), MAX_PROBLEM_CHARS)
    problems = check(subgoal, facts)
    if problems:
        return None, one_line("; ".join(problems), MAX_PROBLEM_CHARS)
    return subgoal, ""


def still_to_do(plan: Plan, view: StateView, facts: GameFacts) -> deque[Subgoal]:
    """The plan's subgoals from its first one not yet done in ``view``; the last always stays.

    A plan often opens with what is done already (a go_to_map of the map the player is on, the
    go_to_tile it stands on). Were it adopted whole, the next step would pop that one, call it
    "subgoal done" and ask for the same plan again, every step the player stays there.
    """
    queue = deque(plan.subgoals)
    while len(queue) > 1 and bool(queue[0].done(view, facts)):
        queue.popleft()
    return queue


def screen_png(screen: Any) -> bytes:
    """A shade-index screen (144, 160) as a greyscale PNG, the way the Game Boy shows it."""
    import io

    import numpy as np
    from PIL import Image

    from pokedreamer.env.frames import GREYS

    buffer = io.BytesIO()
    Image.fromarray(GREYS[np.asarray(screen)]).save(buffer, format="PNG")
    return buffer.getvalue()

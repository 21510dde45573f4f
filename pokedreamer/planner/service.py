"""System 2 at work beside the agent loop: when to plan, planning without blocking, falling back.

The loop calls ``observe(step, state)`` after every env step. That call never waits on an LLM:
it advances the subgoal queue, notices triggers (start, a subgoal done or timed out, new dialog,
a new map, being stuck, the periodic timer), and starts at most one LLM call at a time on a
worker thread; the agent keeps acting on the current subgoal meanwhile. A failed or rejected LLM
plan is replaced by the heuristic planner's, and recorded as such. Every planning event becomes
a ``PlanRecord`` for the episode's subgoal trace.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pydantic_core

from pokedreamer.planner.prompts import plan_schema
from pokedreamer.planner.subgoals import Plan, StateView, describe

if TYPE_CHECKING:
    from collections.abc import Callable

    from pokedreamer.config import PlannerSettings
    from pokedreamer.env.state import GameState
    from pokedreamer.planner.facts import GameFacts
    from pokedreamer.planner.heuristic import HeuristicPlanner
    from pokedreamer.planner.llm import LLMPlanner, PlannerCall
    from pokedreamer.planner.prompts import PromptLibrary

Source = Literal["llm", "heuristic", "fallback"]


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

    def json(self) -> str:
        # pydantic-core's encoder: compact UTF-8 JSON ~30x faster than json.dumps of asdict,
        # which matters as the heuristic planner replans at every new dialog page.
        return pydantic_core.to_json(self.__dict__).decode()


class PlannerService:
    def __init__(
        self,
        settings: PlannerSettings,
        facts: GameFacts,
        heuristic: HeuristicPlanner,
        prompts: PromptLibrary | None = None,
        llm: LLMPlanner | None = None,
        sink: Callable[[PlanRecord], None] | None = None,
    ) -> None:
        if settings.kind == "llm" and (llm is None or prompts is None):
            raise ValueError("an LLM planner needs an LLMPlanner and a PromptLibrary")
        self.kind = settings.kind
        self.facts = facts
        self.heuristic = heuristic
        self.prompts = prompts
        self.llm = llm
        self.settings = settings
        self.sink = sink or (lambda record: None)
        self.plan: Plan | None = None
        self.queue: deque[Any] = deque()
        self.outcomes: deque[str] = deque(maxlen=8)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="planner") if llm else None
        self._pending: tuple[Future[PlannerCall], int, str] | None = None
        self._last_call = -float("inf")
        self._subgoal_since = 0
        self._last_plan_step = 0
        self._last_text: tuple[str, ...] = ()
        self._last_map: int | None = None
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

    # --- the loop's hook ------------------------------------------------------------------

    def observe(self, step: int, state: GameState, screen: Any = None) -> None:
        """Called after every env step; cheap, and never waits for the LLM. ``screen`` (shade
        indices, 144x160) is sent to vision models when ``planner.vision`` is on."""
        if self.kind == "none":
            return
        self._collect(step, state)
        trigger = self._trigger(step, state)
        if trigger is not None:
            self.request(step, state, trigger, screen)

    def request(self, step: int, state: GameState, trigger: str, screen: Any = None) -> None:
        """Asks for a new plan now (e.g. the dashboard's "replan")."""
        if self.kind == "heuristic" or self.llm is None:
            self._adopt(step, state, trigger, "heuristic", self.heuristic.plan(state))
            return
        if self._pending is not None:
            return  # one call at a time; the plan in flight will be judged against newer state
        if time.monotonic() - self._last_call < self.settings.min_interval_s:
            if self.plan is None:  # never leave the agent without a plan
                fallback = self.heuristic.plan(state)
                self._adopt(step, state, trigger, "fallback", fallback, "rate limited")
            return
        self._last_call = time.monotonic()
        system, user = self._render(state, trigger)
        assert self._pool is not None
        png = screen_png(screen) if self.settings.vision and screen is not None else None
        future = self._pool.submit(self.llm.plan, system, user, trigger, png)
        self._pending = (future, step, trigger)
        if self.plan is None:
            # The agent acts from the first step: the heuristic plan holds until the LLM answers.
            self._adopt(step, state, trigger, "heuristic", self.heuristic.plan(state))

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

    def _collect(self, step: int, state: GameState) -> None:
        if self._pending is None or not self._pending[0].done():
            return
        future, asked_at, trigger = self._pending
        self._pending = None
        call = future.result()
        if call.plan is not None:
            self._adopt(step, state, trigger, "llm", call.plan, call=call, asked_at=asked_at)
        else:
            self._adopt(
                step, state, trigger, "fallback", self.heuristic.plan(state),
                call.error or "no plan", call=call, asked_at=asked_at,
            )  # fmt: skip

    def _trigger(self, step: int, state: GameState) -> str | None:
        trigger = None
        if self.plan is None:
            trigger = "start"
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
        if state.tile not in self._tiles:
            self._tiles.add(state.tile)
            self._last_new_tile = step
        elif step - self._last_new_tile >= self.settings.stuck_steps:
            self._last_new_tile = step  # once per stretch of being stuck
            trigger = trigger or "stuck"
        if step - self._last_plan_step >= self.settings.replan_every:
            trigger = trigger or "periodic"
        return trigger

    def _render(self, state: GameState, trigger: str) -> tuple[str, str]:
        assert self.prompts is not None
        system = self.prompts.render("system", schema=plan_schema())
        user = self.prompts.render(
            "user",
            state_summary=state.summary(),
            dialog=" / ".join(state.text),
            recent_outcomes="\n".join(self.outcomes),
            trigger=trigger,
            goal=self.goal,
        )
        return system, user

    def _adopt(
        self, step: int, state: GameState, trigger: str, source: Source, plan: Plan,
        error: str | None = None, call: PlannerCall | None = None, asked_at: int | None = None,
    ) -> None:  # fmt: skip
        self.plan = plan
        queue = deque(plan.subgoals)
        # A plan often opens with what is done already (a go_to_map of the map the player is on,
        # the go_to_tile it stands on). It starts at its first subgoal still to do; otherwise the
        # next step would pop that one, call it "subgoal done" and ask for the same plan again,
        # every step the player stays there. The last subgoal always stays.
        view = StateView.from_game_state(state)
        while len(queue) > 1 and bool(queue[0].done(view, self.facts)):
            queue.popleft()
        self.queue = queue
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
        self.sink(record)


def screen_png(screen: Any) -> bytes:
    """A shade-index screen (144, 160) as a greyscale PNG, the way the Game Boy shows it."""
    import io

    import numpy as np
    from PIL import Image

    from pokedreamer.env.frames import GREYS

    buffer = io.BytesIO()
    Image.fromarray(GREYS[np.asarray(screen)]).save(buffer, format="PNG")
    return buffer.getvalue()

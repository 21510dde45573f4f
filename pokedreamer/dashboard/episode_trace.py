"""A recorded episode as the replay viewer reads it: its steps, its plans placed on them, and its
subgoal spans.

``EpisodeTrace`` reads what the recorder wrote (frames, steps.jsonl, plans.jsonl) and works out
the subgoal spans: each stretch of steps with one active subgoal, and how it ended. The agent loop
records plans at the episode step they were adopted (``PlanRecord.step``), and a subgoal that is
reached is replaced at that very step by the next one, with a replan whose trigger says why
("subgoal done", "plan done", "subgoal timeout", ...), so the trace is read from those.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pokedreamer.agent.episodes import EpisodeReader, StepRecord


@dataclass(frozen=True, slots=True)
class SubgoalSpan:
    """Steps ``start`` to ``end`` - 1 pursued one subgoal (None: no subgoal)."""

    subgoal: str | None
    start: int
    end: int
    outcome: str
    """How it ended: done, timed out, replaced (<trigger>), or still active at the end."""

    def describe(self) -> str:
        what = self.subgoal or "no subgoal"
        if self.outcome == "still active":
            return f"{what}: from step {self.start}, still active at the end"
        return f"{what}: steps {self.start}–{self.end - 1}, {self.outcome} at step {self.end}"


def _outcome(trigger: str | None) -> str:
    if trigger is None:
        return "done"  # the queue moved on with no new plan: the service pops a subgoal when done
    if trigger.startswith(("subgoal done", "plan done")):
        return "done"
    if trigger.startswith("subgoal timeout"):
        return "timed out"
    return f"replaced ({trigger})"


class EpisodeTrace:
    """A recorded episode, with its plans placed on its steps and its subgoal spans."""

    def __init__(self, reader: EpisodeReader) -> None:
        self.reader = reader
        self.frames = reader.frames()
        self.steps: list[StepRecord] = reader.steps()
        last = max(len(self.steps) - 1, 0)
        plans = [dict(p) for p in reader.plans()]
        for plan in plans:  # a plan logged after the last complete step still shows, at the end
            plan["_at"] = min(max(int(plan.get("step", 0)), 0), last)
        self.plans = sorted(plans, key=lambda p: p["_at"])
        self.plan_steps = [p["_at"] for p in self.plans]
        self.spans = self._spans()
        self._span_starts = [span.start for span in self.spans]

    def __len__(self) -> int:
        return len(self.steps)

    def _spans(self) -> list[SubgoalSpan]:
        spans: list[SubgoalSpan] = []
        if not self.steps:
            return spans
        triggers: dict[int, str] = {}
        for plan in self.plans:
            triggers.setdefault(plan["_at"], str(plan.get("trigger", "")))
        start = 0
        for i in range(1, len(self.steps) + 1):
            if i < len(self.steps) and self.steps[i].subgoal == self.steps[start].subgoal:
                continue
            outcome = "still active" if i == len(self.steps) else _outcome(triggers.get(i))
            spans.append(SubgoalSpan(self.steps[start].subgoal, start, i, outcome))
            start = i
        return spans

    def plan_index_at(self, step: int) -> int | None:
        """The plan in effect at ``step``: the last one adopted at or before it."""
        i = bisect.bisect_right(self.plan_steps, step) - 1
        return i if i >= 0 else None

    def next_plan_step(self, step: int) -> int | None:
        i = bisect.bisect_right(self.plan_steps, step)
        return self.plan_steps[i] if i < len(self.plan_steps) else None

    def previous_plan_step(self, step: int) -> int | None:
        i = bisect.bisect_left(self.plan_steps, step) - 1
        return self.plan_steps[i] if i >= 0 else None

    def span_index_at(self, step: int) -> int:
        return max(bisect.bisect_right(self._span_starts, step) - 1, 0)

    def return_to(self, step: int) -> float:
        return sum(s.reward for s in self.steps[: step + 1])

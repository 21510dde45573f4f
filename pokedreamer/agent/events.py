"""What the agent loop tells its watchers, and what they may ask of it.

The loop publishes events on an ``EventBus``; any UI subscribes and drains its own bounded queue
at its own pace. Publishing never blocks and never waits for a subscriber: a full queue drops its
oldest event, so a slow dashboard sees fewer frames while the agent keeps its step rate. Events
are plain frozen dataclasses holding numpy arrays and GameStates — no torch, no emulator.

Commands travel the other way through ``AgentLoop.send``: the loop applies them between steps.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from pokedreamer.config import PlannerKind
    from pokedreamer.env.state import GameState


# --- events: loop -> watchers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepEvent:
    """One env step: the screen and state after it, and what led there."""

    step: int
    """The loop's env step count (all envs together) when this step was taken."""
    env: int
    """Which env (0-based); the dashboard shows env 0."""
    episode: int
    """The episode number being recorded for this env (0 when not recording)."""
    episode_step: int
    """Steps into the episode."""
    frame: np.ndarray
    """The screen, (144, 160) uint8 shade indices 0 (lightest) .. 3 (darkest)."""
    state: GameState
    action: int | None
    """The button index pressed (None for an episode's first frame)."""
    button: str
    """The button's name, e.g. "up"; "" for an episode's first frame."""
    reward: float
    terms: dict[str, float]
    """The env's reward terms for this step."""
    goal: str
    """The planner's current goal; "" when there is none."""
    subgoals: tuple[str, ...]
    """The subgoal queue, described; the first is active."""
    progress: float
    """The active subgoal's potential phi in [0, 1] (1 is done); 0 without a subgoal."""
    human: bool = False
    """Whether a person chose this step's button."""


@dataclass(frozen=True, slots=True)
class RewardSample:
    """A step's reward without its screen and state: what a dashboard in another process gets
    for the steps it would not draw (its plots still sum every step's reward terms)."""

    env: int
    reward: float
    terms: dict[str, float]


@dataclass(frozen=True, slots=True)
class ImaginedEvent:
    """What the world model expected to see at ``step`` before it saw it: the prior's decoded
    screen, (144, 160) uint8 shade indices, upsampled from the model's resolution."""

    step: int
    env: int
    frame: np.ndarray


@dataclass(frozen=True, slots=True)
class PlanEvent:
    """A planning event: ``record`` is the PlanRecord written to plans.jsonl, as a dict (step,
    trigger, source, plan, error, prompt, raw_response, latency_s, tokens, wall_time)."""

    env: int
    episode: int
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MetricsEvent:
    """Training and speed figures, about once a second and after each logged update."""

    step: int
    metrics: dict[str, float]
    """e.g. steps_per_s, updates, wm/loss, wm/image_loss, behavior/actor_loss, return, ..."""


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The loop's mode changed (and once at start)."""

    step: int
    paused: bool
    human: bool
    """A person is in control of env 0."""
    planner: PlannerKind
    speed: int
    """The pace, in times the Game Boy's own speed; 0 is uncapped (agent/pace.py)."""
    training: bool
    run_dir: str
    message: str = ""
    """A line for the status bar, e.g. "checkpoint saved: runs/x/checkpoints/agent-100"."""
    finished: bool = False
    """The loop has stopped (its last event)."""
    buttons: tuple[str, ...] = ()
    """The loop's actions by index (HumanAction names one of them)."""
    demo_steps: int = 0
    """The steps a person has played in this run, kept as demonstrations (``demos/``)."""


Event = StepEvent | ImaginedEvent | PlanEvent | MetricsEvent | StatusEvent


# --- commands: watchers -> loop ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pause:
    pass


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class SingleStep:
    """While paused: take this many steps, then pause again."""

    steps: int = 1


@dataclass(frozen=True, slots=True)
class Replan:
    """Ask every env's planner for a new plan now."""


@dataclass(frozen=True, slots=True)
class SetPlanner:
    kind: PlannerKind


@dataclass(frozen=True, slots=True)
class SetSpeed:
    """Play at ``speed`` times the Game Boy's own speed; 0 is uncapped."""

    speed: int


@dataclass(frozen=True, slots=True)
class SetSubgoal:
    """A person's subgoal for env ``env``: one subgoal of the closed schema as JSON, which the
    loop checks as it checks an LLM's plan and, when it passes, pursues until it is done or its
    step budget runs out (planner/service.py). None gives the subgoal back to the planner."""

    subgoal: str | None
    env: int = 0


@dataclass(frozen=True, slots=True)
class SaveCheckpoint:
    pass


@dataclass(frozen=True, slots=True)
class TakeControl:
    """human=True: env 0 waits for HumanAction commands and records them as demonstrations;
    human=False hands env 0 back to the agent."""

    human: bool


@dataclass(frozen=True, slots=True)
class HumanAction:
    """A person's button for env 0, by name (one of env.buttons, e.g. "a", "up")."""

    button: str


@dataclass(frozen=True, slots=True)
class UsePrompts:
    """Render the LLM planner's prompts from the templates in ``folder`` from its next plan on
    (templates missing there stay the built-in ones): the prompt editor saved one there."""

    folder: str


@dataclass(frozen=True, slots=True)
class Quit:
    """Stop after the current step: checkpoint written, logs flushed."""


Command = (
    Pause | Resume | SingleStep | Replan | SetPlanner | SetSpeed | SetSubgoal | SaveCheckpoint
    | TakeControl | HumanAction | UsePrompts | Quit
)  # fmt: skip


# --- the bus ------------------------------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """One subscriber's bounded queue. ``drain()`` takes everything waiting; ``dropped`` counts
    events lost because the subscriber fell behind."""

    maxlen: int
    kinds: tuple[type, ...] | None = None
    dropped: int = 0
    _events: deque[Any] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wants(self, kind: type) -> bool:
        return self.kinds is None or kind in self.kinds

    def put(self, event: Any) -> None:
        with self._lock:
            if len(self._events) >= self.maxlen:
                self._events.popleft()
                self.dropped += 1
            self._events.append(event)

    def drain(self) -> list[Any]:
        with self._lock:
            events = list(self._events)
            self._events.clear()
        return events


class EventBus:
    """Fan-out of the loop's events to any number of subscribers, never blocking the loop."""

    def __init__(self) -> None:
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, maxlen: int = 256, kinds: tuple[type, ...] | None = None) -> Subscription:
        """A new queue for events of ``kinds`` (all when None), holding at most ``maxlen``."""
        subscription = Subscription(maxlen, kinds)
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def wants(self, kind: type) -> bool:
        """Whether anyone listens for ``kind``: the loop skips building events nobody reads."""
        return any(s.wants(kind) for s in self._subscriptions)

    def publish(self, event: Any) -> None:
        for subscription in self._subscriptions:  # a tuple swapped whole: safe without the lock
            if subscription.wants(type(event)):
                subscription.put(event)

"""The link between an agent loop and a dashboard in another process: what crosses the socket,
and each end of it.

The two processes talk over a socket pair (``process.py`` makes it):

- loop -> UI: a ``Hello`` (the settings, less secrets, and the loop's status), then batches of
  the loop's events about 40 times a second (the steps before a batch's newest as
  ``RewardSample``), then ``LoopEnded``;
- UI -> loop: the commands of ``agent.events`` (pause, step, replan, quit, ...), and ``UIStats``
  about once a second and as the UI exits.

On the loop's side a ``LoopBridge`` thread drains a bus subscription and sends what env 0's
dashboard shows (events of other envs are never drawn), so the loop itself only publishes and
never waits on the UI: if the UI reads slowly the subscription drops its oldest events. On the
UI's side a ``LoopProxy`` stands in for the loop (a ``LoopControl``): its ``run`` receives the
batches into a local bus, and its ``send`` writes commands.

Messages are pickled: both ends are this package, and the socket pair is private to the two
processes (it is inherited by the child and by nothing else).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from pokedreamer.agent.events import (
    EventBus,
    HumanAction,
    ImaginedEvent,
    MetricsEvent,
    PlanEvent,
    Quit,
    RewardSample,
    StatusEvent,
    StepEvent,
)
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.dashboard.steering import LoopFailed

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.planner.prompts import PromptLibrary

SEND_EVERY_S = 1 / 40
"""How often the bridge sends the events gathered since its last batch: about twice the UI's
frame rate, so a frame waits at most half a frame for the socket."""
SUBSCRIPTION_SIZE = 2048
"""Events held on the loop's side between two batches; older ones are dropped."""


@dataclass(frozen=True)
class Hello:
    """The first message to the UI: what it needs to know of the loop before any event."""

    settings: Settings
    """The loop's settings, with the planner's API key removed."""
    status: StatusEvent
    """The loop's modes as it starts (its ``status()``)."""
    want_human: bool
    """A person plays from the start (``pokedreamer play``)."""
    imagined: bool
    """The UI subscribes to imagined frames (the loop decodes them only then)."""

    @classmethod
    def of(cls, loop: LoopControl, *, want_human: bool, imagined: bool) -> Hello:
        settings = loop.settings
        # The UI never calls the LLM: the key stays in the loop's process.
        settings = settings.model_copy(
            update={"planner": settings.planner.model_copy(update={"api_key": None})}
        )
        return cls(settings, loop.status(), want_human, imagined)


@dataclass(frozen=True)
class LoopEnded:
    """The loop has stopped: ``error`` is its one line when it failed; ``close_ui`` asks the UI
    to exit at once (the loop was stopped by a signal, or the caller said so)."""

    error: str | None
    close_ui: bool


@dataclass(frozen=True)
class UIStats:
    """What the UI has done since its first drawn frame: frames drawn a second and the CPU its
    process took (share of one core)."""

    frames_per_s: float
    cpu_share: float


def send(conn: Connection, message: Any) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


# --- the loop's side ----------------------------------------------------------------------------


class LoopBridge:
    """Sends a loop's events to a UI process and applies the commands it sends back."""

    def __init__(self, loop: LoopControl, conn: Connection, imagined: bool) -> None:
        self.loop = loop
        self.conn = conn
        # Without ImaginedEvent among the kinds the loop decodes no imagined frames at all.
        kinds: tuple[type, ...] = (StepEvent, PlanEvent, MetricsEvent, StatusEvent)
        if imagined:
            kinds += (ImaginedEvent,)
        self.kinds = kinds
        self.subscription = loop.bus.subscribe(SUBSCRIPTION_SIZE, kinds)
        self.attached = True
        self.ui_stats: UIStats | None = None
        """The UI's latest report."""
        self.ui_gone = threading.Event()
        self.loop_done = threading.Event()
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._send_events, name="dashboard sender")
        self._receiver = threading.Thread(target=self._receive_commands, name="dashboard commands")

    def start(self) -> None:
        self._sender.start()
        self._receiver.start()

    def detach(self) -> None:
        """Stops watching: the loop builds no events for the UI (and decodes no imagined
        frames), as with no dashboard at all; the UI keeps what it last drew."""
        if self.attached:
            self.attached = False
            self.loop.bus.unsubscribe(self.subscription)

    def attach(self) -> None:
        """Watches again after ``detach``."""
        if not self.attached:
            self.subscription = self.loop.bus.subscribe(SUBSCRIPTION_SIZE, self.kinds)
            self.attached = True

    def batch(self) -> list[Any]:
        """The waiting events the UI draws: env 0's steps, plans and newest imagined frame, and
        every metrics and status event."""
        batch: list[Any] = []
        imagined = newest = None
        for event in self.subscription.drain():
            kind = type(event)
            if kind is StepEvent:
                if event.env == 0:
                    # Only the newest step's screen and state can be drawn: the ones before it
                    # go as their reward alone, a hundredth of the bytes to pickle and send.
                    if newest is not None:
                        batch.append(RewardSample(0, newest.reward, newest.terms))
                    newest = event
            elif kind is ImaginedEvent:
                if event.env == 0:
                    imagined = event
            elif kind is PlanEvent:
                if event.env == 0:
                    batch.append(event)
            else:
                batch.append(event)
        batch += [e for e in (newest, imagined) if e is not None]
        return batch

    def _send_events(self) -> None:
        while not self._stop.wait(SEND_EVERY_S):
            batch = self.batch()
            if batch and not self._try_send(batch):
                return

    def _try_send(self, message: Any) -> bool:
        try:
            send(self.conn, message)
        except OSError:  # the UI has gone; the receiver asks the loop to stop
            return False
        return True

    def _receive_commands(self) -> None:
        while True:
            try:
                message = receive(self.conn)
            except (EOFError, OSError):
                break
            if isinstance(message, UIStats):
                self.ui_stats = message
                continue
            # The UI checks buttons before sending; nothing else can be refused.
            with contextlib.suppress(ValueError, RuntimeError):
                self.loop.send(message)
        self.ui_gone.set()
        # The UI closed (its user quit it, or it failed) while the loop still runs: stop the
        # loop the safe way, so that its checkpoint and logs are written.
        if not self.loop_done.is_set():
            self.loop.send(Quit())

    def finish(self, error: str | None, close_ui: bool) -> None:
        """After the loop has stopped: sends its last events and ``LoopEnded``."""
        self.loop_done.set()
        self._stop.set()
        self._sender.join()
        self.loop.bus.unsubscribe(self.subscription)
        batch = self.batch()
        if batch:
            self._try_send(batch)
        self._try_send(LoopEnded(error, close_ui))

    def join(self) -> None:
        """Waits for the UI to close its end, then closes ours."""
        self._receiver.join()
        self.conn.close()


# --- the UI's side ------------------------------------------------------------------------------


class LoopProxy:
    """The loop as the dashboard sees it from another process: a ``LoopControl`` whose bus is
    filled by ``run`` from the socket, and whose ``send`` writes to it."""

    def __init__(self, conn: Connection, hello: Hello) -> None:
        self.conn = conn
        self.bus = EventBus()
        self.settings = hello.settings
        self.close_ui = False
        """Set when the loop asks the UI to exit as it stops."""
        self._status = hello.status
        self._send_lock = threading.Lock()

    @property
    def prompts(self) -> PromptLibrary | None:
        """None: the loop's library lives in the loop's process. The dashboard reads the
        templates from the settings' folder, and a save reaches the loop as ``UsePrompts``."""
        return None

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        """The loop's modes as its latest StatusEvent reported them."""
        return dataclasses.replace(self._status, message=message, finished=finished)

    def send(self, command: Any) -> None:
        buttons = self._status.buttons
        if isinstance(command, HumanAction) and command.button not in buttons:
            raise ValueError(f"unknown button {command.button!r}; buttons: {list(buttons)}")
        try:
            with self._send_lock:
                send(self.conn, command)
        except OSError:
            raise RuntimeError("the agent loop has stopped") from None

    def run(self, steps: int | None = None) -> None:
        """Receives the loop's events into ``bus`` until the loop stops (``steps`` is the
        loop's business: it was given to it in its own process)."""
        while True:
            try:
                message = receive(self.conn)
            except (EOFError, OSError):
                raise LoopFailed("the agent loop's process has gone") from None
            if isinstance(message, LoopEnded):
                self.close_ui = message.close_ui
                if message.error is not None:
                    raise LoopFailed(message.error)
                return
            for event in message:
                if type(event) is StatusEvent:
                    self._status = event
                self.bus.publish(event)

    def report(self, stats: UIStats) -> None:
        with contextlib.suppress(OSError), self._send_lock:
            send(self.conn, stats)

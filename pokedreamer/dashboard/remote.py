"""The dashboard in a process of its own, so that watching costs the agent loop almost nothing.

In one interpreter the UI and the loop share the GIL: every millisecond Textual spends drawing is
one the loop may wait for, and the loop lets go of the GIL many times a step. So ``pokedreamer
run`` keeps the loop in its own process and starts the dashboard as a child process that owns
the terminal; they talk over a socket pair:

- loop -> UI: a ``Hello`` (the settings, less secrets, and the loop's modes), then batches of the
  loop's events about 60 times a second (the steps before a batch's newest as ``RewardSample``),
  then ``LoopEnded``;
- UI -> loop: the commands of ``agent.events`` (pause, step, replan, quit, ...), and ``UIStats``
  as the UI exits.

On the loop's side a ``LoopBridge`` thread drains a bus subscription and sends what env 0's
dashboard shows (events of other envs are never drawn), so the loop itself only publishes as
before and never waits on the UI: if the UI reads slowly the subscription drops its oldest events.
On the UI's side a ``LoopProxy`` stands in for the loop (``AgentLoopLike``): its ``run`` receives
the batches into a local bus, and its ``send`` writes commands.

Messages are pickled: both ends are this package, and the socket pair is private to the two
processes (it is inherited by the child and by nothing else).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
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
    UsePrompts,
)

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.dashboard.app import AgentLoopLike
    from pokedreamer.planner.prompts import PromptLibrary

SEND_EVERY_S = 1 / 40
"""How often the bridge sends the events gathered since its last batch: twice the UI's frame
rate, so a frame waits at most half a frame for the socket."""
UI_CPU_BUDGET = 0.4
"""Share of one core the UI's thread may take before it draws fewer frames. In a process of its
own it holds no GIL the loop needs, so it may take far more than in the loop's interpreter
(app.UI_CPU_BUDGET); the bound keeps a slow terminal from taking a core from env processes."""
SUBSCRIPTION_SIZE = 2048
"""Events held on the loop's side between two batches; older ones are dropped."""


@dataclass(frozen=True)
class Hello:
    """The first message to the UI: what it needs to know of the loop before any event."""

    settings: Settings
    """The loop's settings, with the planner's API key removed."""
    buttons: list[str]
    paused: bool
    human: bool
    planner: str
    realtime: bool
    training: bool
    run_dir: str
    want_human: bool
    """A person plays from the start (``pokedreamer play``)."""
    imagined: bool
    headless: bool = False
    """No terminal: Textual's headless driver (the bench)."""
    size: tuple[int, int] | None = None
    """The headless screen's size."""
    encode: bool = False
    """Encode each screen update to ANSI as a terminal driver would (the bench: headless
    Textual skips that step, which would flatter the figures)."""
    close_when_done: bool = False
    """Exit as soon as the loop stops, rather than waiting for q (the bench)."""


@dataclass(frozen=True)
class LoopEnded:
    """The loop has stopped: ``error`` is its one line when it failed; ``close_ui`` asks the UI
    to exit at once (the loop was stopped by a signal, or the caller said so)."""

    error: str | None
    close_ui: bool


@dataclass(frozen=True)
class UIStats:
    """What the UI did, sent as it exits: frames drawn a second and the CPU its process took
    (share of one core), both from its first drawn frame on."""

    frames_per_s: float
    cpu_share: float


def _send(conn: Connection, message: Any) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


# --- the loop's side ----------------------------------------------------------------------------


class LoopBridge:
    """Sends a loop's events to a UI process and applies the commands it sends back."""

    def __init__(self, loop: AgentLoopLike, conn: Connection, imagined: bool) -> None:
        self.loop = loop
        self.conn = conn
        # Without ImaginedEvent among the kinds the loop decodes no imagined frames at all.
        kinds = (StepEvent, PlanEvent, MetricsEvent, StatusEvent)
        if imagined:
            kinds += (ImaginedEvent,)
        self.kinds = kinds
        self.subscription = loop.bus.subscribe(SUBSCRIPTION_SIZE, kinds)
        self.attached = True
        self.ui_stats: UIStats | None = None
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

    def _batch(self) -> list[Any]:
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
            batch = self._batch()
            if batch and not self._try_send(batch):
                return

    def _try_send(self, message: Any) -> bool:
        try:
            _send(self.conn, message)
        except OSError:  # the UI has gone; the receiver asks the loop to stop
            return False
        return True

    def _receive_commands(self) -> None:
        while True:
            try:
                message = _recv(self.conn)
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
        batch = self._batch()
        if batch:
            self._try_send(batch)
        self._try_send(LoopEnded(error, close_ui))

    def join(self) -> None:
        """Waits for the UI to close its end, then closes ours."""
        self._receiver.join()
        self.conn.close()


class DashboardProcess:
    """Runs a loop in this process under a dashboard in a child process (see the module's
    docstring). ``run`` returns what the loop's ``run`` returned, after the UI has closed, and
    raises what it raised."""

    def __init__(
        self,
        loop: AgentLoopLike,
        *,
        human: bool = False,
        imagined: bool = True,
        headless: bool = False,
        size: tuple[int, int] | None = None,
        encode: bool = False,
        close_when_done: bool = False,
    ) -> None:
        self.loop = loop
        self.hello_options = {
            "want_human": human, "imagined": imagined, "headless": headless, "size": size,
            "encode": encode, "close_when_done": close_when_done,
        }  # fmt: skip
        self.imagined = imagined
        self.ui_stats: UIStats | None = None
        self.ui_exit_code: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        """The UI's process, once ``run`` has started it."""
        self.bridge: LoopBridge | None = None
        """The loop's end of the link, while ``run`` runs."""

    def _hello(self) -> Hello:
        loop = self.loop
        settings = loop.settings
        # The UI never calls the LLM: the key stays in this process.
        settings = settings.model_copy(
            update={"planner": settings.planner.model_copy(update={"api_key": None})}
        )
        run_dir = getattr(loop, "run_dir", None)
        return Hello(
            settings=settings,
            buttons=list(getattr(loop, "buttons", settings.env.buttons)),
            paused=bool(getattr(loop, "paused", False)),
            human=bool(getattr(loop, "human", False)),
            planner=str(getattr(loop, "planner_kind", settings.planner.kind)),
            realtime=bool(getattr(loop, "realtime", False)),
            training=bool(getattr(loop, "training", False)),
            run_dir=str(run_dir.path) if run_dir is not None else "",
            **self.hello_options,
        )

    def run(self, steps: int | None = None) -> Any:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.process = process = subprocess.Popen(
                [sys.executable, "-m", "pokedreamer.dashboard.remote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
            conn = Connection(os.dup(ours.fileno()))
        self.bridge = bridge = LoopBridge(self.loop, conn, self.imagined)
        _send(conn, self._hello())
        bridge.start()
        error: BaseException | None = None
        result: Any = None
        previous = _stop_on_sigterm()
        try:
            result = self.loop.run(steps)
        except BaseException as exc:  # told to the UI, raised again once it has closed
            error = exc
        finally:
            from pokedreamer.dashboard.app import one_line

            interrupted = isinstance(error, KeyboardInterrupt)
            line = None if error is None or interrupted else one_line(error)
            bridge.finish(line, close_ui=interrupted or bool(self.hello_options["close_when_done"]))
            try:
                self.ui_exit_code = process.wait()
            except KeyboardInterrupt:
                process.terminate()
                self.ui_exit_code = process.wait()
                error = error or KeyboardInterrupt()
            finally:
                bridge.join()
                self.ui_stats = bridge.ui_stats
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
        if error is not None:
            raise error
        return result


def _stop_on_sigterm() -> Any:
    """SIGTERM stops the loop as Ctrl-C would (checkpoint and logs written); returns the old
    handler, or None off the main thread, where handlers cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


# --- the UI's side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunPath:
    path: Path


class LoopProxy:
    """The loop as the dashboard sees it, from another process (``AgentLoopLike``)."""

    def __init__(self, conn: Connection, hello: Hello) -> None:
        self.conn = conn
        self.bus = EventBus()
        self.settings = hello.settings
        self.buttons = hello.buttons
        self.paused = hello.paused
        self.human = hello.human
        self.planner_kind = hello.planner
        self.realtime = hello.realtime
        self.training = hello.training
        self.run_dir = _RunPath(Path(hello.run_dir)) if hello.run_dir else None
        self.close_ui = False
        """Set when the loop asks the UI to exit as it stops."""
        self._prompts: PromptLibrary | None = None
        self._send_lock = threading.Lock()

    @property
    def prompts(self) -> PromptLibrary | None:
        return self._prompts

    @prompts.setter
    def prompts(self, library: PromptLibrary) -> None:
        # The editor hands its library over once it has saved a template: the loop's planner
        # reads the same folder from its next plan on.
        self._prompts = library
        if library.prompts_dir is not None:
            self.send(UsePrompts(str(library.prompts_dir)))

    def send(self, command: Any) -> None:
        if isinstance(command, HumanAction) and command.button not in self.buttons:
            raise ValueError(f"unknown button {command.button!r}; buttons: {self.buttons}")
        try:
            with self._send_lock:
                _send(self.conn, command)
        except OSError:
            raise RuntimeError("the agent loop has stopped") from None

    def run(self, steps: int | None = None) -> None:
        """Receives the loop's events into ``bus`` until the loop stops (``steps`` is the
        loop's business: it was given to it in its own process)."""
        from pokedreamer.dashboard.app import LoopFailed

        while True:
            try:
                message = _recv(self.conn)
            except (EOFError, OSError):
                raise LoopFailed("the agent loop's process has gone") from None
            if isinstance(message, LoopEnded):
                self.close_ui = message.close_ui
                if message.error is not None:
                    raise LoopFailed(message.error)
                return
            for event in message:
                self.bus.publish(event)

    def report(self, stats: UIStats) -> None:
        with contextlib.suppress(OSError), self._send_lock:
            _send(self.conn, stats)


def main(argv: list[str]) -> int:
    """The UI process: ``python -m pokedreamer.dashboard.remote FD``."""
    from pokedreamer.dashboard.app import Dashboard

    conn = Connection(int(argv[1]))
    hello: Hello = _recv(conn)
    proxy = LoopProxy(conn, hello)
    app = Dashboard(
        proxy, human=hello.want_human, imagined=hello.imagined, cpu_budget=UI_CPU_BUDGET,
        switch_interval=None,
    )  # fmt: skip
    if hello.encode:
        from pokedreamer.dashboard.bench import _encode_like_a_terminal

        _encode_like_a_terminal(app, hello.size or (200, 60))
    app.run(headless=hello.headless, size=hello.size if hello.headless else None)
    elapsed = time.monotonic() - app.first_frame_at[0] if app.first_frame_at else 0.0
    if elapsed > 0:
        frames = app.frames_drawn - app.first_frame_at[2]
        cpu = time.process_time() - app.first_frame_at[1]
        proxy.report(UIStats(frames / elapsed, cpu / elapsed))
    conn.close()
    return 0


if __name__ == "__main__":
    # Run as the package's module, not as __main__: the loop pickles this module's classes
    # under their package name, and isinstance must see the same classes here.
    from pokedreamer.dashboard import remote

    sys.exit(remote.main(sys.argv))

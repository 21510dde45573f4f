"""Envs on Ray actors: each actor steps a batch of envs (one PyBoy each) in one call per step.

``RayVectorEnv`` answers as gymnasium's vector env does with autoreset disabled (observations
``screen`` and ``state`` stacked over the envs, ``info`` with ``state``, ``rewards`` and ``map``
and their ``_`` masks), so the driver cannot tell it from the local one; env i seeded with s plays
the same game on either. The actors run on any node of the Ray cluster.

An actor that dies (its node lost, its process killed) is replaced by a fresh one; the episodes
its envs were playing are lost. The step that found it dead reports those envs as truncated with
``info["_restarted"]`` set and their last observation repeated, so the caller ends the episodes
and resets the envs; a replaced actor's envs are reset once before they step, so that every env
always has a game to step.

Each step is one call to every actor, sent through a Ray Compiled Graph compiled once over the
actors: its shared-memory channels cost a fraction of a millisecond where a plain actor call
(``.remote()`` and ``ray.get``) costs milliseconds on a busy machine. Where a graph cannot be
compiled (a Ray without Compiled Graphs), the same calls go as plain actor calls.

This module is the only one that imports Ray, and only ``make_envs`` with ``workers="ray"``
imports it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from pokedreamer.config import EnvSettings, RewardSettings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rewards import TERMS
from pokedreamer.errors import UserError

try:
    import ray
    from ray.exceptions import (
        ActorUnavailableError,
        RayActorError,
        RayChannelError,
        RayTaskError,
    )
except ImportError as error:  # pragma: no cover - the message is what a user without Ray sees
    raise UserError("--workers ray needs Ray: pip install -e '.[ray]' (or make ray)") from error

LOST = (RayActorError, ActorUnavailableError)
"""What a call to an actor that died raises."""

GRAPH_FAILED = (*LOST, RayChannelError)
"""What a compiled graph's call raises when one of its actors died (the graph then shuts down)
or its channels failed or timed out."""

Call = tuple[str, tuple[Any, ...]]
"""One actor's part of a call: ``reset`` or ``step``, and its arguments."""
Answer = tuple[np.ndarray, list[Any], float]
"""An actor's answer: its envs' screens packed, each env's results, its seconds inside."""

NAP_SHARE = 0.7
"""A compiled graph's reader polls its channel, holding a core while it waits; on a machine with
few cores that core is one an actor needed. So the caller first sleeps through this share of
what the actors' steps took lately (the median of the last few), then reads."""

CALL_TIMEOUT_S = 600.0
"""How long a compiled graph's call may take before it counts as failed: a step of many envs on
a loaded machine, and a first reset, can take seconds; Ray's own default is 10 s."""

INLINE_ENVS = 12
"""The most envs whose packed screens and GameStates fit in one object that Ray sends inline in
its reply (up to 100 KB); a larger batch comes back as two objects, screens and the rest, each
inline up to 16 envs. Two objects cost more than one, so a small batch sends one."""


def returns(envs: int, extra: int = 0) -> int:
    """How many objects a call on an actor of ``envs`` envs returns (``extra`` more values)."""
    return (1 if envs <= INLINE_ENVS else 2) + (extra if envs > INLINE_ENVS else 0)


class EnvWorker:
    """A batch of envs in one Ray actor; every method answers for all of them in one call."""

    def __init__(self) -> None:
        self.envs: list[Any] = []
        self.last: tuple[int, Any] = (-1, None)
        """The number of the last call served, and its answer."""

    def open(self, env: EnvSettings, rewards: RewardSettings, count: int) -> None:
        """Makes the envs: a method rather than the constructor, so that an env that cannot be
        made (a missing start state) raises its own error to the caller."""
        from pokedreamer.env.gym_env import PokemonRedEnv

        self.envs = [PokemonRedEnv(env, rewards) for _ in range(count)]

    def reset(self, seeds: list[int | None], mask: list[bool]) -> tuple[np.ndarray, list[Any]]:
        """Resets the envs whose ``mask`` is set, env j to ``seeds[j]``: their screens packed,
        and (obs without its screen, info) of each, None for the others."""
        out = [
            env.reset(seed=seed) if reset else None
            for env, seed, reset in zip(self.envs, seeds, mask, strict=True)
        ]
        return pack_screens([r[0].pop("screen") for r in out if r is not None]), out

    def step(
        self, actions: list[int], restart: list[bool] | None = None
    ) -> tuple[np.ndarray, list[Any]]:
        """Steps every env: their screens packed, and each env's (obs without its screen,
        reward, terminated, truncated, info). An env in ``restart`` is reset instead, its
        action ignored (gymnasium's next-step autoreset)."""
        restart = restart or [False] * len(self.envs)
        out: list[Any] = []
        for env, action, again in zip(self.envs, actions, restart, strict=True):
            if again:
                obs, info = env.reset()  # unseeded: its generator goes on, as gymnasium's
                out.append((obs, 0.0, False, False, info))
            else:
                out.append(env.step(action))
        return pack_screens([r[0].pop("screen") for r in out]), out

    def serve(self, call: tuple[int, str, tuple[Any, ...]]) -> Answer:
        """A numbered call of ``reset`` or ``step``: (number, method, its arguments). Returns
        the method's answer and the seconds it took in here (the rest of a call's time is the
        call's own cost). The answer is kept with its number: when a call fails because another
        actor died, the caller asks this one whether it did its part (``answer_of``)."""
        number, method, args = call
        start = time.perf_counter()
        if method == "step":
            packed, out = self.step(*args)
        elif method == "reset":
            packed, out = self.reset(*args)
        else:
            raise ValueError(f"an env worker serves reset and step, not {method!r}")
        answer = (packed, out, time.perf_counter() - start)
        self.last = (number, answer)
        return answer

    def answer_of(self, number: int) -> Answer | None:
        """The answer to call ``number`` if it was the last one served, else None."""
        served, answer = self.last
        return answer if served == number else None

    def echo(self, value: Any) -> Any:
        """Returns ``value`` (a started actor answers)."""
        return value

    def close(self) -> None:
        for env in self.envs:
            env.close()


def pack_screens(screens: list[np.ndarray]) -> np.ndarray:
    """Screens of shades 0..3 at four pixels a byte: a quarter of the bytes to send, which
    keeps 16 envs' screens under Ray's 100 KB limit for an object sent inline (larger ones go
    through the object store, milliseconds more on a 2-core machine)."""
    if not screens:
        return np.zeros((0, 0, 0), np.uint8)
    # Four neighbouring pixels as one little-endian word, pixel j's two bits at 8j. Multiplying
    # by 2^24 + 2^18 + 2^12 + 2^6 lays pixel j at bit 24 + 2j; what lands below bit 24 sums to
    # less than 2^24 (no carry into the top byte) and the rest falls off the 32 bits.
    v = np.stack(screens).view("<u4")
    return ((v * np.uint32(0x01041040)) >> 24).astype(np.uint8)


# Each packed byte's four pixels as one little-endian word, pixel j in byte j.
_UNPACK = np.array(
    [sum(((b >> (2 * j)) & 3) << (8 * j) for j in range(4)) for b in range(256)], "<u4"
)


def unpack_screens(packed: np.ndarray) -> np.ndarray:
    """The screens ``pack_screens`` packed, as they were."""
    k, rows, cols = packed.shape
    return _UNPACK[packed].view(np.uint8).reshape(k, rows, cols * 4)


def _with_screens(out: Answer) -> list[Any]:
    """An actor's answer with each env's screen back in its observation."""
    packed, results, _ = out
    screens = iter(unpack_screens(packed))
    for r in results:
        if r is not None:
            r[0]["screen"] = next(screens)
    return results


def connect(address: str | None) -> None:
    """Joins the Ray cluster at ``address``, or starts a local one (once per process)."""
    if ray.is_initialized():
        return
    where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
    advice = "start it with `ray start --head` or check agent.ray_address (--ray-address)"
    # Ray itself retries an address that does not answer for minutes before it gives up.
    why = unreachable(address) if address else None
    if why is not None:
        raise UserError(f"could not reach {where} ({why}); {advice}")
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            # A small object store: a step's observations are a few hundred kilobytes.
            ray.init(
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                object_store_memory=256 * 1024 * 1024,
            )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as error:
        raise UserError(f"could not join {where} ({_first_line(error)}); {advice}") from error


def unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at ``address`` (host:port, or ray://host:port), or None when
    something does or the address is Ray's own ``auto``/``local``."""
    if address in ("auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return "not host:port"
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except OSError as error:
        return _first_line(error)
    return None


class RayVectorEnv:
    """``num_envs`` envs over ceil(num_envs / envs_per_worker) Ray actors."""

    def __init__(
        self,
        env: EnvSettings,
        rewards: RewardSettings,
        num_envs: int,
        envs_per_worker: int = 4,
        address: str | None = None,
        autoreset: bool = False,
        compiled: bool = True,
    ) -> None:
        """``autoreset``: an env whose episode ended is reset on the next step, its action
        ignored (gymnasium's next-step mode); otherwise resets are the caller's. ``compiled``:
        calls go through a Ray Compiled Graph (else, or where none can be compiled, as plain
        actor calls; ``calls`` says which, ``plain_because`` why)."""
        connect(address)
        if env.rom and Path(env.rom).resolve() == ROM_PATH.resolve():
            # The fixture lies inside the package, wherever each node installed it.
            env = env.model_copy(update={"rom": ""})
        self.num_envs = num_envs
        self.settings, self.rewards = env, rewards
        workers = math.ceil(num_envs / envs_per_worker)
        self.slices = [
            slice(w * envs_per_worker, min((w + 1) * envs_per_worker, num_envs))
            for w in range(workers)
        ]
        # SPREAD: on a cluster, the actors go to different nodes where they can.
        self._actor_class = ray.remote(EnvWorker).options(scheduling_strategy="SPREAD")
        self.actors = self._start(self.slices)
        self.restarts = 0
        """Actors replaced after dying."""
        self.calls = "compiled" if compiled else "plain"
        self.plain_because = "" if compiled else "asked for"
        self.stepping_s: list[float] = []
        """Seconds each actor spent inside its last call (the rest was the call's own cost)."""
        self._graph: Any = None
        self._number = 0
        self._pending: tuple[int, list[Call], Any] | None = None
        self._sent_at = 0.0
        self._recent_steps: deque[float] = deque(maxlen=15)
        """Seconds the slowest actor spent on each of the last steps: what to sleep through."""
        self._autoreset = autoreset
        self._ended = np.zeros(num_envs, dtype=bool)
        """With autoreset: the envs whose episodes ended on the last step."""
        self._lost = np.zeros(num_envs, dtype=bool)
        """Envs whose episode died with their actor, reported by the next step."""
        self._screens: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        self._states = np.full(num_envs, None, dtype=object)
        self._compile()

    def _start(self, slices: list[slice]) -> list[Any]:
        """An actor for each slice of the envs, all started at once and each checked (an env
        that cannot be made, such as a missing start state, is the user's error, said once)."""
        actors = [self._actor_class.remote() for _ in slices]
        opened = [
            actor.open.remote(self.settings, self.rewards, s.stop - s.start)
            for actor, s in zip(actors, slices, strict=True)
        ]
        try:
            ray.get(opened)
        except RayTaskError as error:
            for actor in actors:
                ray.kill(actor)
            cause = error.cause
            if isinstance(cause, UserError):
                raise UserError(str(cause)) from error
            raise UserError(f"a Ray env worker could not start: {_first_line(cause)}") from error
        except LOST as error:
            raise UserError(f"a Ray env worker could not start: {_first_line(error)}") from error
        return actors

    def _count(self, w: int) -> int:
        return self.slices[w].stop - self.slices[w].start

    # --- calls: one to every actor, all sent at once ----------------------------------------

    def _compile(self) -> None:
        """The compiled graph over the current actors: input w is actor w's call, the output
        their answers in order."""
        if self.calls != "compiled":
            return
        from ray.dag import InputNode, MultiOutputNode

        # A graph whose actor died is shut down by Ray, which logs it with tracebacks; the
        # caller says it in one line ("env worker lost and restarted").
        logging.getLogger("ray.dag.compiled_dag_node").setLevel(logging.CRITICAL)
        try:
            with InputNode() as calls:
                dag = MultiOutputNode(
                    [actor.serve.bind(calls[w]) for w, actor in enumerate(self.actors)]
                )
            self._graph = dag.experimental_compile(_submit_timeout=CALL_TIMEOUT_S)
        except Exception as error:  # a Ray or a cluster that cannot compile: plain calls
            self._graph = None
            self.calls, self.plain_because = "plain", _first_line(error)

    def _teardown(self) -> None:
        graph, self._graph = self._graph, None
        if graph is not None:
            with contextlib.suppress(Exception):  # a graph shut down by a death is gone already
                graph.teardown()

    def _send(self, calls: list[Call]) -> None:
        """Sends actor w ``calls[w]`` (method, arguments), to all at once; ``_receive``
        waits for the answers."""
        assert self._pending is None, "a call is already on its way"
        self._number += 1
        numbered = [(self._number, method, args) for method, args in calls]
        if self._graph is not None:
            try:
                sent: Any = self._graph.execute(*numbered)
            except GRAPH_FAILED:  # an actor's death already shut the graph down
                sent = None
        else:
            sent = [
                actor.serve.options(num_returns=returns(self._count(w), extra=1)).remote(call)
                for w, (actor, call) in enumerate(zip(self.actors, numbered, strict=True))
            ]
        self._pending = (self._number, calls, sent)
        self._sent_at = time.perf_counter()

    def _receive(self) -> list[Answer | None]:
        """Each actor's answer to the calls sent; None for an actor that died, now replaced by
        a fresh one whose envs were reset (unseeded)."""
        assert self._pending is not None, "nothing was sent"
        number, calls, sent = self._pending
        self._pending = None
        answers: list[Answer | None]
        if self._graph is not None:
            if self._recent_steps and calls[0][0] == "step":
                nap = NAP_SHARE * statistics.median(self._recent_steps)
                nap -= time.perf_counter() - self._sent_at  # the caller's own work since
                if nap > 0:
                    time.sleep(nap)
            try:
                if sent is None:
                    raise RayChannelError("the call was not sent")
                answers = list(ray.get(sent, timeout=CALL_TIMEOUT_S))
            except GRAPH_FAILED:
                answers = self._recover(number, calls)
        else:
            answers = [self._plain_answer(w, ref) for w, ref in enumerate(sent)]
        self.stepping_s = [a[2] for a in answers if a is not None]
        if calls[0][0] == "step" and self.stepping_s:
            self._recent_steps.append(max(self.stepping_s))
        return answers

    def _plain_answer(self, w: int, ref: Any) -> Answer | None:
        try:
            answer = ray.get(ref)
        except LOST:
            self._replace(w)
            return None
        # An answer of many envs comes back as three objects (see INLINE_ENVS).
        return (answer[0], answer[1], answer[2]) if isinstance(answer, list) else answer

    def _recover(self, number: int, calls: list[Call]) -> list[Answer | None]:
        """After a failed graph call: the answer of each actor that lives (the call made again
        where it had not done its part), None for each dead one, replaced; then a new graph."""
        self._teardown()
        answers: list[Answer | None] = []
        for w, actor in enumerate(self.actors):
            try:
                answer = ray.get(actor.answer_of.remote(number), timeout=60)
                if answer is None:
                    answer = ray.get(actor.serve.remote((number, *calls[w])))
            except (*LOST, ray.exceptions.GetTimeoutError):
                self._replace(w)
                answer = None
            answers.append(answer)
        self._compile()
        return answers

    def _replace(self, w: int) -> None:
        """A fresh actor for worker ``w``, its envs reset (unseeded) so that they can step until
        the caller resets them to the seeds of their next episodes. Outside any graph: the
        caller tears it down before and compiles it again after."""
        ray.kill(self.actors[w])  # it may linger half-dead; it must not come back
        self.actors[w] = actor = self._start([self.slices[w]])[0]
        self.restarts += 1
        count = self._count(w)
        ray.get(actor.serve.remote((0, "reset", ([None] * count, [True] * count))))

    # --- gymnasium's vector env API ---------------------------------------------------------

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = self.num_envs
        if seed is None or isinstance(seed, int):
            seeds: list[int | None] = [None if seed is None else seed + i for i in range(n)]
        else:
            seeds = list(seed)
        mask = np.ones(n, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        # Every actor gets a call (a graph's call goes to all); one with no env to reset does
        # nothing.
        calls: list[Call] = [("reset", (seeds[s], mask[s].tolist())) for s in self.slices]
        self._send(calls)
        answers = self._receive()
        results: list[Any] = [None] * n
        for w, answer in enumerate(answers):
            s = self.slices[w]
            if answer is None:
                # The envs asked for are reset on the fresh actor (a plain call: the graph,
                # compiled anew around it, waits for its next input meanwhile); the others of
                # this actor lost their episodes, which the next step reports.
                answer = ray.get(self.actors[w].serve.remote((0, *calls[w])))
                self._lost[s] |= ~mask[s]
            results[s] = _with_screens(answer)
        obs = [r[0] if r is not None else None for r in results]
        infos = [r[1] if r is not None else None for r in results]
        self._lost &= ~mask
        self._ended &= ~mask
        return self._observations(obs), self._info(infos)

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions).tolist()
        again = self._ended.tolist()
        self._send([("step", (actions[s], again[s])) for s in self.slices])

    def step_wait(
        self,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        answers = self._receive()
        n = self.num_envs
        results: list[Any] = [None] * n
        for w, answer in enumerate(answers):
            s = self.slices[w]
            if answer is None:
                self._lost[s] = True
            else:
                results[s] = _with_screens(answer)
        lost, self._lost = self._lost, np.zeros(n, dtype=bool)
        reward = np.zeros(n, dtype=np.float64)
        terminated = np.zeros(n, dtype=bool)
        truncated = lost.copy()
        obs: list[Any] = [None] * n
        infos: list[Any] = [None] * n
        for i, r in enumerate(results):
            if r is not None and not lost[i]:
                obs[i], reward[i], terminated[i], truncated[i], infos[i] = r
        observations = self._observations(obs)
        info = self._info(infos, lost)
        if self._autoreset:
            self._ended = terminated | truncated
        return observations, reward, terminated, truncated, info

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.step_async(actions)
        return self.step_wait()

    def close(self) -> None:
        self._teardown()
        for actor in self.actors:
            with contextlib.suppress(*LOST):  # a dead actor has nothing to close
                ray.get(actor.close.remote())
            ray.kill(actor)
        self.actors = []

    # --- assembling the batch ---------------------------------------------------------------

    def _observations(self, obs: list[dict[str, np.ndarray] | None]) -> dict[str, np.ndarray]:
        """The envs' observations stacked; an env without one keeps its last."""
        for i, o in enumerate(obs):
            if o is None:
                continue
            if self._screens is None or self._vectors is None:
                self._screens = np.zeros((self.num_envs, *o["screen"].shape), np.uint8)
                self._vectors = np.zeros((self.num_envs, *o["state"].shape), np.float32)
            self._screens[i] = o["screen"]
            self._vectors[i] = o["state"]
        assert self._screens is not None and self._vectors is not None
        return {"screen": self._screens.copy(), "state": self._vectors.copy()}

    def _info(
        self, infos: list[dict[str, Any] | None], lost: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The envs' infos as gymnasium's vector env stacks them: a value array per key and a
        ``_key`` mask of the envs that gave one. A lost env gives its last GameState."""
        n = self.num_envs
        have = np.array([i is not None for i in infos], dtype=bool)
        states = np.full(n, None, dtype=object)
        terms = {t: np.zeros(n, dtype=np.float64) for t in TERMS}
        # What an env reports only on some steps: a map entered, ground newly seen.
        sometimes = {k: np.full(n, None, dtype=object) for k in ("map", "ground")}
        given = {k: np.zeros(n, dtype=bool) for k in sometimes}
        for i, info in enumerate(infos):
            if info is None:
                continue
            states[i] = self._states[i] = info["state"]
            for term, value in info["rewards"].items():
                terms[term][i] = value
            for key, values in sometimes.items():
                if key in info:
                    values[i], given[key][i] = info[key], True
        rewards: dict[str, np.ndarray] = {}
        for term, values in terms.items():
            rewards[term], rewards[f"_{term}"] = values, have.copy()
        out: dict[str, Any] = {
            "state": states,
            "_state": have,
            "rewards": rewards,
            "_rewards": have,
        }
        for key, values in sometimes.items():
            if given[key].any():
                out[key], out[f"_{key}"] = values, given[key]
        if lost is not None and lost.any():
            states[lost] = self._states[lost]
            out["_state"] = have | lost
            out["restarted"], out["_restarted"] = lost.copy(), lost.copy()
        return out


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

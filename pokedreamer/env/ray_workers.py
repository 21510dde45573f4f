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

This module is the only one that imports Ray, and only ``make_envs`` with ``workers="ray"``
imports it.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from pokedreamer.config import EnvSettings, RewardSettings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rewards import TERMS
from pokedreamer.errors import UserError

try:
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
except ImportError as error:  # pragma: no cover - the message is what a user without Ray sees
    raise UserError("--workers ray needs Ray: pip install -e '.[ray]' (or make ray)") from error

LOST = (RayActorError, ActorUnavailableError)
"""What a call to an actor that died raises."""

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

    def timed_step(self, actions: list[int]) -> tuple[np.ndarray, list[Any], float]:
        """``step``, and the seconds it took in here: the rest of a call's time is the cost of
        the call itself (the bench's figure)."""
        start = time.perf_counter()
        out = self.step(actions)
        return *out, time.perf_counter() - start

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


def _with_screens(out: tuple[np.ndarray, list[Any]]) -> list[Any]:
    """An actor's answer with each env's screen back in its observation."""
    packed, results = out
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
    ) -> None:
        """``autoreset``: an env whose episode ended is reset on the next step, its action
        ignored (gymnasium's next-step mode); otherwise resets are the caller's."""
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
        self._pending: list[Any] | None = None
        self._autoreset = autoreset
        self._ended = np.zeros(num_envs, dtype=bool)
        """With autoreset: the envs whose episodes ended on the last step."""
        self._lost = np.zeros(num_envs, dtype=bool)
        """Envs whose episode died with their actor, reported by the next step."""
        self._screens: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        self._states = np.full(num_envs, None, dtype=object)

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

    def _call(self, w: int, method: str, *args: Any) -> Any:
        """Calls ``method`` on worker ``w``'s actor: its answer's object, or objects."""
        count = self.slices[w].stop - self.slices[w].start
        return getattr(self.actors[w], method).options(num_returns=returns(count)).remote(*args)

    def _replace(self, w: int) -> None:
        """A fresh actor for worker ``w``, its envs reset (unseeded) so that they can step until
        the caller resets them to the seeds of their next episodes."""
        ray.kill(self.actors[w])  # it may linger half-dead; it must not come back
        self.actors[w] = actor = self._start([self.slices[w]])[0]
        self.restarts += 1
        count = self.slices[w].stop - self.slices[w].start
        ray.get(
            actor.reset.options(num_returns=returns(count)).remote([None] * count, [True] * count)
        )

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
        calls = {
            w: self._call(w, "reset", seeds[s], mask[s].tolist())
            for w, s in enumerate(self.slices)
            if mask[s].any()
        }
        results: list[Any] = [None] * n
        for w, ref in calls.items():
            s = self.slices[w]
            try:
                results[s] = _with_screens(ray.get(ref))
            except LOST:
                # The envs asked for are reset on a fresh actor; the others of this actor lost
                # their episodes, which the next step reports.
                self._replace(w)
                again = self._call(w, "reset", seeds[s], mask[s].tolist())
                results[s] = _with_screens(ray.get(again))
                self._lost[s] |= ~mask[s]
        obs = [r[0] if r is not None else None for r in results]
        infos = [r[1] if r is not None else None for r in results]
        self._lost &= ~mask
        self._ended &= ~mask
        return self._observations(obs), self._info(infos)

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions).tolist()
        again = self._ended.tolist()
        self._pending = [
            self._call(w, "step", actions[s], again[s]) for w, s in enumerate(self.slices)
        ]

    def step_wait(
        self,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        assert self._pending is not None, "step_wait without step_async"
        pending, self._pending = self._pending, None
        n = self.num_envs
        results: list[Any] = [None] * n
        answers = _get_all(pending)  # one wait for all actors, unless one of them died
        for w, ref in enumerate(pending):
            s = self.slices[w]
            try:
                results[s] = _with_screens(answers[w] if answers else ray.get(ref))
            except LOST:
                self._replace(w)
                self._lost[s] = True
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
        maps = np.full(n, None, dtype=object)
        has_map = np.zeros(n, dtype=bool)
        for i, info in enumerate(infos):
            if info is None:
                continue
            states[i] = self._states[i] = info["state"]
            for term, value in info["rewards"].items():
                terms[term][i] = value
            if "map" in info:
                maps[i], has_map[i] = info["map"], True
        rewards: dict[str, np.ndarray] = {}
        for term, values in terms.items():
            rewards[term], rewards[f"_{term}"] = values, have.copy()
        out: dict[str, Any] = {
            "state": states,
            "_state": have,
            "rewards": rewards,
            "_rewards": have,
        }
        if has_map.any():
            out["map"], out["_map"] = maps, has_map
        if lost is not None and lost.any():
            states[lost] = self._states[lost]
            out["_state"] = have | lost
            out["restarted"], out["_restarted"] = lost.copy(), lost.copy()
        return out


def _get_all(pending: list[Any]) -> list[Any] | None:
    """Every actor's answer (an object, or a list of them) in one ``ray.get``; None when an
    actor died, for the caller to ask each in turn."""
    refs = [r if isinstance(r, list) else [r] for r in pending]
    try:
        values = ray.get([ref for group in refs for ref in group])
    except LOST:
        return None
    answers, at = [], 0
    for r, group in zip(pending, refs, strict=True):
        answers.append(values[at : at + len(group)] if isinstance(r, list) else values[at])
        at += len(group)
    return answers


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

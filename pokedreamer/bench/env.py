"""``pokedreamer bench env``: our env's step rate against raw PyBoy, and scaling over processes.
Here too is the one random-button game that every bench comparing itself with play times
(:func:`play`, :func:`env_steps_per_s`).

Raw PyBoy and the env play the same button sequence from the same start state with the same
frames per step (held, released, the last frame rendered), in alternating rounds of one run; the
ratio is the median over pairs of neighbouring rounds, timed in this thread's CPU time so that
time the machine gives to others does not count, which is fair on a noisy machine. Then
1..N processes each step their own env for the same wall time, and their total rate is compared
with one process's.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pokedreamer.bench.timing import Clock, alternate, machine_description, repeat_for, timed
from pokedreamer.config import EnvSettings, RewardSettings
from pokedreamer.env.gym_env import SHADE_PALETTE, PokemonRedEnv
from pokedreamer.env.start import save_state_bytes
from pokedreamer.env.state import GameState


def headless_env(env_settings: EnvSettings, rewards: RewardSettings | None = None) -> PokemonRedEnv:
    """The env a bench plays: no window, and no step limit, so a timed round of any length is
    one episode."""
    settings = env_settings.model_copy(update={"headless": True, "max_steps": 0})
    return PokemonRedEnv(settings, rewards or RewardSettings())


def random_buttons(
    env: PokemonRedEnv, steps: int, rng: np.random.Generator | None = None
) -> list[int]:
    """``steps`` actions drawn uniformly from the env's buttons (from seed 0 unless ``rng``)."""
    if rng is None:
        rng = np.random.default_rng(0)
    return rng.integers(0, env.action_space.n, steps).tolist()


def play(
    env: PokemonRedEnv,
    actions: list[int],
    clock: Clock = time.perf_counter,
    after_step: Callable[[int, GameState], object] | None = None,
) -> float:
    """Seconds ``clock`` counts while ``env``, reset with seed 0, plays ``actions``.

    ``after_step(step, state)`` runs after every step (counting from 1), inside the timing: the
    cost of whatever watches the env is part of the figure.
    """
    env.reset(seed=0)
    step = env.step
    if after_step is None:

        def work() -> None:
            for action in actions:
                step(action)

    else:

        def work() -> None:
            for n, action in enumerate(actions, 1):
                after_step(n, step(action)[4]["state"])

    return timed(work, clock)


def env_steps_per_s(env_settings: EnvSettings, steps: int = 1000) -> float:
    """One env process's steps/s playing random buttons (the rate the other benches compare
    with)."""
    env = headless_env(env_settings)
    try:
        return steps / play(env, random_buttons(env, steps))
    finally:
        env.close()


@dataclass(frozen=True)
class EnvBenchResult:
    steps: int
    rounds: int
    raw_steps_per_s: float
    env_steps_per_s: float
    ratio: float
    overhead_us: float  # the env's own work per step, timed alone
    processes: dict[int, float]  # processes -> total env steps/s
    scaling: dict[int, float]  # processes -> total rate / (processes x one process's rate)
    machine: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "steps_per_round": self.steps,
            "rounds": self.rounds,
            "raw_pyboy_steps_per_s": round(self.raw_steps_per_s, 1),
            "env_steps_per_s": round(self.env_steps_per_s, 1),
            "env_over_raw": round(self.ratio, 4),
            "env_overhead_us_per_step": round(self.overhead_us, 2),
            "env_overhead_fraction_of_raw_step": round(
                self.overhead_us * 1e-6 * self.raw_steps_per_s, 4
            ),
            "processes_steps_per_s": {str(k): round(v, 1) for k, v in self.processes.items()},
            "processes_scaling": {str(k): round(v, 3) for k, v in self.scaling.items()},
        }


def _raw_round(pyboy: Any, start: bytes, buttons: list[str], hold: int, rest: int) -> float:
    pyboy.load_state(io.BytesIO(start))

    def work() -> None:
        for button in buttons:
            pyboy.button_press(button)
            pyboy.tick(hold, False)
            pyboy.button_release(button)
            pyboy.tick(rest, True)

    return timed(work, time.thread_time)


def env_vs_raw(env_settings: EnvSettings, steps: int, rounds: int) -> tuple[float, float, float]:
    """(raw steps/s, env steps/s, env/raw) over ``rounds`` alternating rounds of ``steps`` steps,
    both playing the same button sequence from the same state."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysdl2-dll announces itself on import
        from pyboy import PyBoy

    env = headless_env(env_settings)
    actions = random_buttons(env, steps)
    buttons = [env.buttons[a] or "a" for a in actions]
    env.reset(seed=0)
    # The very state each env round starts from (after reset's seeding), so both play one game.
    start = save_state_bytes(env._pyboy)
    raw = PyBoy(
        str(env.rom.path),
        window="null",
        sound_emulated=False,
        log_level="ERROR",
        color_palette=SHADE_PALETTE,
    )
    hold = env.settings.hold_frames
    rest = env.settings.action_repeat - hold
    try:
        times = alternate(
            rounds,
            lambda: _raw_round(raw, start, buttons, hold, rest),
            lambda: play(env, actions, time.thread_time),
        )
    finally:
        raw.stop(save=False)
        env.close()
    raw_rate = steps / statistics.median(times.first)
    return raw_rate, steps / statistics.median(times.second), times.ratio()


def env_overhead_us(env_settings: EnvSettings, steps: int = 2000) -> float:
    """Microseconds a step spends outside the emulator (RAM snapshot, GameState, rewards,
    observation), timed alone — steady where end-to-end ratios move with machine noise."""
    env = headless_env(env_settings)
    env.reset(seed=0)

    def five_times() -> None:
        for _ in range(5):
            env._after_frames()

    times = []
    try:
        for action in random_buttons(env, steps):
            env.step(action)  # move the game on, so the state read varies as in play
            times.append(timed(five_times) / 5)
    finally:
        env.close()
    return statistics.median(times) * 1e6


def _worker(args: tuple[EnvSettings, float]) -> int:
    env_settings, seconds = args
    env = headless_env(env_settings)
    # Every worker plays the same game, so 1 and N processes do the same work per step.
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def chunk() -> None:
        for action in random_buttons(env, 64, rng):
            env.step(action)

    runs = repeat_for(seconds, chunk)
    env.close()
    return 64 * runs


def process_scaling(
    env_settings: EnvSettings, max_processes: int, seconds: float
) -> dict[int, float]:
    """Total env steps/s with 1..max_processes processes, each stepping for ``seconds``."""
    rates: dict[int, float] = {}
    context = multiprocessing.get_context("spawn")
    with context.Pool(max_processes) as pool:
        pool.map(_worker, [(env_settings, 0.2)] * max_processes)  # start-up and imports, untimed
        for n in range(1, max_processes + 1):
            counts = pool.map(_worker, [(env_settings, seconds)] * n)
            rates[n] = sum(counts) / seconds
    return rates


def bench_env(
    env_settings: EnvSettings,
    steps: int = 400,
    rounds: int = 21,
    max_processes: int | None = None,
    seconds: float = 3.0,
) -> EnvBenchResult:
    raw, env, ratio = env_vs_raw(env_settings, steps, rounds)
    overhead = env_overhead_us(env_settings)
    processes = process_scaling(env_settings, max_processes or os.cpu_count() or 1, seconds)
    one = processes[1]
    return EnvBenchResult(
        steps=steps,
        rounds=rounds,
        raw_steps_per_s=raw,
        env_steps_per_s=env,
        ratio=ratio,
        overhead_us=overhead,
        processes=processes,
        scaling={n: rate / (n * one) for n, rate in processes.items()},
        machine=machine_description(),
    )

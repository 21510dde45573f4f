"""``pokedreamer bench env``: our env's step rate against raw PyBoy, and scaling over processes.

Raw PyBoy and the env play the same button sequence from the same start state with the same
frames per step (held, released, the last frame rendered), in alternating rounds of one run; the
ratio is the median over pairs of neighbouring rounds, timed in this thread's CPU time so that
time the machine gives to others does not count, which is fair on a noisy machine. Then
1..N processes each step their own env for the same wall time, and their total rate is compared
with one process's.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pokedreamer.config import EnvSettings, RewardSettings


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


def machine_description() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}"
    )


def _raw_round(pyboy: Any, start: bytes, buttons: list[str], hold: int, rest: int) -> float:
    import io

    pyboy.load_state(io.BytesIO(start))
    t0 = time.thread_time()
    for button in buttons:
        pyboy.button_press(button)
        pyboy.tick(hold, False)
        pyboy.button_release(button)
        pyboy.tick(rest, True)
    return time.thread_time() - t0


def _env_round(env: Any, actions: list[int]) -> float:
    env.reset(seed=0)
    step = env.step
    t0 = time.thread_time()
    for action in actions:
        step(action)
    return time.thread_time() - t0


def env_vs_raw(env_settings: EnvSettings, steps: int, rounds: int) -> tuple[float, float, float]:
    """(raw steps/s, env steps/s, env/raw) over ``rounds`` alternating rounds of ``steps`` steps,
    both playing the same button sequence from the same state."""
    from pokedreamer.env.gym_env import SHADE_PALETTE, PokemonRedEnv
    from pokedreamer.env.start import save_state_bytes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyboy import PyBoy

    settings = env_settings.model_copy(update={"headless": True, "max_steps": 0})
    env = PokemonRedEnv(settings, RewardSettings())
    rng = np.random.default_rng(0)
    actions = [int(a) for a in rng.integers(0, env.action_space.n, steps)]
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
    hold = settings.hold_frames
    rest = settings.action_repeat - hold
    raw_times, env_times = [], []
    try:
        for _ in range(rounds):
            raw_times.append(_raw_round(raw, start, buttons, hold, rest))
            env_times.append(_env_round(env, actions))
    finally:
        raw.stop(save=False)
        env.close()
    # Each env round runs right after its raw round, so a pair shares whatever else the machine
    # was doing; the median of the pairs' ratios shrugs off the rounds a burst of noise hit.
    ratio = float(np.median([r / e for r, e in zip(raw_times, env_times, strict=True)]))
    return steps / float(np.median(raw_times)), steps / float(np.median(env_times)), ratio


def env_overhead_us(env_settings: EnvSettings, steps: int = 2000) -> float:
    """Microseconds a step spends outside the emulator (RAM snapshot, GameState, rewards,
    observation), timed alone — steady where end-to-end ratios move with machine noise."""
    from pokedreamer.env.gym_env import PokemonRedEnv

    settings = env_settings.model_copy(update={"headless": True, "max_steps": 0})
    env = PokemonRedEnv(settings, RewardSettings())
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    times = []
    try:
        for action in rng.integers(0, env.action_space.n, steps):
            env.step(int(action))  # move the game on, so the state read varies as in play
            t0 = time.perf_counter()
            for _ in range(5):
                env._after_frames()
            times.append((time.perf_counter() - t0) / 5)
    finally:
        env.close()
    return float(np.median(times)) * 1e6


def _worker(args: tuple[EnvSettings, float]) -> int:
    from pokedreamer.env.gym_env import PokemonRedEnv

    settings, seconds = args
    env = PokemonRedEnv(settings, RewardSettings())
    # Every worker plays the same game, so 1 and N processes do the same work per step.
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for action in rng.integers(0, env.action_space.n, 64):
            env.step(int(action))
        n += 64
    env.close()
    return n


def process_scaling(
    env_settings: EnvSettings, max_processes: int, seconds: float
) -> dict[int, float]:
    """Total env steps/s with 1..max_processes processes, each stepping for ``seconds``."""
    settings = env_settings.model_copy(update={"headless": True, "max_steps": 0})
    rates: dict[int, float] = {}
    context = multiprocessing.get_context("spawn")
    with context.Pool(max_processes) as pool:
        pool.map(_worker, [(settings, 0.2)] * max_processes)  # start-up and imports, untimed
        for n in range(1, max_processes + 1):
            counts = pool.map(_worker, [(settings, seconds)] * n)
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

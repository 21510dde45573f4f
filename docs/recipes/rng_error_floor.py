"""The part of the first imagined step's error that no world model can remove: what the game's
random number generator decides during the step.

    PYTHONPATH=. .venv/bin/python docs/recipes/rng_error_floor.py [--episodes 8] [--steps 2000]
        [--draws 7] [--seed 5000] [--jobs 2]

Plays random buttons from the start, as ``collect`` does for the held-out runs that ``eval
world-model`` scores (docs/benchmarks.md), and before each step saves the emulator, so that the
same button can be played again from the same state ``--draws`` times with the generator's state
drawn anew (the cartridge's ``_rng_state``, which the env seeds each episode with). The real step
and those draws are samples of what the step can show to a model that cannot tell the generator's
state from what it sees. For each pixel, the best such a model can do while drawing one of the
four shades, as a token grid rendered through its vocabulary does, is the shade with the least
mean squared error over those samples. Pooled over every frame, that is a floor under the first
imagined step's error, and ``10 log10(1 / floor)`` a ceiling over its PSNR (shades scaled to
[0, 1], as world_model/evaluate.py scores them). The floor is estimated from a few samples per
step and so is lower than the truth (the best shade is chosen on the samples it is scored on): the
ceiling it gives errs upwards. Each step is also split by what happened in it
(world_model/error_split.py). Fixture cartridge only.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing

import numpy as np
import torch

from pokedreamer.config import EnvSettings
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.start import load_state_bytes
from pokedreamer.world_model.error_split import EVENTS, step_events

SHADES = np.arange(4, dtype=np.float64)


def replay_step(env: PokemonRedEnv, state: bytes, action: int, rng_word: int) -> np.ndarray:
    """The screen after ``action`` from ``state`` with the generator set to ``rng_word``: the
    frames of PokemonRedEnv.step, without its bookkeeping."""
    pyboy, address = env._pyboy, env._rng_address
    assert address is not None, "the fixture cartridge has the generator's address"
    load_state_bytes(pyboy, state, "the step's state")
    env._memory[address], env._memory[address + 1] = rng_word & 0xFF, rng_word >> 8
    button = env.buttons[action]
    assert button is not None
    pyboy.button_press(button)
    pyboy.tick(env._hold, False)
    pyboy.button_release(button)
    pyboy.tick(env._rest, True)
    return env.screen()


def floor_error(samples: np.ndarray) -> float:
    """Summed squared error (shades scaled to [0, 1]) of the best one-shade-a-pixel guess over
    ``samples`` (K, 144, 160), the mean over them."""
    x = samples.astype(np.float64)[None]  # (1, K, h, w)
    per_shade = ((SHADES[:, None, None, None] - x) / 3.0) ** 2  # (4, K, h, w)
    return float(per_shade.mean(axis=1).min(axis=0).sum())


def play_episode(seed: int, steps: int, draws: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode of random buttons from the start (its game and buttons seeded by ``seed``):
    per step, the floor's squared error and the GameState vectors before and after it."""
    env = PokemonRedEnv(EnvSettings())
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    errors, befores, afters = [], [], []
    for _ in range(steps):
        action = int(rng.integers(0, env.action_space.n))
        state = env.snapshot()
        words = rng.integers(1, 1 << 16, size=draws)
        drawn = [replay_step(env, state, action, int(w)) for w in words]
        load_state_bytes(env._pyboy, state, "the step's state")
        befores.append(obs["state"])
        obs, *_ = env.step(action)
        errors.append(floor_error(np.stack([obs["screen"], *drawn])))
        afters.append(obs["state"])
    env.close()
    return np.array(errors), np.stack(befores), np.stack(afters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2000, help="per episode, from the start")
    parser.add_argument("--draws", type=int, default=7, help="generator states per step")
    parser.add_argument("--seed", type=int, default=5000, help="the first episode's")
    parser.add_argument("--jobs", type=int, default=1, help="episodes played at once")
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.episodes)
    with multiprocessing.Pool(args.jobs) as pool:
        played = pool.starmap(play_episode, [(s, args.steps, args.draws) for s in seeds])
    error = np.concatenate([e for e, _, _ in played])
    before = torch.tensor(np.concatenate([b for _, b, _ in played]))
    kind = step_events(before, torch.tensor(np.concatenate([a for _, _, a in played]))).numpy()
    pixels, total = 144 * 160, float(error.sum())
    ceiling = 10 * math.log10(len(error) * pixels / total) if total else math.inf
    print(
        f"{len(error):,} steps, {args.draws} generator draws each beside the real one: the "
        f"floor under the first imagined step's error caps its PSNR at {ceiling:.2f} dB\n"
    )
    print("| what happened | steps | share of the steps | share of the floor |")
    print("|---|---|---|---|")
    for index, (label, _) in enumerate(EVENTS):
        these = kind == index
        share = float(error[these].sum()) / total if total else 0.0
        print(f"| {label} | {int(these.sum()):,} | {these.mean():.2%} | {share:.1%} |")


if __name__ == "__main__":
    main()

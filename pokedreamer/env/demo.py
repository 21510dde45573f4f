"""The random-button demo behind ``pokedreamer run`` until the agent exists (issue #6).

It plays the env with random buttons and prints what the GameState reads every few steps — a live
check that the cartridge (or a user's ROM), our RAM map and the env agree.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rom import load_rom

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.env.state import GameState


def format_state(step: int, state: GameState, reward: float) -> str:
    party = " ".join(f"{m.name} L{m.level} {m.hp}/{m.max_hp}HP" for m in state.party) or "none"
    line = (
        f"step {step:>6}  {state.map_name} ({state.x},{state.y}) {state.facing:<5}  "
        f"battle {state.battle:<7}  party {party}  badges {state.badge_count}  "
        f"¥{state.money}  events {state.event_count}  return {reward:+.2f}"
    )
    if state.text:
        line += "  text: " + " / ".join(state.text)
    return line


def random_play(settings: Settings) -> None:
    # The ROM is checked before the emulator is imported, so a bad file is refused at once.
    rom = load_rom(settings.env.rom or str(ROM_PATH))
    if rom.warning:
        print(f"warning: {rom.warning}", file=sys.stderr)
    from pokedreamer.env.gym_env import PokemonRedEnv

    env = PokemonRedEnv(settings.env, settings.rewards)
    rng = np.random.default_rng(settings.env.seed)
    steps, every = settings.run.steps, settings.run.print_every
    print(f"random buttons on {rom.path} — {'until Ctrl-C' if not steps else f'{steps} steps'}")
    _, info = env.reset(seed=settings.env.seed)
    start, step, total = time.perf_counter(), 0, 0.0
    try:
        while not steps or step < steps:
            _, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            total += reward
            step += 1
            if every and (step % every == 0 or step == steps):
                print(format_state(step, info["state"], total), flush=True)
            if terminated or truncated:
                _, info = env.reset()
    finally:
        elapsed = time.perf_counter() - start
        env.close()
        print(f"{step} steps in {elapsed:.1f} s ({step / max(elapsed, 1e-9):.0f} steps/s)")

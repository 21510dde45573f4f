"""Where the cartridge's battle-menu cursor stands when random buttons meet it: a diagnostic for
what a replay of random play teaches a world model about pressing A in a battle.

    PYTHONPATH=. .venv/bin/python docs/recipes/battle_menu_census.py [--steps 60000] [--seed 0]

Plays one env in this process with go-explore's random buttons and returns
(agent/go_explore.py), and counts, in battles, the menus that opened by where the cursor stood
(FIGHT or RUN) and each press of A in the menu by where the cursor stood and the first words
shown after it. The cursor is read off the screen: the arrow left of FIGHT (cell (9, 14)) or of
RUN (cell (15, 16)), as the cartridge's battle.c draws them. Fixture cartridge only.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from pokedreamer.agent.go_explore import SEGMENT_STEPS, Archive, cell_of
from pokedreamer.config import EnvSettings
from pokedreamer.env.cartridge import SYM_PATH
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.ram import parse_sym

MODE_MENU = 2  # the cartridge's game.h: MODE_WALK, MODE_TEXT, MODE_MENU, ...
A = 0


def cursor(screen: np.ndarray) -> str:
    """FIGHT or RUN: which of the two arrow cells is darker (shade 3 is darkest)."""
    fight, run = screen[112:120, 72:80].max(), screen[128:136, 120:128].max()
    return "FIGHT" if fight > run else "RUN" if run > fight else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = PokemonRedEnv(EnvSettings())
    mode = parse_sym(SYM_PATH.read_text())["_game_mode"]
    rng = np.random.default_rng(args.seed)
    obs, info = env.reset(seed=args.seed)
    archive = Archive()
    archive.add(cell_of(info["state"]), env.snapshot())
    opened: collections.Counter[tuple[str, str]] = collections.Counter()
    pressed: collections.Counter[tuple[str, str, str]] = collections.Counter()
    returns = 0
    for step in range(1, args.steps + 1):
        before, in_menu = info["state"], env._memory[mode] == MODE_MENU
        arrow = cursor(obs["screen"]) if in_menu and before.battle != "none" else None
        action = int(rng.integers(0, env.action_space.n))
        obs, _, _, _, info = env.step(action)
        state = info["state"]
        if state.battle != "none" and env._memory[mode] == MODE_MENU and not in_menu:
            opened[(state.battle, cursor(obs["screen"]))] += 1
        if arrow is not None and action == A:
            pressed[(before.battle, arrow, " ".join(state.text)[:28])] += 1
        if not archive.see(cell_of(state)):
            archive.add(cell_of(state), env.snapshot())
        if step % SEGMENT_STEPS == 0:
            returns += 1
            obs, info = env.reset(seed=args.seed + returns, options={"state": archive.choose(rng)})
    env.close()
    print(f"{args.steps:,} steps, {returns} returns, {len(archive)} cells")
    print("battle menus opened, by battle and cursor:")
    for (battle, arrow), count in sorted(opened.items()):
        print(f"  {battle:8} {arrow:6} {count:6,}")
    print("A pressed in a battle menu, by battle, cursor and the words after it:")
    for (battle, arrow, words), count in pressed.most_common():
        print(f"  {battle:8} {arrow:6} {count:6,}  {words!r}")


if __name__ == "__main__":
    main()

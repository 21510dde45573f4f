"""``collect --policy go-explore``: random buttons from the places random play has reached least.

Random buttons from the start state rarely get past the first maps in a 3,000-step episode: the
gym, a trainer's battle or MOM healing a hurt party barely enter the replay, and a world model
cannot teach imagination what it has never seen. Go-Explore (Ecoffet et al., 2021) keeps an
archive of *cells*, coarse summaries of game states each with an emulator snapshot of the first
time it was reached, and repeats: return to a cell chosen with weight 1/sqrt(1 + times chosen)
+ 1/sqrt(1 + times seen), then explore from it with random buttons. Nothing is scored and no
route is known: it only spreads the same random buttons over more of the game.

A cell is the map, the 2x2 block of cells the player stands in, the battle kind, the party's
size, its highest level, its HP in quarters, the badges and the number of event flags set (the
game's progress).
Each return starts a new episode in the replay (its first step is the restored screen).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from rich.progress import Progress

from pokedreamer.agent.collect_policy import CollectResult
from pokedreamer.config import Settings
from pokedreamer.env.state import BATTLE_ORDER, GameState
from pokedreamer.env.stops import between_steps
from pokedreamer.env.vector import close_quietly, make_vector_env
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.replay import run_replay

SEGMENT_STEPS = 100
"""Random buttons played after each return, before the next."""

Cell = tuple[int, ...]


def cell_of(state: GameState) -> Cell:
    """The archive's key for ``state``: coarse enough that cells are few, fine enough that the
    game's progress (a starter, a hurt party, a battle, a badge, a flag set) makes a new one."""
    hp = sum(mon.hp for mon in state.party)
    max_hp = sum(mon.max_hp for mon in state.party)
    quarter = min(4, 4 * hp // max_hp) if max_hp else 0
    level = max((mon.level for mon in state.party), default=0)
    return (
        state.map_id, state.x // 2, state.y // 2, BATTLE_ORDER.index(state.battle),
        len(state.party), level, quarter, state.badge_count, state.event_count,
    )  # fmt: skip


@dataclass
class Place:
    """A cell's snapshot (zlib: a PyBoy state is 150 KB, mostly zeros) and its counts."""

    snapshot: bytes
    chosen: int = 0
    seen: int = 1


@dataclass
class Archive:
    """Every cell reached, with the snapshot of the first time."""

    places: dict[Cell, Place] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.places)

    def add(self, cell: Cell, snapshot: bytes) -> None:
        self.places[cell] = Place(zlib.compress(snapshot, 1))

    def see(self, cell: Cell) -> bool:
        """Counts a visit; False when the cell is new (the caller adds it)."""
        place = self.places.get(cell)
        if place is None:
            return False
        place.seen += 1
        return True

    def odds(self) -> np.ndarray:
        """Each cell's chance to be chosen next, in the order cells were reached: more for cells
        chosen and seen less."""
        chosen = np.array([p.chosen for p in self.places.values()], dtype=np.float64)
        seen = np.array([p.seen for p in self.places.values()], dtype=np.float64)
        weight = 1 / np.sqrt(1 + chosen) + 1 / np.sqrt(1 + seen)
        return weight / weight.sum()

    def choose(self, rng: np.random.Generator) -> bytes:
        """The snapshot of a cell drawn by ``odds``, counted as chosen."""
        places = list(self.places.values())
        place = places[int(rng.choice(len(places), p=self.odds()))]
        place.chosen += 1
        return zlib.decompress(place.snapshot)


def collect_go_explore(settings: Settings, run: RunDir, steps: int, envs: int) -> CollectResult:
    """Plays ``steps`` env steps over ``envs`` local envs into ``run``'s replay, each env
    returning to an archived cell every SEGMENT_STEPS steps (the first segment from the start
    state)."""
    replay = run_replay(run.replay, settings.world_model, seed=settings.env.seed)
    venv = make_vector_env(settings.env, settings.rewards, envs, envs > 1, autoreset=False)
    rng = np.random.default_rng(settings.env.seed)
    n_actions = settings.env.num_actions
    archive = Archive()
    start = time.perf_counter()
    segments = 0
    try:
        obs, info = venv.reset(seed=settings.env.seed)
        for i in range(envs):
            replay.add(i, obs["screen"][i], obs["state"][i], 0, 0.0, is_first=True)
        snapshots = venv.call("snapshot")
        for i in range(envs):
            if not archive.see(cell_of(info["state"][i])):
                archive.add(cell_of(info["state"][i]), snapshots[i])
        left = np.full(envs, SEGMENT_STEPS)
        done = envs
        with Progress(transient=True) as progress, between_steps() as stop_asked:
            task = progress.add_task("collecting (go-explore)", total=steps, completed=done)
            while done < steps:
                stop_asked()
                actions = rng.integers(0, n_actions, envs)
                obs, reward, _, truncated, info = venv.step(actions)
                for i in range(envs):
                    replay.add(
                        i, obs["screen"][i], obs["state"][i], int(actions[i]), float(reward[i]),
                        is_first=False,
                    )  # fmt: skip
                cells = [cell_of(info["state"][i]) for i in range(envs)]
                new = [i for i in range(envs) if not archive.see(cells[i])]
                if new:
                    snapshots = venv.call("snapshot")
                    for i in new:
                        if not archive.see(cells[i]):  # two envs may reach one cell at once
                            archive.add(cells[i], snapshots[i])
                done += envs
                left -= 1
                left[truncated] = 0  # an episode shorter than a segment (env.max_steps) ends it
                for i in np.flatnonzero(left <= 0) if done < steps else ():
                    segments += 1
                    mask = np.arange(envs) == i
                    # No seed: the env's own generator, seeded by the first reset, writes the
                    # game's random bytes, so a return uses no training seed of its own and the
                    # evaluation's seeds stay fresh (recipe_plan.check_seeds).
                    obs, _ = venv.reset(options={"reset_mask": mask, "state": archive.choose(rng)})
                    replay.add(int(i), obs["screen"][i], obs["state"][i], 0, 0.0, is_first=True)
                    left[i] = SEGMENT_STEPS
                progress.update(task, completed=done)
    finally:
        replay.flush()
        close_quietly(venv)
    return CollectResult(done, segments, time.perf_counter() - start, len(replay), len(archive))

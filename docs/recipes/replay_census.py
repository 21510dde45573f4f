"""What a run's replay holds: the steps stored on each map, the battles and how they ended, and
the heals outside battle. A diagnostic for data collection (``collect --policy``): a world model
cannot teach imagination what its replay never shows.

    PYTHONPATH=. .venv/bin/python docs/recipes/replay_census.py RUN [RUN ...] [--first N]

Per run (each a run directory, or a name under ./runs): the stored steps, and among them
(``--first N``: only the first N steps of each env's stream, e.g. the collection's before an
imagination stage added its own)

- steps per map, by name;
- steps in wild and in trainer battles, and the battles that began;
- how the wild battles ended, read from the GameState vector on their last step: won (the
  enemy's HP at 0), lost (the party's HP at 0 or the battle marked lost) or left by RUN;
- heals outside battle: a party's HP fraction rising to full from above 0 and below 0.9 on
  consecutive steps with no battle on either (not the starter's arrival, nor a lost battle's
  return home), and the cells where they happened;
- the steps with a badge.

It reads the replay's chunk files (``replay/chunk-<stream>-<n>.npz``) and writes nothing.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from pokedreamer.env.maps import map_name
from pokedreamer.env.state import VECTOR_FIELDS

FIELD = {name: i for i, name in enumerate(VECTOR_FIELDS)}
FULL, HURT = 0.99, 0.9


def streams(replay: Path, first: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each env's stored (states, is_first) in order, cut to its first ``first`` steps."""
    chunks: dict[int, list[Path]] = collections.defaultdict(list)
    for path in replay.glob("chunk-*.npz"):
        _, stream, number = path.stem.split("-")
        chunks[int(stream)].append(path)
    out = []
    for paths in chunks.values():
        states, firsts = [], []
        for path in sorted(paths, key=lambda p: int(p.stem.split("-")[2])):
            with np.load(path) as chunk:
                states.append(chunk["states"].astype(np.float32))
                firsts.append(chunk["is_first"].astype(bool))
        s, f = np.concatenate(states), np.concatenate(firsts)
        out.append((s[:first], f[:first]))
    return out


def byte(states: np.ndarray, name: str) -> np.ndarray:
    return np.round(states[:, FIELD[name]] * 255).astype(int)


def census(run: Path, first: int | None) -> None:
    steps = wild = trainer = began = 0
    maps: collections.Counter[str] = collections.Counter()
    ended: collections.Counter[str] = collections.Counter()
    heals: collections.Counter[tuple[str, int, int]] = collections.Counter()
    badge = 0
    for states, firsts in streams(run / "replay", first):
        steps += len(states)
        ids, counts = np.unique(byte(states, "map_id"), return_counts=True)
        for map_id, count in zip(ids, counts, strict=True):
            maps[map_name(int(map_id))] += int(count)
        is_wild = states[:, FIELD["battle_wild"]] > 0.5
        fighting = is_wild | (states[:, FIELD["battle_trainer"]] > 0.5)
        calm = states[:, FIELD["battle_none"]] > 0.5
        wild += int(is_wild.sum())
        trainer += int((states[:, FIELD["battle_trainer"]] > 0.5).sum())
        same = ~firsts[1:]  # consecutive steps of one episode
        began += int((fighting[1:] & ~fighting[:-1] & same).sum())
        for i in np.flatnonzero(is_wild[:-1] & ~is_wild[1:] & same):
            if states[i, FIELD["enemy_hp_fraction"]] < 0.01:
                ended["won"] += 1
            elif states[i + 1, FIELD["hp_fraction"]] < 0.01 or states[i + 1, FIELD["battle_lost"]]:
                ended["lost"] += 1
            else:
                ended["left by RUN"] += 1
        hp = states[:, FIELD["hp_fraction"]]
        party = states[:, FIELD["party_size"]] > 0
        healed = (hp[1:] >= FULL) & (hp[:-1] < HURT) & (hp[:-1] > 0) & party[:-1]
        healed &= calm[1:] & calm[:-1] & same
        x, y, map_ids = byte(states, "x"), byte(states, "y"), byte(states, "map_id")
        for i in np.flatnonzero(healed):
            heals[(map_name(int(map_ids[i + 1])), int(x[i]), int(y[i]))] += 1
        badges = [FIELD[f] for f in VECTOR_FIELDS if f.startswith("badge_")]
        badge += int((states[:, badges] > 0.5).any(axis=1).sum())
    print(f"{run}: {steps:,} steps")
    print("  maps: " + ", ".join(f"{name} {count:,}" for name, count in maps.most_common()))
    print(f"  battle steps: wild {wild:,}, trainer {trainer:,}; battles begun {began:,}")
    print("  wild battles ended: " + ", ".join(f"{k} {v:,}" for k, v in sorted(ended.items())))
    print(f"  heals outside battle: {sum(heals.values())}" + (
        " (" + ", ".join(f"{m} ({x},{y}) {n}" for (m, x, y), n in heals.most_common()) + ")"
        if heals else ""))  # fmt: skip
    print(f"  steps with a badge: {badge:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--first", type=int, default=None, metavar="N",
                        help="only each env's first N stored steps")  # fmt: skip
    args = parser.parse_args()
    for name in args.runs:
        run = Path(name) if Path(name).is_dir() else Path("runs") / name
        census(run, args.first)


if __name__ == "__main__":
    main()

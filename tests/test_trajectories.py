"""Fixed seeds play the very trajectories recorded in tests/data: the acting policies (agent,
random, demonstrator), a run learning online (world-model and behaviour updates), and DAgger.

Every random draw and every update is in the recorded files: an env's buttons come from the
actor's sampling (torch), the loop's numpy generator or the demonstrator; training moves the
weights the next buttons come from. A reordered draw or call anywhere in acting or learning
shows up as the first line that differs. A change meant to change them (a new shipped
checkpoint, a cartridge behaviour) re-records them with tests/record_trajectories.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from torch_setup import one_thread  # noqa: F401 (autouse fixture)

from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.play import shipped_checkpoint
from pokedreamer.config import Settings, load_settings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rom import Rom, load_rom
from pokedreamer.rundir import RunDir

RECORDED = Path(__file__).parent / "data" / "trajectories.json.gz"
# Fields that hold the wall clock, left out of the recording.
WALL_CLOCK = {"steps.jsonl": "t", "plans.jsonl": "wall_time"}
TRAIN = {
    "agent.envs": 2, "env.max_steps": 100, "agent.train_after": 64, "agent.train_ratio": 16.0,
    "world_model.batch_size": 4, "world_model.batch_length": 16, "agent.imagine_batch": 32,
    "agent.behavior_updates": 2,
}  # fmt: skip


class Case:
    """One recorded run: its name in the recording, settings, policy and env steps."""

    def __init__(
        self, name: str, seed: int, overrides: dict[str, Any], *, policy: str = "agent",
        train: bool = False, imitation: bool = False, steps: int = 400,
    ) -> None:  # fmt: skip
        self.name, self.policy, self.train, self.imitation, self.steps = (
            name, policy, train, imitation, steps,
        )  # fmt: skip
        self.overrides = {"env.seed": seed, "world_model.threads": 1, **overrides}

    def settings(self) -> Settings:
        return load_settings(None, self.overrides)


def acting(policy: str, envs: int, seed: int) -> Case:
    overrides = {"agent.envs": envs, "env.max_steps": 150, "agent.end_at_badges": 1}
    return Case(f"{policy}-{envs}-{seed}", seed, overrides, policy=policy)


CASES = [
    acting("agent", 1, 7),
    acting("agent", 2, 11),
    acting("random", 2, 3),
    acting("demonstrator", 2, 5),
    acting("demonstrator", 1, 9),
    Case("train-2-21", 21, TRAIN, train=True, steps=240),
    Case("imitation-2-31", 31, {"agent.envs": 2, "env.max_steps": 100}, imitation=True, steps=240),
]


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[dict[str, Any]]]:
    with gzip.open(RECORDED, "rt", encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rom() -> Rom:
    return load_rom(str(ROM_PATH))


def played(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Every jsonl file a run wrote, by path, each line parsed and its wall clock dropped."""
    files: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.rglob("*.jsonl")):
        drop = WALL_CLOCK.get(path.name)
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for line in lines:
            line.pop(drop, None)
        files[path.relative_to(folder.parent).as_posix()] = lines
    return files


def first_difference(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> str | None:
    for number, (a, b) in enumerate(zip(got, want, strict=False), 1):
        if a != b:
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            return f"line {number} differs in {keys}: got {a}, recorded {b}"
    if len(got) != len(want):
        return f"{len(got)} lines, recorded {len(want)}"
    return None


@pytest.mark.skipif(shipped_checkpoint() is None, reason="no shipped checkpoint")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fixed_seeds_play_the_recorded_trajectories(
    case: Case, recorded: dict[str, list[dict[str, Any]]], rom: Rom, tmp_path: Path
) -> None:
    settings = case.settings()
    run = RunDir.make(tmp_path / case.name)
    loop = AgentLoop(
        settings, run, checkpoint=shipped_checkpoint(), train=case.train, policy=case.policy,
        rom=rom, imitation=settings.imitation if case.imitation else None,
    )  # fmt: skip
    loop.run(case.steps)
    got = played(run.path)
    want = {k: v for k, v in recorded.items() if k.startswith(f"{case.name}/")}
    if case.train:
        got, want = before_training(got, settings), before_training(want, settings)
        assert want and all(want.values()), want  # something of every kept file is compared
    assert sorted(got) == sorted(want)
    for name, lines in want.items():
        difference = first_difference(got[name], lines)
        if difference is not None:
            pytest.fail(f"{name}: {difference}", pytrace=False)


def before_training(files: dict[str, list[dict[str, Any]]], settings: Settings) -> dict[str, Any]:
    """What of a learning run is the same on every machine: each env's first episode up to the
    step the first update comes after, and which figures its metrics lines hold at which
    update. What an update computes is not the same to the bit on every machine (the float
    kernels and libraries differ), and the buttons sampled from the changed weights soon part:
    the recording from one machine left another's at step 45 of the second env's first episode,
    with its first losses 3% apart. Acting alone, and DAgger, stay exact everywhere."""
    bound = settings.agent.train_after // settings.agent.envs  # steps per env before an update
    first = {f"episodes/{n:06d}/" for n in range(1, settings.agent.envs + 1)}
    kept: dict[str, list[dict[str, Any]]] = {}
    for name, lines in files.items():
        if name.endswith("metrics.jsonl"):
            counters = ("kind", "step", "update")
            updates = [line for line in lines if "update" in line]
            kept[name] = [{k: line[k] if k in counters else None for k in line} for line in updates]
        elif any(folder in name for folder in first):
            step = "i" if name.endswith("steps.jsonl") else "step"
            kept[name] = [line for line in lines if line.get(step, 0) < bound]
    return kept


def test_the_recording_holds_every_case(recorded: dict[str, list[dict[str, Any]]]) -> None:
    names = {key.split("/")[0] for key in recorded}
    assert names == {c.name for c in CASES}

"""Go-Explore's collection (agent/go_explore.py) on the fixture cartridge: snapshots that return
the env to where it was, cells that tell the game's progress apart, and a collection that reaches
farther than random buttons from the start in the same steps."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clirun import REPO_ROOT, cli

from pokedreamer.agent.collect import collect
from pokedreamer.agent.go_explore import SEGMENT_STEPS, Archive, cell_of
from pokedreamer.config import EnvSettings, Settings
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.maps import map_id
from pokedreamer.env.state import VECTOR_FIELDS, PartyMon
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir


def press(env: PokemonRedEnv, *buttons: str) -> dict:
    info: dict = {}
    for button in buttons:
        *_, info = env.step(env.buttons.index(button))
    return info


def test_a_snapshot_returns_the_env_to_where_it_was_and_a_bad_one_is_refused() -> None:
    env = PokemonRedEnv(EnvSettings())
    try:
        env.reset(seed=0)
        here = press(env, *["down"] * 6, *["left"] * 3)["state"]
        snapshot = env.snapshot()
        moved = press(env, *["right"] * 4)["state"]
        assert (moved.x, moved.y) != (here.x, here.y)
        obs, info = env.reset(seed=1, options={"state": snapshot})
        back = info["state"]
        assert (back.map_name, back.x, back.y, back.facing) == (
            here.map_name, here.x, here.y, here.facing
        )  # fmt: skip
        assert np.array_equal(obs["state"], back.vector())
        # The next plain reset is the start state again, not the snapshot.
        _, info = env.reset(seed=0)
        assert (info["state"].x, info["state"].y) == (3, 5)
        with pytest.raises(UserError, match="is not a PyBoy save state"):
            env.reset(options={"state": b"not a state"})
    finally:
        env.close()


def test_a_cell_tells_apart_progress_a_hurt_party_and_a_battle_but_not_a_step_aside() -> None:
    env = PokemonRedEnv(EnvSettings())
    try:
        _, info = env.reset(seed=0)
    finally:
        env.close()
    state = info["state"]
    full = state.model_copy(update={"party": (PartyMon(4, 5, 20, 20),)})
    hurt = state.model_copy(update={"party": (PartyMon(4, 5, 9, 20),)})
    grown = state.model_copy(update={"party": (PartyMon(4, 6, 20, 20),)})
    fighting = full.model_copy(update={"battle": "wild"})
    cells = {cell_of(s) for s in (state, full, hurt, grown, fighting)}
    assert len(cells) == 5
    # One cell over inside the same 2x2 block is the same cell.
    aside = state.model_copy(update={"x": state.x ^ 1})
    assert cell_of(aside) == cell_of(state)


def test_the_archive_favours_cells_chosen_and_seen_less() -> None:
    archive = Archive()
    archive.add((1,), b"often")
    archive.add((2,), b"rarely")
    for _ in range(99):
        archive.see((1,))
    archive.places[(1,)].chosen = 99
    odds = archive.odds()
    assert odds[1] > 5 * odds[0]
    rng = np.random.default_rng(0)
    drawn = [archive.choose(rng) for _ in range(20)]
    assert drawn.count(b"rarely") > drawn.count(b"often")
    assert archive.places[(2,)].chosen == drawn.count(b"rarely")
    assert not archive.see((3,)) and len(archive) == 2


def stored(run: RunDir) -> tuple[np.ndarray, np.ndarray]:
    """One env's stored steps in order: (map, x, y) of each, and which are first steps."""
    where = [VECTOR_FIELDS.index(f) for f in ("map_id", "x", "y")]
    places, firsts = [], []
    for chunk in sorted(run.replay.glob("chunk-*.npz")):
        with np.load(chunk) as steps:
            places.append(np.round(steps["states"][:, where].astype(np.float64) * 255))
            firsts.append(steps["is_first"])
    return np.concatenate(places).astype(int), np.concatenate(firsts)


def test_go_explore_returns_every_segment_to_a_place_it_reached(tmp_path: Path) -> None:
    settings = Settings().model_copy(update={"run": Settings().run.model_copy(
        update={"runs_dir": str(tmp_path)})})  # fmt: skip
    steps = 1_000
    explored = RunDir.create(settings, "explored")
    result = collect(settings, explored, steps, envs=1, policy="go-explore")
    assert result.steps == steps and result.episodes == steps // SEGMENT_STEPS - 1
    assert result.cells > 1
    places, firsts = stored(explored)
    assert len(places) == result.replay_steps == steps + result.episodes
    # Each return starts an episode, SEGMENT_STEPS + 1 stored steps apart, at a place reached
    # before; not all at the start.
    starts = np.flatnonzero(firsts)
    assert starts.tolist() == list(range(0, len(places), SEGMENT_STEPS + 1))[: len(starts)]
    seen = {tuple(p) for p in places[: starts[1]].tolist()}
    for begin, end in zip(starts[1:], [*starts[2:], len(places)], strict=True):
        assert tuple(places[begin].tolist()) in seen
        seen.update(tuple(p) for p in places[begin:end].tolist())
    assert len({tuple(places[i].tolist()) for i in starts}) > 1


def test_collect_and_train_agent_take_go_explore_and_refuse_what_they_cannot_do() -> None:
    made = cli("collect", "--run", "g", "--steps", "250", "--envs", "1", "--policy", "go-explore")
    assert made.returncode == 0, made.stderr
    assert re.search(r"collected 250 steps \(\d+ cells reached, 2 returns\)", made.stdout)
    refused = cli("collect", "--run", "h", "--policy", "go-explore", "--workers", "ray")
    assert refused.returncode == 2
    go_local = (
        "error: go-explore returns local envs to its snapshots: set agent.workers to local (or "
        "leave --workers out)"
    )
    assert refused.stderr.strip().splitlines() == [go_local]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POKEDREAMER_AGENT__WORKERS", "ray")
        refused = cli("train", "agent", "--run", "h", "--collect-policy", "go-explore")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [go_local]
    bad = cli("train", "agent", "--run", "n", "--collect-policy", "greedy")
    assert bad.stderr.strip().splitlines() == [
        "error: --collect-policy takes random or go-explore, not 'greedy'"
    ]
    assert not Path("runs/h").exists() and not Path("runs/n").exists()
    recipe = cli("train", "agent", "--run", "r", "--collect-policy", "go-explore",
                 "--collect-steps", "250", "--envs", "1", "--until", "collect")  # fmt: skip
    assert recipe.returncode == 0, recipe.stderr
    assert re.search(
        r"collect: 250 steps of go-explore \(\d+ cells reached, 2 returns\)", recipe.stdout
    )
    stage = json.loads(Path("runs/r/recipe.json").read_text())["stages"]["collect"]
    assert stage["policy"] == "go-explore" and stage["steps"] == 252


@pytest.mark.slow  # 40,000 env steps: make test-slow
def test_go_explore_spends_more_of_the_same_steps_past_pallet_town_than_random_buttons(
    tmp_path: Path,
) -> None:
    settings = Settings().model_copy(update={"run": Settings().run.model_copy(
        update={"runs_dir": str(tmp_path)})})  # fmt: skip
    maps = {}
    for policy in ("go-explore", "random"):
        run = RunDir.create(settings, policy)
        collect(settings, run, 20_000, envs=1, policy=policy)
        places, _ = stored(run)
        maps[policy] = np.bincount(places[:, 0], minlength=256)
    route_1, gym = map_id("ROUTE_1"), map_id("PEWTER_GYM")
    assert maps["go-explore"][route_1] > 1.5 * maps["random"][route_1]
    assert maps["go-explore"][gym] > 1.5 * maps["random"][gym]


@pytest.mark.parametrize("policy", ["go-explore", "random"])
def test_a_collection_stopped_by_ctrl_c_keeps_its_steps_without_a_traceback(policy: str) -> None:
    """Ctrl-C reaches the terminal's whole process group, env workers included; stopped inside
    a worker's answer (a snapshot is 150 KB), the parent once waited forever to close them."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get(
        "PYTHONPATH", "")]), "POKEDREAMER_WORLD_MODEL__THREADS": "1"}  # fmt: skip
    args = ["train", "agent", "--run", "c", "--collect-policy", policy,
            "--collect-steps", "1000000", "--until", "collect"]  # fmt: skip
    with subprocess.Popen(
        [sys.executable, "-m", "pokedreamer", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    ) as process:  # fmt: skip
        deadline = time.monotonic() + 120
        while not list(Path("runs/c/replay").glob("chunk-*")) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert stderr.strip().splitlines()[-1] == (
        "stopped in collect; its work is kept: the same command resumes it"
    )
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    resumed = cli("train", "agent", "--run", "c", "--collect-policy", policy,
                  "--collect-steps", "300", "--until", "collect")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "collect: resuming at " in resumed.stdout


def test_an_episode_shorter_than_a_segment_returns_when_it_ends(tmp_path: Path) -> None:
    settings = Settings().model_copy(update={
        "run": Settings().run.model_copy(update={"runs_dir": str(tmp_path)}),
        "env": Settings().env.model_copy(update={"max_steps": 30}),
    })  # fmt: skip
    run = RunDir.create(settings, "short")
    result = collect(settings, run, 200, envs=1, policy="go-explore")
    _, firsts = stored(run)
    assert np.flatnonzero(firsts).tolist() == list(range(0, len(firsts), 31))
    assert result.episodes == len(np.flatnonzero(firsts)) - 1 > 0


def test_the_same_seed_collects_the_same_steps(tmp_path: Path) -> None:
    settings = Settings().model_copy(update={"run": Settings().run.model_copy(
        update={"runs_dir": str(tmp_path)})})  # fmt: skip
    runs = [RunDir.create(settings, name) for name in ("one", "two")]
    for run in runs:
        collect(settings, run, 400, envs=1, policy="go-explore")
    (first, _), (second, _) = (stored(run) for run in runs)
    assert np.array_equal(first, second)

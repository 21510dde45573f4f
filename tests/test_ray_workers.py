"""Env workers as Ray actors, on a local Ray cluster the tests start (2 CPUs): the same games as
the local vector env, a killed worker survived, ``run --workers ray`` through the CLI, resumed,
and ``collect --workers ray``.
Without Ray installed these are skipped, except the checks that Ray stays out of a local run and
that a missing Ray is said in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clirun import REPO_ROOT, cli
from tiny_run import TINY, TINY_ENV

from pokedreamer.agent.episodes import EpisodeReader, list_episodes
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.config import EnvSettings, RewardSettings, Settings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir

# Minutes of a local Ray cluster: `make test-slow` (and CI) runs them, `make test` does not.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster for this module's tests; its address, which a CLI run can join."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def acting(tmp_path: Path, workers: str, **extra: Any) -> Settings:
    return load_settings(
        None,
        {**TINY, "run.runs_dir": str(tmp_path / workers), "agent.envs": 2,
         "agent.envs_per_worker": 1, "agent.workers": workers, "planner.kind": "none", **extra},
    )  # fmt: skip


def played(run: RunDir) -> list[tuple[list[Any], np.ndarray]]:
    """Every recorded episode: its steps (action, reward, state) and its frames."""
    games = []
    for info in list_episodes(run):
        reader = EpisodeReader(info.path)
        steps = [(s.action, s.reward, s.state) for s in reader.steps()]
        games.append((steps, np.stack(list(reader.frames()))))
    return games


def test_ray_workers_play_the_games_the_local_envs_play(ray_cluster: str, tmp_path: Path) -> None:
    """Same seeds, same buttons: each env's stream is the same step for step, through episodes
    cut at max_steps and reset to the next seeds."""
    games, grounds = {}, {}
    for workers in ("local", "ray"):
        s = acting(tmp_path, workers, **{"env.max_steps": 25})
        run = RunDir.create(s, "same")
        loop = AgentLoop(s, run, train=False, policy="random")
        loop.run(70)
        games[workers] = played(run)
        assert [e["seed"] for e in loop.finished] == [0, 1, 2, 3]
        grounds[workers] = {m: dict(loop.map_graph.ground(m)) for m in loop.map_graph.nodes}
    assert len(games["ray"]) == len(games["local"]) == 4
    assert grounds["ray"] == grounds["local"] and all(grounds["local"].values())
    for (steps, frames), (local_steps, local_frames) in zip(
        games["ray"], games["local"], strict=True
    ):
        assert steps == local_steps
        assert np.array_equal(frames, local_frames)


def test_a_killed_worker_is_replaced_and_its_env_begins_a_new_episode(
    ray_cluster: str, tmp_path: Path
) -> None:
    import ray

    s = acting(tmp_path, "ray")
    run = RunDir.create(s, "killed")
    loop = AgentLoop(s, run, train=False, policy="random")
    told: list[str] = []
    loop.say = told.append
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(r=loop.run(160)))
    thread.start()
    deadline = time.monotonic() + 120
    while (loop.driver is None or loop.steps < 40) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loop.driver is not None and thread.is_alive()
    venv = loop.driver.venv
    ray.kill(venv.actors[0])
    thread.join(timeout=120)
    assert not thread.is_alive() and result["r"].steps == 160  # the run went on to its end
    assert venv.restarts == 1
    lost = [e for e in loop.finished if e["ended"] == "worker lost"]
    assert [e["env"] for e in lost] == [0] and lost[0]["seed"] == 0
    assert loop.tally.episodes == 3  # env 0 began seed 2 on its fresh worker
    assert told == ["env worker lost and restarted: envs [0] begin new episodes"]
    assert {"kind": "workers", "lost_envs": [0]}.items() <= next(
        m for m in run.read_metrics() if m.get("kind") == "workers"
    ).items()
    episodes = list_episodes(run)
    assert [e.summary["ended"] if e.summary else None for e in episodes] == [
        "worker lost", "loop stopped", "loop stopped",
    ]  # fmt: skip
    lost_steps = EpisodeReader(episodes[0].path).steps()
    assert len(lost_steps) - 1 == lost[0]["steps"] >= 20  # its steps up to the loss are kept


def step_all(venv: Any, buttons: np.ndarray) -> list[tuple[Any, ...]]:
    """Each step's screens, vectors, rewards and ends, with a reset of env 1 half-way."""
    out = []
    for i, actions in enumerate(buttons):
        if i == len(buttons) // 2:
            obs, _ = venv.reset(
                seed=[None, 7, None], options={"reset_mask": np.array([False, True, False])}
            )
            out.append((obs["screen"], obs["state"]))
        obs, reward, terminated, truncated, _ = venv.step(actions)
        out.append((obs["screen"], obs["state"], reward, terminated, truncated))
    return out


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "plain"])
def test_compiled_and_plain_calls_step_the_games_the_local_envs_step(
    ray_cluster: str, compiled: bool
) -> None:
    from pokedreamer.env.ray_workers import RayVectorEnv
    from pokedreamer.env.vector import make_envs

    env = EnvSettings(headless=True, max_steps=0)
    buttons = np.random.default_rng(3).integers(0, env.num_actions, (24, 3))
    local = make_envs(env, RewardSettings(), 3, "local")
    far = RayVectorEnv(env, RewardSettings(), 3, 2, compiled=compiled)
    try:
        assert far.calls == ("compiled" if compiled else "plain")
        streams = []
        for venv in (local, far):
            venv.reset(seed=[0, 1, 2])
            streams.append(step_all(venv, buttons))
        assert len(far.stepping_s) == 2 and min(far.stepping_s) > 0
    finally:
        local.close()
        far.close()
    for mine, theirs in zip(*streams, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "plain"])
def test_a_worker_killed_between_steps_loses_only_its_envs(
    ray_cluster: str, compiled: bool
) -> None:
    """Both ways of calling: the dead actor's envs end truncated and marked restarted, the
    other actor's env goes on with its game, and the next steps play on."""
    import ray

    from pokedreamer.env.ray_workers import RayVectorEnv

    env = EnvSettings(headless=True, max_steps=0)
    far = RayVectorEnv(env, RewardSettings(), 3, 2, compiled=compiled)
    alone = RayVectorEnv(env, RewardSettings(), 1, 1, compiled=compiled)
    try:
        far.reset(seed=[0, 1, 2])
        alone.reset(seed=[2])
        for _ in range(5):
            far.step(np.array([1, 1, 1]))
            alone.step(np.array([1]))
        dead = far.actors[0]
        ray.kill(dead)
        # ray.kill only asks: wait until the actor is gone, so that the next step meets a death.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ray.get(dead.echo.remote(0), timeout=5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                break
            time.sleep(0.1)
        obs, _, terminated, truncated, info = far.step(np.array([2, 2, 2]))
        expected, *_ = alone.step(np.array([2]))
        assert truncated.tolist() == [True, True, False] and not terminated.any()
        assert info["_restarted"].tolist() == [True, True, False]
        assert np.array_equal(obs["screen"][2], expected["screen"][0])  # env 2 played on
        assert far.restarts == 1 and far.calls == ("compiled" if compiled else "plain")
        far.reset(seed=[5, 6, None], options={"reset_mask": np.array([True, True, False])})
        for _ in range(3):
            *_, truncated, info = far.step(np.array([0, 0, 0]))
            assert not truncated.any() and "restarted" not in info
    finally:
        far.close()
        alone.close()


def test_an_env_a_worker_cannot_make_is_said_in_one_line(ray_cluster: str) -> None:
    from pokedreamer.env.ray_workers import RayVectorEnv

    with pytest.raises(UserError, match=r"^start state not found: /nonexistent\.state$"):
        RayVectorEnv(EnvSettings(start_state="/nonexistent.state"), RewardSettings(), 2, 1)


def test_run_with_ray_workers_through_the_cli_and_resume(
    ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in TINY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POKEDREAMER_AGENT__WORKERS", "ray")  # the setting, by its env variable
    first = cli("run", "--headless", "--steps", "100", "--envs", "2", "--name", "ray",
                "--ray-address", ray_cluster)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "done: 100 steps" in first.stdout
    run = Path("runs/ray")
    assert 'workers = "ray"' in (run / "config.toml").read_text()
    steps = sum(len(EpisodeReader(e.path).steps()) for e in list_episodes(run))
    assert steps == 100 + 2  # each env's first frame, then its steps
    monkeypatch.delenv("POKEDREAMER_AGENT__WORKERS")  # the run's saved settings say ray
    resumed = cli("run", "--headless", "--steps", "60", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    meta = json.loads((run / "checkpoints" / "agent-000000160.json").read_text())["meta"]
    assert meta["steps"] == 160 and meta["updates"] > 0


def test_collect_with_ray_workers_keeps_the_replay_the_local_envs_keep(
    ray_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random play with next-step autoreset (episodes cut at 12 steps): byte for byte."""
    monkeypatch.setenv("POKEDREAMER_ENV__MAX_STEPS", "12")
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__REPLAY_CHUNK", "16")
    for workers in ("local", "ray"):
        made = cli("collect", "--run", workers, "--steps", "40", "--envs", "2",
                   "--workers", workers, "--ray-address", ray_cluster)  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "(2 episodes ended)" in made.stdout
    chunks = sorted(p.name for p in Path("runs/local/replay").iterdir())
    assert len(chunks) == 4 and sorted(p.name for p in Path("runs/ray/replay").iterdir()) == chunks
    for name in chunks:
        local = (Path("runs/local/replay") / name).read_bytes()
        assert (Path("runs/ray/replay") / name).read_bytes() == local, name


def test_bench_env_with_ray_workers_through_the_cli(ray_cluster: str) -> None:
    """The ratio to the local envs and one call's cost, compiled and plain, at the sizes asked."""
    result = cli("bench", "env", "--workers", "ray", "--json", "--steps", "50", "--rounds", "1",
                 "--ray-workers", "1", "--envs-per-worker", "2", "--call-envs", "1,3",
                 "--ray-address", ray_cluster)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["envs"] == 2 and report["ray_calls"] == "compiled"
    assert report["local_steps_per_s"] > 0 and report["ray_steps_per_s"] > 0
    assert report["ray_over_local_ratio"] > 0
    for kind in ("ray_call", "ray_plain_call"):
        assert sorted(report[kind]) == ["1", "3"]
        for cost in report[kind].values():
            assert cost["step_ms"] > 0 and 0 < cost["call_share"] < 1
    bad = cli("bench", "env", "--workers", "ray", "--call-envs", "1,x")
    assert bad.returncode == 2 and "--call-envs" in bad.stderr and "Traceback" not in bad.stderr


def test_screens_travel_packed_and_come_back_as_they_were() -> None:
    pytest.importorskip("ray")
    from pokedreamer.env.ray_workers import pack_screens, unpack_screens

    # Every run of four shades once, then random screens.
    every = np.array([[(b >> (2 * j)) & 3 for j in range(4)] for b in range(256)], np.uint8)
    screens = [np.resize(every.ravel(), (144, 160))]
    screens += list(np.random.default_rng(0).integers(0, 4, (3, 144, 160), dtype=np.uint8))
    packed = pack_screens(screens)
    assert packed.shape == (4, 144, 40) and packed.dtype == np.uint8
    assert packed[0].ravel()[:256].tolist() == list(range(256))
    assert np.array_equal(unpack_screens(packed), np.stack(screens))


def test_an_unreachable_ray_address_is_one_line() -> None:
    pytest.importorskip("ray")
    result = cli("run", "--headless", "--steps", "5", "--workers", "ray",
                 "--ray-address", "127.0.0.1:1")  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: could not reach the Ray cluster at 127.0.0.1:1")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not Path("runs").exists()  # refused before anything was made


def test_ray_workers_without_ray_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray made unimportable, as on a machine without the extra."""
    blocker = tmp_path / "noray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker.parent))
    result = cli("run", "--headless", "--steps", "5", "--workers", "ray")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "pip install -e '.[ray]'" in result.stderr and "make ray" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not Path("runs").exists()


def test_a_local_run_never_imports_ray() -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('ray imported:', 'ray' in sys.modules))\n"
        "from pokedreamer.cli import main\n"
        "sys.argv = ['pokedreamer', 'run', '--headless', '--no-train', '--steps', '4',"
        " '--envs', '2']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240
    )
    assert result.returncode == 0, result.stderr
    assert "done: 4 steps" in result.stdout
    assert result.stdout.strip().endswith("ray imported: False")

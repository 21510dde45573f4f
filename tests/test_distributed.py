"""The learner on two processes (DDP over gloo on the CPU): one update equals one process's update
on the same global batch, and checkpoints pass between world sizes through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from clirun import REPO_ROOT, cli
from safetensors.torch import load_file, save_file
from torch_setup import one_thread, seeded  # noqa: F401 (autouse fixtures)

import pokedreamer.world_model.rssm as rssm_module
from pokedreamer.agent.behavior import Behavior, Imagination
from pokedreamer.agent.collect import collect
from pokedreamer.config import Settings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.dist import categorical_st_sample
from pokedreamer.world_model.distributed import SINGLE, Ranks
from pokedreamer.world_model.presets import PRESETS
from pokedreamer.world_model.replay import Replay
from pokedreamer.world_model.trainer import WorldModelTrainer

# Process groups of torchrun and spawned ranks: `make test-slow` (and CI) runs them.
pytestmark = pytest.mark.slow

TINY = {
    "world_model.preset": "tiny",
    "world_model.batch_size": 4,
    "world_model.batch_length": 16,
    "world_model.amp": "off",  # float32: the two sides differ only in summation order
    "world_model.threads": 1,
    # Adam's first step is lr * g / (|g| + eps): about lr * sign(g) with the usual eps, which the
    # summation order can flip where g is near 0. A larger eps makes the step a smooth function
    # of the gradient, so equal gradients up to float error give equal weights up to float error.
    "world_model.adam_eps": 1e-3,
    "agent.adam_eps": 1e-3,
}
WORLD = 2
HORIZON, IMAGINED = 15, 8  # the behaviour's imagined batch: 15 steps from 8 starts


def settings_in(tmp: Path) -> Settings:
    return load_settings(None, {**TINY, "run.runs_dir": str(tmp / "runs")})


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RunDir]:
    tmp = tmp_path_factory.mktemp("ddp")
    settings = settings_in(tmp)
    run = RunDir.create(settings, "data")
    collect(settings, run, steps=300, envs=1)
    return settings, run


def latent_modes() -> None:
    """The RSSM takes its latents' modes instead of sampling them: the two sides then make the
    same draws (none), while the straight-through gradients are those of training."""

    def mode(logits: torch.Tensor, unimix: float = 0.0, sample: bool = True) -> torch.Tensor:
        return categorical_st_sample(logits, unimix, sample=False)

    rssm_module.categorical_st_sample = mode  # type: ignore[assignment]


def world_model_update(folder: Path, ranks: Ranks) -> dict[str, torch.Tensor]:
    """One world-model update on this rank's share of the batch saved in ``folder``."""
    settings = settings_in(folder)
    with np.load(folder / "batch.npz", allow_pickle=False) as saved:
        share = ranks.share(settings.world_model.batch_size)
        batch = {name: saved[name][share] for name in saved.files}
    trainer = WorldModelTrainer(settings.world_model, settings.env.num_actions, ranks=ranks)
    metrics = trainer.update(batch)
    params = {f"model.{n}": p.detach().clone() for n, p in trainer.model.named_parameters()}
    return {**params, "loss": torch.tensor(metrics["loss"])}


def imagined(settings: Settings, ranks: Ranks) -> Imagination:
    """A fixed imagined batch of IMAGINED starts, and this rank's share of it (its columns)."""
    gen = torch.Generator().manual_seed(7)
    feat = PRESETS["tiny"].feat_size
    h, b = HORIZON, IMAGINED
    conts = (torch.rand(h, b, generator=gen) > 0.05).float()
    weights = torch.cat([torch.ones(1, b), conts[:-1]]).cumprod(0)
    whole = Imagination(
        feats=torch.randn(h + 1, b, feat, generator=gen),
        goal=torch.randn(b, GOAL_ENCODING_SIZE, generator=gen),
        actions=torch.randint(0, settings.env.num_actions, (h, b), generator=gen),
        rewards=torch.randn(h, b, generator=gen) * 5.0,
        shaping=torch.zeros(h, b),
        conts=conts,
        weights=weights,
        alive=torch.ones(h + 1, b),
        leapt=(torch.rand(b, generator=gen) > 0.9).float(),
    )
    share = ranks.share(b)
    per_start = ("goal", "leapt")  # (B, ...) where the others are (H, B, ...)
    return Imagination(
        *(x[share] if name in per_start else x[:, share] for name, x in whole._asdict().items())
    )


def behavior_update(folder: Path, ranks: Ranks) -> dict[str, torch.Tensor]:
    """One actor-critic update on this rank's share of the imagined batch."""
    settings = settings_in(folder)
    torch.manual_seed(0)
    behavior = Behavior(PRESETS["tiny"], settings.env.num_actions, settings.agent, ranks)
    metrics = behavior.train_on(imagined(settings, ranks))
    state = {n: t.detach().clone() for n, t in behavior.state_dict().items()}
    return {**state, "return_scale": torch.tensor(metrics["return_scale"])}


def rank_main(rank: int, folder: Path, kind: str) -> None:
    """One of WORLD processes: the update of ``kind`` on its share; rank 0 saves the result."""
    torch.set_num_threads(1)
    latent_modes()
    store = f"file://{folder / 'store'}"
    tdist.init_process_group("gloo", init_method=store, rank=rank, world_size=WORLD)
    try:
        update = world_model_update if kind == "world_model" else behavior_update
        out = update(folder, Ranks(rank, WORLD))
        if rank == 0:
            save_file({k: v.contiguous() for k, v in out.items()}, str(folder / f"{kind}.st"))
        # As the CLI's process group does: no rank tears the group down while another still
        # uses it (gloo then aborts the other with SIGABRT).
        tdist.barrier()
    finally:
        tdist.destroy_process_group()


def on_two_processes(folder: Path, kind: str) -> dict[str, torch.Tensor]:
    mp.spawn(rank_main, args=(folder, kind), nprocs=WORLD, join=True)
    return load_file(str(folder / f"{kind}.st"))


def assert_same(single: dict[str, torch.Tensor], shared: dict[str, torch.Tensor]) -> None:
    assert single.keys() == shared.keys()
    for name, value in single.items():
        torch.testing.assert_close(shared[name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_one_world_model_update_on_two_processes_equals_one_process_on_the_global_batch(
    collected: tuple[Settings, RunDir], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, run = collected
    wm = settings.world_model
    batch = Replay(run.replay, wm.replay_capacity, wm.replay_chunk, seed=3).sample(4, 16)
    np.savez(tmp_path / "batch.npz", **batch)
    monkeypatch.setattr(rssm_module, "categorical_st_sample", rssm_module.categorical_st_sample)
    latent_modes()
    single = world_model_update(tmp_path, SINGLE)
    shared = on_two_processes(tmp_path, "world_model")
    assert_same(single, shared)
    # The update moved the weights: equal weights are not the untrained ones.
    fresh = WorldModelTrainer(wm, settings.env.num_actions).model.state_dict()
    moved = [n for n, p in fresh.items() if f"model.{n}" in single and
             not torch.equal(p, single[f"model.{n}"])]  # fmt: skip
    assert len(moved) > 10, moved


def test_one_behaviour_update_on_two_processes_equals_one_process_on_the_global_batch(
    tmp_path: Path,
) -> None:
    single = behavior_update(tmp_path, SINGLE)
    shared = on_two_processes(tmp_path, "behavior")
    assert_same(single, shared)
    # The return scale came from percentiles over both ranks' returns, not from one rank's.
    settings = settings_in(tmp_path)
    torch.manual_seed(0)
    first_half = Behavior(PRESETS["tiny"], settings.env.num_actions, settings.agent)
    returns_of_half = first_half.train_on(imagined(settings, Ranks(0, WORLD)))
    assert returns_of_half["return_scale"] != pytest.approx(float(single["return_scale"]))


def test_each_rank_takes_its_rows_of_the_global_batch() -> None:
    assert Ranks(0, 2).share(4) == slice(0, 2) and Ranks(1, 2).share(4) == slice(2, 4)
    assert SINGLE.share(5) == slice(0, 5)
    with pytest.raises(UserError, match="multiple of 2"):
        Ranks(1, 2).share(5)


def test_a_rank_copies_its_rows_and_its_generator_moves_as_one_processs(
    collected: tuple[Settings, RunDir],
) -> None:
    settings, run = collected
    wm = settings.world_model
    whole = Replay(run.replay, wm.replay_capacity, wm.replay_chunk, seed=9)
    second = Replay(run.replay, wm.replay_capacity, wm.replay_chunk, seed=9)
    for _ in range(2):
        batch = whole.sample(4, 16)
        share = second.sample(4, 16, rows=slice(2, 4))
        for name, value in batch.items():
            np.testing.assert_array_equal(share[name], value[2:4], err_msg=name)


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m pokedreamer -- ARGS`` as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(WORLD), "-m", "pokedreamer", "--", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


def test_checkpoints_pass_between_world_sizes_through_the_cli(
    collected: tuple[Settings, RunDir], tmp_path: Path
) -> None:
    _, data = collected
    runs = tmp_path / "runs"
    config = tmp_path / "my.toml"
    config.write_text(
        f'[run]\nruns_dir = {json.dumps(str(runs))}\n[world_model]\npreset = "tiny"\n'
        "batch_size = 4\nbatch_length = 16\nthreads = 1\n",
        encoding="utf-8",
    )
    (runs / "r" / "replay").mkdir(parents=True)
    for chunk in data.replay.iterdir():
        (runs / "r" / "replay" / chunk.name).write_bytes(chunk.read_bytes())
    train = ("--config", str(config), "train", "world-model", "--run", "r", "--updates")

    result = torchrun(*train, "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 updates on 2 processes" in result.stdout
    result = cli(*train, "1")  # world size 2 -> 1
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("3 updates ("), result.stdout
    result = torchrun(*train, "1")  # and back to 2
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 updates on 2 processes" in result.stdout

    checkpoints = sorted(p.name for p in (runs / "r" / "checkpoints").glob("*.json"))
    assert checkpoints == [f"wm-00000000{n}.json" for n in (2, 3, 4)]
    # Rank 0 alone writes the metrics: each logged update once.
    records = [json.loads(line) for line in (runs / "r" / "metrics.jsonl").read_text().split("\n")
               if line]  # fmt: skip
    assert [r["update"] for r in records if r["kind"] == "world_model"] == [2, 3, 4]


def test_under_torchrun_only_the_learners_verbs_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")  # what torchrun sets in its workers
    allowed = "train world-model, train agent, bench train"
    result = cli("run", "--headless", "--steps", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: run keeps one learner process beside its emulators: start it without torchrun "
        f"(torchrun is for {allowed})"
    ]
    # A config file named "train": the value of --config is not taken for a verb.
    result = cli("--config", "train", "collect", "--run", "c", "--steps", "10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: collect runs in one process: start it without torchrun (torchrun is for {allowed})"
    ]
    for verb in (["train", "imitation"], ["bench", "env"]):
        result = cli(*verb, "--help")
        assert result.returncode == 2 and " ".join(verb) + " runs in one process" in result.stderr


def test_train_agent_under_torchrun_trains_its_world_model_stage_on_every_rank(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tiny = {"PRESET": "tiny", "THREADS": "1", "BATCH_SIZE": "2", "BATCH_LENGTH": "16"}
    for name, value in tiny.items():
        monkeypatch.setenv(f"POKEDREAMER_WORLD_MODEL__{name}", value)
    sizes = ("train", "agent", "--run", "t", "--collect-steps", "120",
             "--world-model-updates", "3")  # fmt: skip

    refused = torchrun(*sizes)
    assert refused.returncode != 0
    assert "error: under torchrun, train agent trains the world model on the run's " in (
        refused.stderr
    )
    collected = cli(*sizes, "--until", "collect")
    assert collected.returncode == 0, collected.stderr

    trained = torchrun(*sizes)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "world model: 3 updates" in trained.stdout
    assert "stopped after world-model: the next stages play emulators in one process" in (
        trained.stdout
    )
    stages = json.loads(Path("runs/t/recipe.json").read_text())["stages"]
    assert set(stages) == {"collect", "world-model"}
    assert stages["world-model"] == {**stages["world-model"], "done": True, "updates": 3}
    # One process takes over where the ranks stopped.
    after = cli(*sizes, "--until", "world-model")
    assert after.returncode == 0, after.stderr
    assert "world model: done before (3 updates), skipped" in after.stdout


def test_bench_train_under_torchrun_reports_once_for_the_global_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"THREADS": "1", "BATCH_SIZE": "2", "BATCH_LENGTH": "8"}.items():
        monkeypatch.setenv(f"POKEDREAMER_WORLD_MODEL__{name}", value)
    result = torchrun("bench", "train", "--preset", "tiny", "--updates", "1", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)  # one report: rank 0's
    assert (report["processes"], report["batch"], report["length"]) == (2, 2, 8)
    assert report["replayed_transitions_per_s"] > 0 and report["env_steps_per_s"] > 0

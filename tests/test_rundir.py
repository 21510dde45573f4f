"""Run directories: their format version, and settings saved in them before they had one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clirun import cli

from pokedreamer import rundir
from pokedreamer.config import load_settings
from pokedreamer.errors import UserError
from pokedreamer.rundir import FORMAT_FILE, VERSION, RunDir

# A run directory as written before run directories recorded a format version: its config.toml
# is the resolved settings of the fixture agent's recipe, with kl_balance on and no planner.
BEFORE = Path(__file__).resolve().parent / "data" / "run-before-format-version"
SHIPPED = Path(__file__).resolve().parent.parent / "pokedreamer" / "agent" / "shipped"


def refusal(path: Path) -> str:
    with pytest.raises(UserError) as info:
        RunDir.open(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_new_run_records_the_current_format_version(tmp_path: Path) -> None:
    settings = load_settings(None, {"run.runs_dir": str(tmp_path)})
    run = RunDir.create(settings, "new")
    record = json.loads((run.path / FORMAT_FILE).read_text(encoding="utf-8"))
    assert record == {"format": "pokedreamer-run", "version": VERSION}
    assert RunDir.open(run.path).version() == VERSION
    assert RunDir.make(tmp_path / "throwaway").version() == VERSION


def test_a_run_from_before_the_version_opens_as_version_1_and_is_reused(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(BEFORE, old)
    assert not (old / FORMAT_FILE).exists()
    run = RunDir.open(old)
    assert run.version() == 1
    assert not (old / FORMAT_FILE).exists()  # opening only reads
    # Its settings load as they were saved; what it lacks takes today's defaults.
    settings = load_settings(old / "config.toml", {})
    assert settings.run.name == "before"
    assert settings.world_model.kl_balance == 0.8 and settings.planner.kind == "none"
    assert (settings.agent.shaping_scale, settings.agent.lam) == (10.0, 0.95)
    assert settings.agent.return_norm_percentiles == (5.0, 95.0)
    # Continuing it (a resume makes it again) brings it to the current version.
    RunDir.make(old)
    assert RunDir.open(old).version() == VERSION


def test_a_run_from_before_the_version_resumes(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(BEFORE, old)
    # The shipped checkpoint is the agent checkpoint this recipe's run ended with.
    (old / "checkpoints").mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(
            SHIPPED / f"fixture-agent{suffix}", old / "checkpoints" / f"agent-000020000{suffix}"
        )
    result = cli("run", "--headless", "--resume", str(old), "--steps", "2")
    assert result.returncode == 0, result.stderr
    assert "done: 20002 steps" in result.stdout
    assert (old / "checkpoints" / "agent-000020002.json").is_file()


def test_a_newer_format_version_is_refused_in_one_line(tmp_path: Path) -> None:
    run = RunDir.make(tmp_path / "future")
    (run.path / FORMAT_FILE).write_text(
        json.dumps({"format": "pokedreamer-run", "version": VERSION + 1}), encoding="utf-8"
    )
    message = refusal(run.path)
    assert f"format version {VERSION + 1}, newer than this pokedreamer reads" in message
    assert "upgrade" in message
    with pytest.raises(UserError, match="newer than"):
        RunDir.make(run.path)
    settings = load_settings(None, {"run.runs_dir": str(tmp_path)})
    with pytest.raises(UserError, match="newer than"):
        RunDir.create(settings, "future")


def test_a_format_no_longer_read_names_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(BEFORE, tmp_path / "old")
    monkeypatch.setattr(rundir, "OLDEST_VERSION", 2)
    message = refusal(tmp_path / "old")
    assert "format version 1, which this pokedreamer no longer reads" in message
    assert f"2: {rundir.CHANGES[2]}" in message
    assert "start a new run" in message


@pytest.mark.parametrize(
    "text", ["", "{", '{"version": 2}', '{"format": "pokedreamer-run", "version": "2"}', "[2]"]
)
def test_an_unreadable_format_record_is_refused_in_one_line(tmp_path: Path, text: str) -> None:
    run = RunDir.make(tmp_path / "damaged")
    (run.path / FORMAT_FILE).write_text(text, encoding="utf-8")
    assert "is not a pokedreamer run directory's format record" in refusal(run.path)


def scalars_in(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in ``folder``: (step, value) by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_metrics_go_to_tensorboard_by_step_beside_metrics_jsonl(tmp_path: Path) -> None:
    run = RunDir.make(tmp_path / "tb")
    run.log_metrics({"kind": "world_model", "update": 25, "loss": 2.5, "seconds": 1})
    run.log_metrics(
        {"kind": "agent", "step": 800, "update": 25, "wm/loss": 1.5, "behavior/return_scale": 3.0}
    )
    run.log_metrics({"kind": "agent", "step": 1600, "update": 50, "behavior/return_scale": 4.0})
    # Not plotted: a record without a step, a flag, a name.
    run.log_metrics({"kind": "note", "loss": 9.0})
    run.log_metrics({"kind": "eval", "step": 1600, "done": True, "planner": "heuristic"})
    # A second RunDir of the same folder shares the one writer (one event file).
    RunDir.open(run.path).log_metrics({"kind": "eval", "step": 1600, "badge_rate": 0.25})
    run.close_metrics()
    assert len(list(run.path.glob("events.out.tfevents.*"))) == 1
    assert scalars_in(run.path) == {
        "world_model/loss": [(25, 2.5)],
        "world_model/seconds": [(25, 1.0)],
        "wm/loss": [(800, 1.5)],
        "behavior/return_scale": [(800, 3.0), (1600, 4.0)],
        "eval/badge_rate": [(1600, 0.25)],
    }
    # metrics.jsonl keeps every record as it was given.
    assert [r["kind"] for r in run.read_metrics()] == ["world_model", "agent", "agent", "note",
                                                       "eval", "eval"]  # fmt: skip

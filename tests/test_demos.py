"""A person's demonstrations: played through the loop's human-control path (play's own loop,
each button sent as the dashboard sends a key; scripted sequences stand in for the person),
kept with their subgoals, counted in the loop's status and the state panel, and cloned by
``pokedreamer train imitation --demos`` through the real CLI."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import cli
from textual.app import App, ComposeResult
from torch_setup import one_thread, seeded  # noqa: F401 (autouse fixtures)

from pokedreamer.agent.cloning import goal_rows, posterior_features
from pokedreamer.agent.demos import read_demos
from pokedreamer.agent.events import HumanAction, Quit, StatusEvent, StepEvent, TakeControl
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.play import SHIPPED_CHECKPOINT, make_loop
from pokedreamer.bench.person import record
from pokedreamer.config import Settings, load_settings
from pokedreamer.dashboard.widgets.state_panel import DemoTally, StatePanel
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import load_checkpoint

needs_shipped = pytest.mark.skipif(
    not SHIPPED_CHECKPOINT.with_suffix(".json").is_file(), reason="no shipped checkpoint"
)
# The fixture's opening, walked by hand: down the house's stairs and out of the door, then about
# the town; the same few presses again and again, as a person's play is.
WALK = ("down", "down", "left", "down", "down", "right", "down", "a") * 6


def settings_in(runs: Path, **extra: object) -> Settings:
    return load_settings(None, {"run.runs_dir": str(runs), "agent.record": False, **extra})


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Waits for ``condition``; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def play(runs: Path, name: str, buttons: Sequence[str]) -> AgentLoop:
    """``pokedreamer play``'s loop with a person pressing ``buttons``, one a step, the
    dashboard's way (HumanAction); returns it stopped."""
    loop = make_loop(settings_in(runs), name=name, human=True, train=False)
    for button in buttons:
        loop.send(HumanAction(button))
    loop.run(len(buttons))
    return loop


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 48 steps a person played from the start of an episode."""
    runs = tmp_path_factory.mktemp("runs")
    play(runs, "played", WALK)
    return runs / "played"


# --- recording and counting ------------------------------------------------------------------


def test_taking_control_records_steps_with_subgoals_and_the_status_counts_them(
    tmp_path: Path,
) -> None:
    loop = AgentLoop(settings_in(tmp_path), RunDir.create(settings_in(tmp_path), "h"), train=False)
    events = loop.bus.subscribe(maxlen=10_000, kinds=(StepEvent, StatusEvent))
    assert loop.status().demo_steps == 0
    thread = threading.Thread(target=loop.run, args=(None,), daemon=True)
    thread.start()
    wait_for(lambda: loop.steps >= 5)
    loop.send(TakeControl(True))
    for button in ("down", "down", "right", "a"):
        loop.send(HumanAction(button))
    wait_for(lambda: loop.demonstrations.steps == 4)
    loop.send(TakeControl(False))
    handed_back = loop.steps
    wait_for(lambda: loop.steps >= handed_back + 3)
    loop.send(Quit())
    thread.join(60)
    assert not thread.is_alive()

    got = events.drain()
    statuses = [e for e in got if isinstance(e, StatusEvent)]
    assert statuses[0].demo_steps == 0 and statuses[-1].demo_steps == 4
    back = next(e for e in statuses if e.message == "the agent has control")
    assert back.demo_steps == 4 and not back.human
    # The dashboard's count, from the same events: each status's count and the person's steps
    # after it, so it grows with each press, not only when control changes hands.
    tally, seen = DemoTally(), []
    for event in got:
        if isinstance(event, StatusEvent):
            tally.status(event)
        elif isinstance(event, StepEvent):
            tally.step(event)
            seen.append(tally.steps)
    assert seen[-1] == tally.steps == 4 and sorted(set(seen)) == [0, 1, 2, 3, 4]

    run = loop.run_dir.path
    lines = [json.loads(x) for x in (run / "demos.jsonl").read_text().splitlines()]
    assert lines[0] == {"format": "pokedreamer-demos", "version": 1}
    steps = lines[1:]
    assert [s["action"] for s in steps] == [
        loop.buttons.index(b) for b in ("down", "down", "right", "a")
    ]
    assert [s["episode_step"] - steps[0]["episode_step"] for s in steps] == [0, 1, 2, 3]
    assert all(s["subgoal"] and s["subgoal"]["kind"] for s in steps)  # the planner's, then
    demos = read_demos(run, loop.buttons)
    assert len(demos) == 4 and demos.starts.tolist() == [True, False, False, False]
    assert demos.labels.tolist() == [*(loop.buttons.index(b) for b in ("down", "right", "a")), -1]

    # A later loop on the run counts what is on disk before anyone presses a button.
    again = AgentLoop(settings_in(tmp_path), RunDir.open(run), train=False)
    assert again.status().demo_steps == 4

    async def scenario() -> None:
        panel = StatePanel(id="state")

        class One(App[None]):
            def compose(self) -> ComposeResult:
                yield panel

        async with One().run_test(size=(60, 20)) as pilot:
            panel.demos.status(again.status())
            panel.show(None)
            await pilot.pause()
            assert "demonstrations 4 steps" in str(panel.render())

    asyncio.run(scenario())


def test_a_new_session_and_a_gap_start_new_stretches(tmp_path: Path) -> None:
    first = play(tmp_path, "two", ["down", "down"])
    second = AgentLoop(settings_in(tmp_path), RunDir.open(first.run_dir.path), train=False)
    for button in ("right", "a", "up"):
        second.send(HumanAction(button))
    second.send(TakeControl(True))
    second.run(3)
    demos = read_demos(first.run_dir.path, first.buttons)
    # Each session's steps begin a stretch (the filter starts again there); the press that
    # ends a stretch has no next step to label it with.
    assert demos.starts.tolist() == [True, False, True, False, False]
    assert (demos.labels >= 0).tolist() == [True, False, True, True, False]
    assert second.status().demo_steps == 5
    # A person who hands control back and takes it again leaves a gap in the episode's steps.
    log = first.run_dir.path / "demos.jsonl"
    lines = log.read_text().splitlines()
    step = json.loads(lines[-1])
    lines[-1] = json.dumps({**step, "episode_step": step["episode_step"] + 5})
    log.write_text("\n".join(lines) + "\n")
    gapped = read_demos(first.run_dir.path, first.buttons)
    assert gapped.starts.tolist() == [True, False, True, False, True]
    assert (gapped.labels >= 0).tolist() == [True, False, True, False, False]


# --- cloning them through the CLI ------------------------------------------------------------


def action_probabilities(checkpoint: Path, run: Path, tmp: Path) -> np.ndarray:
    """The probability the checkpoint's actor gives each demonstrated button, on the world
    model's features of the recorded screens under their subgoals."""
    settings = settings_in(tmp)
    loop = AgentLoop(settings, RunDir.make(tmp / "probe"), checkpoint=checkpoint, train=False)
    demos = read_demos(run, loop.buttons)
    learner = loop.learner
    feats = posterior_features(learner.world_model, demos, learner.device)
    goals = goal_rows(demos, loop.planners.facts)
    labelled = np.flatnonzero(demos.labels >= 0)
    with torch.no_grad():
        log_probs = learner.behavior.actor(feats[labelled], goals[labelled])
    chosen = log_probs[torch.arange(len(labelled)), torch.from_numpy(demos.labels[labelled])]
    return chosen.exp().numpy()


@needs_shipped
def test_train_imitation_clones_the_demonstrations_and_continues(
    played: Path, tmp_path: Path
) -> None:
    first = cli("train", "imitation", "--run", "cloned", "--demos", str(played), "--updates", "150")
    assert first.returncode == 0, first.stderr
    assert "cloning 47 pairs of 48 demonstration steps" in first.stdout
    assert "done: 150 updates (150 in all)" in first.stdout
    saved = Path("runs/cloned/checkpoints/agent-000000000")
    tensors, meta = load_checkpoint(saved)
    shipped, _ = load_checkpoint(SHIPPED_CHECKPOINT)
    assert meta["kind"] == "agent"
    actor = [k for k in tensors if k.startswith("behavior/module/actor.")]
    critic = [k for k in tensors if k.startswith("behavior/module/critic.")]
    assert actor and critic
    # The world model is held fixed; only its state heads may differ, re-sized to the game
    # when the shipped checkpoint's predate them (they start untrained and nothing trains them).
    model = [k for k in tensors if k.startswith("model/") and "state_heads." not in k]
    assert model and all(torch.equal(tensors[k], shipped[k]) for k in model)
    assert all(torch.equal(tensors[k], shipped[k]) for k in critic)

    before = action_probabilities(SHIPPED_CHECKPOINT, played, tmp_path / "a")
    after = action_probabilities(saved, played, tmp_path / "b")
    # The actor now presses what the person pressed, where the shipped one often did not.
    assert after.mean() > 0.9 and after.mean() > before.mean() + 0.3
    assert (after > before).mean() > 0.9

    again = cli("train", "imitation", "--run", "cloned", "--demos", str(played), "--updates", "50")
    assert again.returncode == 0, again.stderr
    assert "done: 50 updates (200 in all)" in again.stdout
    metrics = [json.loads(x) for x in Path("runs/cloned/metrics.jsonl").read_text().splitlines()]
    cloning = [m for m in metrics if m["kind"] == "cloning"]
    assert [m["update"] for m in cloning] == [100, 150, 200]
    assert cloning[-1]["demos"] == [str(played)] and cloning[-1]["imitation/accuracy"] > 0.8


def test_train_imitation_refuses_demonstrations_it_cannot_use_in_one_line(played: Path) -> None:
    runs = Path("runs")
    bad = {name: runs / name for name in ("old", "noop", "chunk", "line", "newer")}
    for path in bad.values():
        shutil.copytree(played, path)
    (runs / "empty").mkdir()
    (bad["old"] / "demos.jsonl").unlink()
    config = bad["noop"] / "config.toml"
    config.write_text(config.read_text().replace("noop = false", "noop = true"))
    next((bad["chunk"] / "demos").glob("chunk-*.npz")).write_bytes(b"not a chunk")
    with (bad["line"] / "demos.jsonl").open("a") as f:
        f.write('{"episode": 0, "action": 4}\n')
    log = bad["newer"] / "demos.jsonl"
    log.write_text(log.read_text().replace('"version": 1', '"version": 7', 1))

    expected = {
        "nowhere": "--demos nowhere: no run nowhere in runs and no such folder; check it",
        "empty": "runs/empty has no demonstrations: record some with pokedreamer play, or "
        "press h in the dashboard to take control",
        "old": "runs/old/demos holds 48 steps but runs/old/demos.jsonl is missing (an older "
        "pokedreamer kept no subgoals with them): record the demonstrations again",
        "noop": "runs/noop's demonstrations were played with the buttons "
        "a,b,start,select,up,down,left,right,noop, these settings have "
        "a,b,start,select,up,down,left,right: use the env settings they were made with",
        "chunk": "runs/chunk/demos/chunk-0-000000000.npz is damaged (not an .npz archive): "
        "remove it",
        "line": "runs/line/demos.jsonl line 50 is not a demonstration step (episode_step: "
        "Field required; subgoal: Field required)",
        "newer": "runs/newer/demos.jsonl has format version 7, newer than this pokedreamer "
        "reads (up to 1): train on it with the pokedreamer that wrote it, or upgrade",
    }
    for name, line in expected.items():
        result = cli("train", "imitation", "--run", "out", "--demos", name)
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.strip().splitlines() == [f"error: {line}"], name
    steps = cli("train", "imitation", "--run", "out", "--demos", str(played), "--steps", "9")
    assert steps.stderr.strip() == "error: --steps is for DAgger; with --demos give --updates"
    assert not (runs / "out").exists()  # refused before anything was made


def test_reading_refuses_steps_and_lines_that_disagree(played: Path, tmp_path: Path) -> None:
    run = tmp_path / "cut"
    shutil.copytree(played, run)
    log = run / "demos.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-3]) + lines[-3][:10])  # killed mid-line: that line is left out
    with pytest.raises(UserError, match=r"disagree \(48 steps against 45 lines\)"):
        read_demos(run, load_settings(None, {}).env.action_names)


@needs_shipped
def test_the_scripted_person_plays_the_quest_through_the_human_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stand-in for a person that docs/benchmarks.md measures cloning with."""
    monkeypatch.setenv("POKEDREAMER_AGENT__RECORD", "false")
    result = record("scripted", 40, seed=None)
    assert result["demo_steps"] == 40
    demos = read_demos(Path("runs/scripted"), load_settings(None, {}).env.action_names)
    assert demos.pairs == 39 and demos.subgoals[0] is not None
    # The demonstrator leaves the house first: its presses are the walk to the door.
    assert {int(a) for a in demos.actions[:3]} <= {4, 5, 6, 7}

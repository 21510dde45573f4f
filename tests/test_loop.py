"""The agent loop on the fixture cartridge with the tiny preset: the CLI end to end, exact resume,
steering commands, events, and refusal of bad checkpoints."""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from clirun import cli
from fixture_graph import CARTRIDGE_NODES, HOUSE, ROUTE
from pickle_probe import Exploit
from tiny_run import TINY, TINY_ENV

from pokedreamer.agent.episodes import EpisodeReader, list_episodes
from pokedreamer.agent.events import (
    EventBus,
    HumanAction,
    ImaginedEvent,
    MetricsEvent,
    Pause,
    PlanEvent,
    Quit,
    Resume,
    SaveCheckpoint,
    SingleStep,
    StatusEvent,
    StepEvent,
    TakeControl,
    UsePrompts,
)
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.agent.subgoal_pool import SubgoalPool
from pokedreamer.config import Settings, load_settings
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.graph import GRAPH_FILE, MapGraph
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir


def settings(**extra: object) -> Settings:
    return load_settings(None, {**TINY, **extra})


@pytest.mark.slow  # half a minute or more of CLI runs: make test-slow
def test_run_headless_resume_and_read_the_episode_back(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in TINY_ENV.items():
        monkeypatch.setenv(key, value)
    first = cli("run", "--headless", "--steps", "200", "--name", "e2e")
    assert first.returncode == 0, first.stderr
    assert "done: 200 steps" in first.stdout
    run = Path("runs/e2e")
    meta = json.loads((run / "checkpoints" / "agent-000000200.json").read_text())["meta"]
    assert meta["steps"] == 200 and meta["updates"] > 0
    seen = MapGraph.load(run / GRAPH_FILE).nodes
    assert seen[HOUSE] == CARTRIDGE_NODES[0]

    again = cli("run", "--headless", "--steps", "200", "--name", "e2e")
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = cli("run", "--headless", "--steps", "100", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    meta2 = json.loads((run / "checkpoints" / "agent-000000300.json").read_text())["meta"]
    assert meta2["steps"] == 300 and meta2["updates"] > meta["updates"]
    assert MapGraph.load(run / GRAPH_FILE).nodes.items() >= seen.items()  # the resume kept it

    episodes = list_episodes(run)
    assert [e.number for e in episodes] == [1, 2]
    reader = EpisodeReader(episodes[0].path)
    steps = reader.steps()
    assert len(steps) == 201 == len(reader.frames())  # the first frame, then 200 steps
    assert steps[0].action is None and all(s.action is not None for s in steps[1:])
    assert steps[1].subgoal and steps[1].state.map_name == "REDS_HOUSE_1F"  # the mat is 4 away
    plans = reader.plans()
    assert plans and plans[0]["source"] == "heuristic" and plans[0]["step"] == 0
    assert reader.ended
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("behavior/actor_loss" in m for m in metrics)

    evaluated = cli("eval", "agent", "--checkpoint", str(run), "--episodes", "2",
                    "--max-steps", "40", "--envs", "1", "--out", "evalrun", "--json",
                    "--map-graph", str(run))  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["map_graph"] == {"start": str(run), "maps": len(seen)}
    assert report["checkpoint"].endswith("agent-000000300")
    assert set(report["variants"]) == {"agent", "no-planner", "random"}
    for variant in report["variants"].values():
        # Fresh seeds by default, clear of the 0, 1, ... the run above trained on.
        assert [e["seed"] for e in variant["episodes"]] == [10_000, 10_001]
        assert all(e["steps"] == 40 for e in variant["episodes"])  # no badge in 40 steps
        assert variant["success_rate"] == 0.0
        assert variant["stages"]["badge"]["interval_95"] == [0.0, 0.658]  # Wilson, 0 of 2
        assert variant["stages"]["left_house"]["reached"] in (0.0, 0.5, 1.0)
    table = Path("evalrun/report.md").read_text()
    assert table.startswith("# Agent evaluation")
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 5 and len({row.count("|") for row in rows}) == 1

    collected = cli("collect", "--run", "fromagent", "--steps", "30", "--envs", "1",
                    "--policy", str(run))  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    assert "runs/fromagent/replay holds 31 steps" in collected.stdout


def test_eval_agent_plays_the_floor_player_through_the_cli(tmp_path: Path) -> None:
    """The floor variant: the demonstrator pacing the grass it finds, on the cartridge."""
    done = cli("eval", "agent", "--variants", "floor", "--episodes", "1", "--max-steps", "600",
               "--envs", "1", "--out", str(tmp_path / "eval"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| floor | 100% [21%–100%] (" in done.stdout  # left the house, and how fast
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["variants"]["floor"]["stages"]["badge"]["reached"] == 1.0
    assert report["variants"]["floor"]["planner"] == "heuristic"


def test_eval_agent_says_which_map_graph_it_starts_from(tmp_path: Path) -> None:
    quick = ("eval", "agent", "--variants", "random", "--episodes", "1", "--max-steps", "3",
             "--envs", "1", "--out", str(tmp_path / "eval"))  # fmt: skip
    empty = cli(*quick)
    assert empty.returncode == 0, empty.stderr
    assert "map graph at the start: empty (grown over the episodes)" in empty.stdout
    assert "| random | 0% [0%–79%] |" in empty.stdout  # each rate with its 95% interval
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["map_graph"] == {"start": "empty", "maps": 0}
    assert report["variants"]["random"]["maps_seen"] >= 1  # the house, read at the reset
    grown = tmp_path / "eval" / "random"
    given = cli(*quick, "--map-graph", str(grown))
    assert given.returncode == 0, given.stderr
    assert f"map graph at the start: `{grown}` (" in given.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "pokedreamer-map-graph", "version": 1, "maps": [{"id": 1}]}')
    refused = cli(*quick, "--map-graph", str(bad))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "malformed map graph" in refused.stderr


def test_resume_takes_the_update_the_run_would_have_taken(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path)})
    run = RunDir.create(s, "exact")
    loop = AgentLoop(s, run)
    loop.run(80)  # saves at the end
    # The run goes on where it stopped; a resumed copy must take the very same update.
    a = loop.train_step()
    resumed = AgentLoop(s, run)
    assert resumed.steps == 80 and resumed.trainer.updates == loop.trainer.updates - 1
    b = resumed.train_step()
    assert a.keys() == b.keys()
    differ = {k: (a[k], b[k]) for k in a if not np.isclose(a[k], b[k], rtol=1e-5, atol=1e-6)}
    assert not differ, differ


def test_the_map_graph_is_kept_in_the_run_and_a_resume_goes_on_from_it(tmp_path: Path) -> None:
    """The envs' maps grow the run's graph, which the loop writes beside its checkpoints; a
    resumed run starts from it (here with a map only the file knows) and keeps it."""
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.train_ratio": 0.0})
    run = RunDir.create(s, "graph")
    loop = AgentLoop(s, run, train=False)
    assert len(loop.map_graph) == 0 and loop.planners.facts.graph is loop.map_graph
    loop.run(4)
    saved = MapGraph.load(run.path / GRAPH_FILE)
    assert HOUSE in saved and saved.node(HOUSE) == CARTRIDGE_NODES[0]
    # and the ground their screens showed: the house's walls, its floor and mats walkable
    assert len(saved.ground(HOUSE)) >= 80 and {(0, 1), (9, 5), (2, 2)} <= saved.walls(HOUSE)
    assert saved.ground(HOUSE)[(1, 1)] and saved.ground(HOUSE)[(4, 9)]
    saved.add(CARTRIDGE_NODES[3])  # the gym, as if an earlier stretch had seen it
    saved.save(run.path / GRAPH_FILE)
    resumed = AgentLoop(s, run, train=False)
    assert resumed.map_graph.nodes == saved.nodes and resumed.planners.facts.graph is not None
    assert resumed.learner.facts.route_to(ROUTE)  # imagined shaping routes on the same graph
    resumed.run(2)
    assert MapGraph.load(run.path).nodes == saved.nodes
    assert MapGraph.load(run.path).walls(HOUSE) == saved.walls(HOUSE)
    (run.path / GRAPH_FILE).write_text("[]")
    with pytest.raises(UserError, match="is not a map graph"):
        AgentLoop(s, run, train=False)


def test_behaviour_learning_knows_where_battles_have_started(tmp_path: Path) -> None:
    """After each world-model update the subgoal pool knows the maps where the replay holds a
    battle starting, so a battle to win is rehearsed there outside a battle too."""
    s = settings(**{"run.runs_dir": str(tmp_path)})
    loop = AgentLoop(s, RunDir.create(s, "battles"))
    loop.run(60)  # the house and the town: no battle
    assert loop.learner.pool.battle_maps.tolist() == []
    route = loop.learner.facts.map_id("ROUTE_1")
    calm = np.zeros(VECTOR_SIZE, np.float32)
    calm[VECTOR_FIELDS.index("map_id")] = route / 255
    calm[VECTOR_FIELDS.index("battle_none")] = 1.0
    wild = calm.copy()
    wild[VECTOR_FIELDS.index("battle_none")], wild[VECTOR_FIELDS.index("battle_wild")] = 0, 1
    frame = np.zeros(FRAME_SHAPE, np.uint8)
    for t in range(20):  # a stream of its own, as another env's
        loop.learner.replay.add(9, frame, calm if t < 10 else wild, 0, 0.0, is_first=t == 0)
    loop.train_step()
    assert loop.learner.pool.battle_maps.tolist() == [route]


@pytest.mark.parametrize("pairing", ["start", "subgoal"])
def test_agent_pairing_chooses_how_rows_meet_subgoals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pairing: str
) -> None:
    """agent.pairing = "subgoal" draws every behaviour update's rows by subgoal
    (SubgoalPool.draw), imagine_batch of them even from fewer usable starts; "start" pairs
    the drawn starts (SubgoalPool.pair)."""
    calls: dict[str, int] = {"pair": 0, "draw": 0}
    rows: list[int] = []
    pair, draw = SubgoalPool.pair, SubgoalPool.draw

    def counted_pair(self, *args):  # type: ignore[no-untyped-def]
        calls["pair"] += 1
        return pair(self, *args)

    def counted_draw(*args):  # type: ignore[no-untyped-def]
        calls["draw"] += 1
        drawn = draw(*args)
        rows.append(len(drawn[1]))
        return drawn

    monkeypatch.setattr(SubgoalPool, "pair", counted_pair)
    monkeypatch.setattr(SubgoalPool, "draw", staticmethod(counted_draw))
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.pairing": pairing,
                    "agent.imagine_batch": 40})  # fmt: skip
    loop = AgentLoop(s, RunDir.create(s, pairing))
    loop.run(64)
    assert loop.learner.trainer.updates > 0
    other = "pair" if pairing == "subgoal" else "draw"
    assert calls[other] == 0 and calls["draw" if pairing == "subgoal" else "pair"] > 0
    assert set(rows) <= {40}  # 2 x 16 replayed steps hold fewer than 40 usable starts


def test_pairing_by_subgoal_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """POKEDREAMER_AGENT__PAIRING selects the pairing for a run, which keeps it (its config);
    a value it does not know is refused in one line."""
    for key, value in TINY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POKEDREAMER_AGENT__PAIRING", "subgoal")
    made = cli("run", "--headless", "--steps", "64", "--name", "pairs")
    assert made.returncode == 0, made.stderr
    assert load_settings(Path("runs/pairs/config.toml"), {}).agent.pairing == "subgoal"
    monkeypatch.setenv("POKEDREAMER_AGENT__PAIRING", "starts")
    refused = cli("run", "--headless", "--steps", "8", "--name", "bad")
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and "POKEDREAMER_AGENT__PAIRING" in line, line


def _run_in_thread(loop: AgentLoop, steps: int | None) -> threading.Thread:
    thread = threading.Thread(target=loop.run, args=(steps,), daemon=True)
    thread.start()
    return thread


def _wait(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_commands_pause_step_human_control_checkpoint_and_quit(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.train_ratio": 0.0})
    bus = EventBus()
    events = bus.subscribe(maxlen=10_000)
    loop = AgentLoop(s, RunDir.create(s, "steer"), bus=bus)
    loop.send(Pause())
    thread = _run_in_thread(loop, None)
    _wait(lambda: loop.paused and loop.driver is not None)
    time.sleep(0.2)
    assert loop.steps == 0
    loop.send(SingleStep(3))
    _wait(lambda: loop.steps == 3)
    time.sleep(0.2)
    assert loop.steps == 3

    loop.send(TakeControl(True))
    loop.send(Resume())
    for button in ("down", "down", "right"):
        loop.send(HumanAction(button))
    _wait(lambda: loop.steps == 6)
    time.sleep(0.2)
    assert loop.steps == 6  # no more buttons: env 0 waits for the person
    loop.send(TakeControl(False))
    _wait(lambda: loop.steps >= 20)
    loop.send(SaveCheckpoint())
    loop.send(Quit())
    thread.join(20)
    assert not thread.is_alive()

    got = events.drain()
    kinds = {type(e) for e in got}
    assert {StepEvent, StatusEvent, PlanEvent, MetricsEvent} <= kinds or {
        StepEvent,
        StatusEvent,
        PlanEvent,
    } <= kinds
    steps = [e for e in got if isinstance(e, StepEvent)]
    human = [e.button for e in steps if e.human]
    assert human == ["down", "down", "right"]
    assert steps[0].frame.shape == (144, 160) and steps[0].subgoals
    statuses = [e for e in got if isinstance(e, StatusEvent)]
    assert any("checkpoint saved" in e.message for e in statuses)
    assert statuses[-1].finished
    # The person's steps are kept as demonstrations.
    assert (loop.run_dir.path / "demos").is_dir() and len(loop.demos or []) == 3
    with pytest.raises(ValueError, match="unknown button"):
        loop.send(HumanAction("turbo"))


def test_a_watcher_reads_the_loop_through_its_protocol(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path), "env.noop": True})
    loop = AgentLoop(s, RunDir.create(s, "watched"), train=False)
    control: LoopControl = loop
    status = control.status("hello")
    assert status.buttons == (*s.env.buttons, "noop") and status.message == "hello"
    assert not status.paused and status.planner == "heuristic" and not status.training
    assert control.prompts is None
    with pytest.raises(AttributeError):
        loop.prompts = None  # type: ignore[misc]
    (tmp_path / "mine").mkdir()
    events = loop.bus.subscribe(kinds=(StatusEvent,))
    loop.send(UsePrompts(str(tmp_path / "mine")))
    loop.send(Pause())
    loop.send(Quit())
    loop.run(None)  # applies the commands before its first step
    assert control.prompts is not None and control.prompts.prompts_dir == tmp_path / "mine"
    assert loop.steps == 0 and loop.paused
    statuses = events.drain()
    assert statuses[0].message == "started" and not statuses[0].paused
    assert statuses[-1].finished and statuses[-1].paused


def test_imagined_frames_only_when_someone_listens(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.train_ratio": 0.0})
    bus = EventBus()
    frames = bus.subscribe(kinds=(ImaginedEvent,))
    loop = AgentLoop(s, RunDir.create(s, "imagine"), bus=bus)
    loop.run(10)
    got = frames.drain()
    assert got and all(e.frame.shape == (144, 160) and e.frame.max() <= 3 for e in got)


def test_more_envs_act_in_one_batch(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.envs": 2, "agent.train_ratio": 0.0})
    loop = AgentLoop(s, RunDir.create(s, "two"))
    result = loop.run(40)
    assert result.steps == 40 and result.episodes == 2
    episodes = list_episodes(loop.run_dir)
    metas = sorted(json.loads((e.path / "meta.json").read_text())["env"] for e in episodes)
    assert metas == [0, 1]


def test_bad_checkpoints_are_refused_in_one_line(tmp_path: Path) -> None:
    pickled = tmp_path / "evil.safetensors"
    pickled.write_bytes(pickle.dumps(Exploit()))
    (tmp_path / "evil.json").write_text("{}")
    for path in (pickled, tmp_path / "missing", tmp_path / "evil.json"):
        result = cli("run", "--headless", "--steps", "5", "--checkpoint", str(path))
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr

"""Episode recorder and reader: round trips, crash leftovers, numbering, corrupt folders."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pokedreamer.agent.episodes import (
    FRAMES,
    META,
    PLANS,
    STEPS,
    SUMMARY,
    EpisodeReader,
    EpisodeRecorder,
    episode_meta,
    list_episodes,
    open_episode,
    state_from_json,
    state_to_json,
)
from pokedreamer.config import Settings
from pokedreamer.env.frames import PACKED_FRAME_BYTES
from pokedreamer.env.state import GameState, PartyMon
from pokedreamer.errors import UserError
from pokedreamer.planner.service import PlanRecord
from pokedreamer.rundir import RunDir


def make_state(i: int) -> GameState:
    rng = np.random.default_rng(i)
    return GameState(
        map_id=i % 248,
        map_name=f"MAP_{i}",
        x=i % 20,
        y=(3 * i) % 18,
        facing=("down", "up", "left", "right")[i % 4],
        battle="wild" if i % 7 == 0 else "none",
        enemy_hp=i % 30,
        enemy_max_hp=30,
        text_shown=i % 3 == 0,
        text=("POKéMON!", f"line {i}") if i % 3 == 0 else (),
        party=tuple(PartyMon(j + 1, 5 + j, 10 + i % 10, 20) for j in range(i % 4)),
        badges=i % 256,
        money=i * 37,
        # Random bytes, not UTF-8: a codec that went through text would mangle them.
        event_flags=rng.integers(0, 256, 320, dtype=np.uint8).tobytes(),
        pokedex_owned=i % 152,
        pokedex_seen=(2 * i) % 152,
        bag=tuple((k + 1, k + i % 5) for k in range(i % 3)),
    )


def make_frame(i: int) -> np.ndarray:
    return np.random.default_rng(1000 + i).integers(0, 4, (144, 160), dtype=np.uint8)


def record(run: RunDir, steps: int, plans: int = 0, end: bool = True) -> EpisodeRecorder:
    recorder = EpisodeRecorder(run)
    recorder.start({"seed": 7})
    for i in range(steps):
        action = None if i == 0 else i % 8
        terms = {"explore": 0.01 * i, "subgoal": -0.5}
        recorder.step(make_frame(i), action, sum(terms.values()), terms, make_state(i), f"goal {i}")
        if plans and i % (steps // plans) == 0:
            recorder.plan(PlanRecord(i, "start", "heuristic", {"goal": f"g{i}", "subgoals": []}))
    if end:
        recorder.end({"return": 1.5})
    else:
        recorder.close()
    return recorder


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir(tmp_path / "runs" / "r")


def test_state_json_round_trip_is_exact() -> None:
    for i in (0, 3, 7, 21):
        state = make_state(i)
        encoded = json.loads(json.dumps(state_to_json(state)))
        assert state_from_json(encoded) == state
        # Everything but the flags is what pydantic's own JSON mode writes.
        expected = state.model_dump(mode="json", exclude={"event_flags"})
        assert {k: v for k, v in encoded.items() if k != "event_flags"} == expected
        assert encoded["event_flags"] == state.event_flags.hex()


def test_fifty_steps_read_back_equal(run: RunDir) -> None:
    recorder = record(run, 50, plans=5)
    assert recorder.number == 1
    episode = EpisodeReader(recorder.path)
    assert len(episode) == 50 and episode.ended
    assert episode.meta["seed"] == 7 and episode.meta["episode"] == 1
    assert episode.meta["start_time"] <= time.time()
    assert episode.summary is not None
    assert episode.summary["return"] == 1.5 and episode.summary["steps"] == 50

    frames = episode.frames()
    assert len(frames) == 50
    for i in (0, 1, 25, 49):
        assert np.array_equal(frames[i], make_frame(i))
        assert np.array_equal(episode.frame(i), make_frame(i))
    assert np.array_equal(frames[10:12], np.stack([make_frame(10), make_frame(11)]))
    assert sum(1 for _ in frames) == 50

    steps = episode.steps()
    assert [s.index for s in steps] == list(range(50))
    assert steps[0].action is None and steps[9].action == 1
    for i, step in enumerate(steps):
        assert step.state == make_state(i)
        assert step.subgoal == f"goal {i}"
        assert step.terms == {"explore": pytest.approx(0.01 * i), "subgoal": -0.5}
        assert step.reward == pytest.approx(0.01 * i - 0.5)

    plans = episode.plans()
    assert [p["step"] for p in plans] == [0, 10, 20, 30, 40]
    expected = PlanRecord(
        10, "start", "heuristic", {"goal": "g10", "subgoals": []}, wall_time=plans[1]["wall_time"]
    )
    # A plan made without an LLM call has no mode, and its line leaves the field out.
    assert plans[1] == {k: v for k, v in asdict(expected).items() if k != "mode"}


def test_frames_are_fixed_records(run: RunDir) -> None:
    recorder = record(run, 3)
    assert (recorder.path / FRAMES).stat().st_size == 3 * PACKED_FRAME_BYTES


def test_extra_and_numpy_values(run: RunDir) -> None:
    recorder = EpisodeRecorder(run)
    recorder.start({})
    recorder.step(
        make_frame(0),
        np.int64(3),  # type: ignore[arg-type]
        np.float32(0.5),  # type: ignore[arg-type]
        {"a": np.float32(0.25)},  # type: ignore[dict-item]
        make_state(0),
        None,
        {"value": np.float32(1.5), "logits": np.zeros(2), "raw": b"\xff\x00"},
    )
    recorder.end({})
    [step] = EpisodeReader(recorder.path).steps()
    assert (step.action, step.reward, step.terms) == (3, 0.5, {"a": 0.25})
    assert step.subgoal is None
    assert step.extra == {"value": 1.5, "logits": [0.0, 0.0], "raw": "ff00"}


def test_a_batch_of_frames_is_refused(run: RunDir) -> None:
    recorder = EpisodeRecorder(run)
    recorder.start({})
    with pytest.raises(ValueError, match="one \\(144, 160\\) screen"):
        recorder.step(np.zeros((2, 144, 160), np.uint8), 0, 0.0, {}, make_state(0), None)
    recorder.close()
    assert len(EpisodeReader(recorder.path)) == 0


def test_killed_mid_write_reads_the_complete_prefix(run: RunDir) -> None:
    recorder = record(run, 20, plans=4, end=False)
    path = recorder.path
    assert path is not None
    # A kill in the middle of step 20's writes: half its frame and half its line reached the file.
    with (path / FRAMES).open("ab") as fh:
        fh.write(b"\x55" * (PACKED_FRAME_BYTES // 2))
    with (path / STEPS).open("ab") as fh:
        fh.write(b'{"i":20,"t":1.0,"action":3,"rew')
    with (path / PLANS).open("ab") as fh:
        fh.write(b'{"step":20,"tri')
    episode = EpisodeReader(path)
    assert len(episode) == 20 and not episode.ended and episode.summary is None
    assert len(episode.frames()) == 20
    assert [s.state for s in episode.steps()] == [make_state(i) for i in range(20)]
    assert len(episode.plans()) == 4

    # Cut mid-line and mid-record at an earlier step: steps.jsonl decides (12 whole lines).
    lines = (path / STEPS).read_bytes().splitlines(keepends=True)
    (path / STEPS).write_bytes(b"".join(lines[:12]) + lines[12][:40])
    with (path / FRAMES).open("r+b") as fh:
        fh.truncate(15 * PACKED_FRAME_BYTES + 100)
    episode = EpisodeReader(path)
    assert len(episode) == 12 and len(episode.steps()) == 12 and len(episode.frames()) == 12
    assert np.array_equal(episode.frames()[11], make_frame(11))

    # A frame cut short limits the count too, even with more lines.
    with (path / FRAMES).open("r+b") as fh:
        fh.truncate(7 * PACKED_FRAME_BYTES + 5)
    episode = EpisodeReader(path)
    assert len(episode) == 7 and [s.index for s in episode.steps()] == list(range(7))
    [info] = list_episodes(run)
    assert (info.steps, info.ended) == (7, False)


def test_a_killed_process_leaves_readable_logs(run: RunDir) -> None:
    # A real kill: the child is stopped by SIGKILL between steps, with no chance to clean up.
    import signal
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_episodes import make_frame, make_state\n"
        "from pokedreamer.agent.episodes import EpisodeRecorder\n"
        "from pokedreamer.rundir import RunDir\n"
        "r = EpisodeRecorder(RunDir(__import__('pathlib').Path(sys.argv[1])))\n"
        "r.start({})\n"
        "for i in range(10**9):\n"
        "    r.step(make_frame(i % 5), 1, 0.0, {}, make_state(i % 5), 'go')\n"
        "    if i == 30: print('ready', flush=True)\n"
    )
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(run.path), tests], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    [info] = list_episodes(run)
    assert info.steps > 30 and not info.ended
    episode = EpisodeReader(info.path)
    steps = episode.steps()
    assert len(steps) == len(episode.frames()) == info.steps
    assert steps[-1].state == make_state((len(steps) - 1) % 5)
    assert np.array_equal(episode.frames()[-1], make_frame((len(steps) - 1) % 5))


def test_numbering_continues_and_list_episodes(run: RunDir) -> None:
    assert list_episodes(run) == []
    record(run, 3)
    record(run, 2, end=False)
    # A crash while an episode was being set up leaves a hidden folder, which is not an episode.
    (run.episodes / ".new-crashed").mkdir()
    recorder = EpisodeRecorder(run)
    assert recorder.start({}) == 3
    recorder.step(make_frame(0), None, 0.0, {}, make_state(0), None)
    recorder.end({"why": "done"})
    assert recorder.start({}) == 4  # the same recorder goes on to the next episode
    recorder.close()
    assert sorted(p.name for p in run.episodes.iterdir() if not p.name.startswith(".")) == [
        "000001", "000002", "000003", "000004",
    ]  # fmt: skip
    infos = list_episodes(run)
    assert [(i.number, i.steps, i.ended) for i in infos] == [
        (1, 3, True), (2, 2, False), (3, 1, True), (4, 0, False),
    ]  # fmt: skip
    assert infos[2].summary is not None and infos[2].summary["why"] == "done"
    assert all(i.start_time and i.error is None for i in infos)
    assert open_episode(run).number == 4
    assert len(open_episode(run, 1)) == 3


def test_recorders_racing_for_numbers_get_distinct_ones(run: RunDir) -> None:
    from concurrent.futures import ThreadPoolExecutor

    recorders = [EpisodeRecorder(run) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        numbers = list(pool.map(lambda r: r.start({}), recorders))
    for recorder in recorders:
        recorder.close()
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    assert [EpisodeReader(r.path).meta["episode"] for r in recorders] == numbers
    assert not [p for p in run.episodes.iterdir() if p.name.startswith(".")]


def test_start_twice_without_end_is_refused(run: RunDir) -> None:
    recorder = EpisodeRecorder(run)
    recorder.start({})
    with pytest.raises(RuntimeError, match="end it first"):
        recorder.start({})
    recorder.close()
    with pytest.raises(RuntimeError, match="start"):
        recorder.step(make_frame(0), 0, 0.0, {}, make_state(0), None)


def test_plan_records_are_written_verbatim(run: RunDir) -> None:
    # Keeping the API key out of a prompt is the planner's job; the recorder must add or drop
    # nothing, so what the planner logged is exactly what is on disk.
    prompt = [
        {"role": "system", "content": "You plan.\nTwo lines, ünïcode."},
        {"role": "user", "content": "Location: PALLET_TOWN"},
    ]
    plan = PlanRecord(
        5, "new_map", "llm", {"goal": "x"}, prompt=prompt, raw_response='{"a": 1}', mode="schema"
    )
    recorder = EpisodeRecorder(run)
    recorder.start({})
    recorder.plan(plan)
    recorder.plan({"step": 6, "note": "a dict"})
    recorder.end({})
    lines = (recorder.path / PLANS).read_text(encoding="utf-8").splitlines()
    assert lines[0] == plan.json()
    assert "sk-" not in lines[0]
    assert EpisodeReader(recorder.path).plans() == [asdict(plan), {"step": 6, "note": "a dict"}]


def test_episode_meta_leaves_the_api_key_out(run: RunDir) -> None:
    settings = Settings.model_validate(
        {"planner": {"api_key": "sk-secret-123"}, "env": {"seed": 9}}
    )
    meta = episode_meta(settings, note="x")
    assert meta["seed"] == 9 and meta["note"] == "x"
    assert "api_key" not in meta["settings"]["planner"]
    recorder = EpisodeRecorder(run)
    recorder.start(meta)
    recorder.end({})
    assert "sk-secret" not in (recorder.path / META).read_text(encoding="utf-8")
    assert EpisodeReader(recorder.path).meta["settings"]["env"]["seed"] == 9


def one_line_error(exc: pytest.ExceptionInfo[UserError], folder: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(folder) in message
    return message


def test_missing_and_corrupt_episodes_are_one_line_user_errors(run: RunDir) -> None:
    missing = run.episodes / "000009"
    with pytest.raises(UserError) as exc:
        EpisodeReader(missing)
    assert one_line_error(exc, missing).startswith("episode not found")

    path = record(run, 4).path
    assert path is not None
    (path / META).write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError) as exc:
        EpisodeReader(path)
    assert "meta.json" in one_line_error(exc, path)
    [info] = list_episodes(run)
    assert info.error is not None and "meta.json" in info.error

    path = record(run, 4).path
    assert path is not None
    lines = (path / STEPS).read_bytes().splitlines(keepends=True)
    lines[1] = b"garbage\n"
    (path / STEPS).write_bytes(b"".join(lines))
    with pytest.raises(UserError) as exc:
        EpisodeReader(path).steps()
    assert "steps.jsonl line 2" in one_line_error(exc, path)

    lines[1] = lines[0]  # step 0 again, where step 1 should be
    (path / STEPS).write_bytes(b"".join(lines))
    with pytest.raises(UserError) as exc:
        EpisodeReader(path).steps()
    assert "steps.jsonl line 2: its index is 0" in one_line_error(exc, path)

    lines = (path / STEPS).read_bytes().splitlines(keepends=True)
    lines[1] = (json.dumps({**json.loads(lines[0]), "i": 1}) + "\n").encode()
    bad = json.loads(lines[2])
    bad["state"]["facing"] = "sideways"
    lines[2] = (json.dumps(bad) + "\n").encode()
    (path / STEPS).write_bytes(b"".join(lines))
    with pytest.raises(UserError) as exc:
        EpisodeReader(path).steps()
    assert "steps.jsonl line 3: state.facing: " in one_line_error(exc, path)

    (path / FRAMES).unlink()
    with pytest.raises(UserError) as exc:
        EpisodeReader(path)
    assert "frames.bin" in one_line_error(exc, path)

    (path / SUMMARY).write_text("[]", encoding="utf-8")
    with pytest.raises(UserError):
        EpisodeReader(path)


def test_open_episode_errors(run: RunDir) -> None:
    with pytest.raises(UserError, match="no recorded episodes"):
        open_episode(run)
    record(run, 1)
    record(run, 1)
    with pytest.raises(UserError, match=r"episode 5 not found .* \(it has 2, numbered 1 to 2\)"):
        open_episode(run, 5)


class CountingFile:
    """A recorder's open log, counting what reaches it: each write call's size, and flushes."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.name = fh.name
        self.writes: list[int] = []
        self.flushes = 0

    def write(self, data: Any) -> int:
        self.writes.append(len(memoryview(data).cast("B")))
        return self.fh.write(data)

    def flush(self) -> None:
        self.flushes += 1
        self.fh.flush()

    def fileno(self) -> int:
        return self.fh.fileno()

    def close(self) -> None:
        self.fh.close()


def test_a_step_is_one_unbuffered_write_per_log_and_no_sync(
    run: RunDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What keeps a step cheap (a budget of 50 µs), counted rather than timed: the frame and the
    # line each reach the OS in one write call on an unbuffered file, and nothing is flushed or
    # synced until ``end``.
    logs: dict[str, CountingFile] = {}
    real_open = Path.open

    def counting_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        fh = real_open(path, *args, **kwargs)
        if path.name not in (FRAMES, STEPS, PLANS):
            return fh
        assert isinstance(fh, io.FileIO), f"{path.name} is buffered"
        logs[path.name] = CountingFile(fh)
        return logs[path.name]

    syncs: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        syncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    recorder = EpisodeRecorder(run)
    with monkeypatch.context() as patch:
        patch.setattr(Path, "open", counting_open)
        recorder.start({})
    assert sorted(logs) == sorted((FRAMES, STEPS, PLANS))
    syncs.clear()  # meta.json's, at the start
    frame, state, terms = make_frame(0), make_state(3), {"explore": 0.1, "subgoal": 0.0}
    n = 400
    for i in range(n):
        recorder.step(frame, i % 8, 0.1, terms, state, "go to OAKS_LAB (5, 3)")
    assert logs[FRAMES].writes == [PACKED_FRAME_BYTES] * n
    assert recorder.path is not None
    lines = (recorder.path / STEPS).read_bytes().splitlines(keepends=True)
    assert logs[STEPS].writes == [len(line) for line in lines] and len(lines) == n
    assert logs[PLANS].writes == []
    assert sum(log.flushes for log in logs.values()) == 0 and syncs == []
    recorder.end({})
    assert len(syncs) >= 3  # at the end, the three logs at least (so the count above can see one)

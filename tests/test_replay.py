"""Replay: exact round trips, sequences that stay inside one stream's chunk, eviction, resume, and
corrupt chunk files skipped without ever being unpickled."""

from __future__ import annotations

import ast
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pickle_probe import CALLS, Exploit

from pokedreamer.env.frames import FRAME_SHAPE, PACKED_FRAME_BYTES, unpack_frames
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.errors import UserError
from pokedreamer.world_model.replay import Replay, _unpack

FRAMES = np.random.default_rng(0).integers(0, 4, size=(37, *FRAME_SHAPE), dtype=np.uint8)


def step_id(stream: int, t: int) -> int:
    # Carried in the reward (exact in float32), so every sampled step says where it came from.
    return stream * 100_000 + t


def fill(replay: Replay, stream: int, steps: range, episode: int = 7) -> None:
    """Adds steps t of `stream`, with values that are all functions of (stream, t)."""
    for t in steps:
        sid = step_id(stream, t)
        state = np.linspace(0, 1, VECTOR_SIZE, dtype=np.float32) * (sid % 97) / 97
        first = t % episode == 0
        replay.add(
            stream,
            FRAMES[sid % len(FRAMES)],
            state,
            0 if first else sid % 9,
            float(sid),
            is_first=first,
            is_terminal=t % episode == episode - 1,
        )


def check_batch(batch: dict[str, np.ndarray], b: int, length: int, episode: int = 7) -> None:
    """Every row is consecutive steps of one stream whose values match what `fill` added."""
    assert batch["frames"].shape == (b, length, *FRAME_SHAPE)
    assert batch["frames"].dtype == np.uint8
    assert batch["states"].shape == (b, length, VECTOR_SIZE)
    assert batch["states"].dtype == np.float32
    for name, dtype in [
        ("actions", np.int64),
        ("rewards", np.float32),
        ("is_first", np.bool_),
        ("is_terminal", np.bool_),
    ]:
        assert batch[name].shape == (b, length) and batch[name].dtype == dtype, name
    ids = batch["rewards"].astype(np.int64)
    streams, ts = ids // 100_000, ids % 100_000
    assert (streams == streams[:, :1]).all(), "a sequence mixes streams"
    assert (np.diff(ts, axis=1) == 1).all(), "a sequence is not consecutive steps"
    np.testing.assert_array_equal(batch["frames"], FRAMES[ids % len(FRAMES)])
    expected_states = (
        np.linspace(0, 1, VECTOR_SIZE, dtype=np.float32)
        * ((ids % 97) / 97).astype(np.float32)[..., None]
    )
    # Stored as float16: exact after the same rounding.
    np.testing.assert_array_equal(
        batch["states"], expected_states.astype(np.float16).astype(np.float32)
    )
    stored_first = ts % episode == 0
    # Every sequence starts as an episode does: reset, no action; `cut` says which did not.
    first = stored_first.copy()
    first[:, 0] = True
    np.testing.assert_array_equal(batch["is_first"], first)
    np.testing.assert_array_equal(batch["cut"], ~stored_first[:, 0])
    np.testing.assert_array_equal(batch["is_terminal"], ts % episode == episode - 1)
    np.testing.assert_array_equal(batch["actions"], np.where(first, 0, ids % 9))


def test_round_trip_and_shapes() -> None:
    replay = Replay(None, capacity=1000, chunk_length=32)
    fill(replay, 0, range(100))  # three full chunks and one open chunk of 4
    assert len(replay) == 100
    batch = replay.sample(16, 10)
    check_batch(batch, 16, 10)
    # The open chunk's 4 steps are sampled too.
    assert replay.num_sequences(4) == 3 * 29 + 1
    tail = replay.sample(200, 4)["rewards"].astype(np.int64)
    assert (tail[:, 0] == 96).any()


def test_bytes_per_step() -> None:
    replay = Replay(None, capacity=10, chunk_length=10)
    assert replay.bytes_per_step == PACKED_FRAME_BYTES + 2 * VECTOR_SIZE + 1 + 4 + 1 + 1 == 5827


def test_fast_unpack_matches_unpack_frames() -> None:
    packed = np.random.default_rng(1).integers(
        0, 256, size=(3, 5, PACKED_FRAME_BYTES), dtype=np.uint8
    )
    np.testing.assert_array_equal(_unpack(packed), unpack_frames(packed))
    replay = Replay(None, 10, 10)
    fill(replay, 0, range(10))
    sample = replay.sample(4, 3, packed=True)
    assert sample["frames"].shape == (4, 3, PACKED_FRAME_BYTES)
    ids = sample["rewards"].astype(np.int64)
    np.testing.assert_array_equal(unpack_frames(sample["frames"]), FRAMES[ids % len(FRAMES)])


def test_interleaved_streams_do_not_mix() -> None:
    replay = Replay(None, capacity=1000, chunk_length=16)
    for t in range(50):
        for stream in (0, 1, 5):
            fill(replay, stream, range(t, t + 1))
    assert len(replay) == 150
    batch = replay.sample(64, 8)
    check_batch(batch, 64, 8)
    assert set(np.unique(batch["rewards"].astype(np.int64) // 100_000)) == {0, 1, 5}


def test_sequences_never_cross_chunks_and_cover_every_start() -> None:
    replay = Replay(None, capacity=1000, chunk_length=10)
    fill(replay, 0, range(30))
    starts = replay.sample(2000, 4)["rewards"][:, 0].astype(np.int64)
    # Chunks hold t 0-9, 10-19, 20-29: a start past 6 in a chunk would run into the next one.
    assert set(starts.tolist()) == {c * 10 + s for c in range(3) for s in range(7)}
    assert replay.num_sequences(4) == 21
    assert replay.num_sequences(11) == 0
    with pytest.raises(ValueError, match="no sequence of 11 steps"):
        replay.sample(1, 11)


def test_same_seed_same_batch() -> None:
    a, b, c = (Replay(None, 1000, 16, seed=seed) for seed in (3, 3, 4))
    for replay in (a, b, c):
        fill(replay, 0, range(70))
    first, second = a.sample(8, 5), b.sample(8, 5)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert not np.array_equal(first["rewards"], c.sample(8, 5)["rewards"])


def test_bad_sizes_are_one_line_user_errors() -> None:
    with pytest.raises(UserError, match="capacity"):
        Replay(None, capacity=5, chunk_length=10)
    with pytest.raises(UserError, match="chunk length"):
        Replay(None, capacity=5, chunk_length=0)
    with pytest.raises(ValueError, match="state must have shape"):
        Replay(None, 10, 10).add(0, FRAMES[0], np.zeros(3), 0, 0.0, True)


def chunk_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_capacity_evicts_oldest_chunks_and_their_files(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=30, chunk_length=10)
    fill(replay, 0, range(55))
    # 5 full chunks + 5 open steps = 55 > 30: the three oldest go, leaving 2 chunks + 5 steps.
    assert len(replay) == 25
    assert chunk_files(tmp_path) == ["chunk-0-000000003.npz", "chunk-0-000000004.npz"]
    starts = replay.sample(500, 2)["rewards"].astype(np.int64)
    assert starts.min() >= 30


def test_resume_sees_the_same_chunks_and_samples_alike(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=1000, chunk_length=10, seed=11)
    for t in range(20):
        fill(replay, 0, range(t, t + 1))
        fill(replay, 3, range(t, t + 1))
    assert len(chunk_files(tmp_path)) == 4
    resumed = Replay(tmp_path, capacity=1000, chunk_length=10, seed=11)
    assert len(resumed) == len(replay) == 40
    a, b = replay.sample(32, 6), resumed.sample(32, 6)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    check_batch(b, 32, 6)


def test_resume_keeps_the_newest_chunks_within_capacity(tmp_path: Path) -> None:
    fill(Replay(tmp_path, capacity=1000, chunk_length=10), 0, range(50))
    resumed = Replay(tmp_path, capacity=25, chunk_length=10)
    assert len(resumed) == 20
    assert chunk_files(tmp_path) == ["chunk-0-000000003.npz", "chunk-0-000000004.npz"]


def test_flush_persists_open_steps_and_resume_does_not_repeat_them(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=1000, chunk_length=10)
    fill(replay, 0, range(15))
    assert chunk_files(tmp_path) == ["chunk-0-000000000.npz"]
    replay.flush()
    assert chunk_files(tmp_path) == ["chunk-0-000000000.npz", "chunk-0-000000001.npz"]

    resumed = Replay(tmp_path, capacity=1000, chunk_length=10)
    assert len(resumed) == 15
    fill(resumed, 0, range(15, 22))  # goes into a new chunk after the flushed 5 steps
    resumed.flush()
    again = Replay(tmp_path, capacity=1000, chunk_length=10)
    assert len(again) == 22
    ids = again.sample(400, 1)["rewards"].astype(np.int64).ravel()
    assert set(ids.tolist()) == set(range(22))
    # The flushed steps 10-14 and the new 15-21 sit in separate chunks: no sequence joins them.
    check_batch(again.sample(100, 5), 100, 5)
    assert again.num_sequences(5) == 6 + 1 + 3

    # The first run carrying on fills its open chunk and rewrites that file whole.
    fill(replay, 0, range(15, 20))
    assert len(Replay(tmp_path, capacity=1000, chunk_length=10)) == 20 + 7


def test_corrupt_and_foreign_files_are_skipped_never_unpickled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replay = Replay(tmp_path, capacity=1000, chunk_length=10)
    fill(replay, 0, range(20))
    good = (tmp_path / "chunk-0-000000001.npz").read_bytes()

    (tmp_path / "chunk-1-000000005.npz").write_bytes(b"\x00garbage" * 100)
    (tmp_path / "chunk-1-000000006.npz").write_bytes(good[: len(good) // 2])
    with open(tmp_path / "chunk-1-000000007.npz", "wb") as f:
        arrays = {k: np.load(tmp_path / "chunk-0-000000001.npz")[k] for k in ("states", "actions")}
        np.savez(
            f,
            frames=np.array([Exploit()] * 10, dtype=object),
            rewards=np.zeros(10, np.float32),
            is_first=np.zeros(10, bool),
            is_terminal=np.zeros(10, bool),
            **arrays,
        )
    with np.load(tmp_path / "chunk-0-000000001.npz") as npz:
        wrong = {k: npz[k] for k in npz.files}
    wrong["frames"] = wrong["frames"].astype(np.int64)
    with open(tmp_path / "chunk-1-000000008.npz", "wb") as f:  # right names, wrong dtype
        np.savez(f, **wrong)
    with zipfile.ZipFile(tmp_path / "chunk-1-000000009.npz", "w") as z:  # a zip, not of arrays
        z.writestr("frames.npy", b"not an array")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "chunk-0-000000012.npz.tmp").write_bytes(b"half a write")

    caplog.set_level(logging.WARNING, logger="pokedreamer.world_model.replay")
    resumed = Replay(tmp_path, capacity=1000, chunk_length=10)
    assert len(resumed) == 20
    check_batch(resumed.sample(8, 5), 8, 5)
    assert CALLS == []
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 6
    for name in ["chunk-1-00000000" + str(i) for i in range(5, 10)] + ["notes.txt"]:
        assert sum(name in line for line in warned) == 1, name
    assert all("\n" not in line for line in warned)
    assert not (tmp_path / "chunk-0-000000012.npz.tmp").exists()
    # New chunks are numbered past every file seen, so none overwrites a skipped one.
    fill(resumed, 2, range(10))
    assert (tmp_path / "chunk-2-000000010.npz").exists()


def test_source_never_unpickles() -> None:
    source = (Path(__file__).parents[1] / "pokedreamer/world_model/replay.py").read_text()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any("pickle" in n for n in names)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "np.load":
            flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
            assert flags.get("allow_pickle") == "False"

"""A tiles replay: tokens stored and sampled in place of frames, the vocabulary kept beside the
chunks and written before them, resumed as it was, and a directory of the other kind refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.env.tiles import GRID_HW, TileVocabulary
from pokedreamer.errors import UserError
from pokedreamer.world_model.replay import VOCABULARY_FILE, Replay

rng = np.random.default_rng(0)
PATTERNS = rng.integers(0, 4, size=(40, 8, 8), dtype=np.uint8)
# 30 frames of 18 x 20 cells, each cell one of the 40 patterns
CHOICES = rng.integers(0, len(PATTERNS), size=(30, *GRID_HW))
FRAMES = PATTERNS[CHOICES].swapaxes(2, 3).reshape(30, 144, 160)


def fill(replay: Replay, steps: range) -> None:
    for t in steps:
        state = np.full(VECTOR_SIZE, t / 100, np.float32)
        replay.add(0, FRAMES[t % len(FRAMES)], state, t % 9, float(t), is_first=t == 0)


def test_a_tiles_replay_stores_and_samples_tokens(tmp_path: Path) -> None:
    vocab = TileVocabulary(64)
    replay = Replay(tmp_path, capacity=100, chunk_length=10, tiles=vocab)
    assert replay.bytes_per_step == 787  # 720 of them the tokens, beside the pixels' 5,827
    fill(replay, range(25))
    batch = replay.sample(6, 5)
    assert "frames" not in batch
    assert batch["tiles"].dtype == np.uint16 and batch["tiles"].shape == (6, 5, *GRID_HW)
    t = batch["rewards"].astype(np.int64)
    np.testing.assert_array_equal(vocab.render(batch["tiles"]), FRAMES[t % len(FRAMES)])
    assert len(vocab) == 41 and vocab.unknown_cells == 0


def test_the_vocabulary_is_on_disk_before_the_chunks_that_use_it(tmp_path: Path) -> None:
    replay = Replay(tmp_path, capacity=100, chunk_length=10, tiles=TileVocabulary(64))
    fill(replay, range(10))  # one full chunk written
    chunks = sorted(tmp_path.glob("chunk-*.npz"))
    assert len(chunks) == 1
    with np.load(chunks[0], allow_pickle=False) as data:
        tokens = data["tiles"]
        assert tokens.dtype == np.uint16 and tokens.shape == (10, *GRID_HW)
    saved = TileVocabulary.load(tmp_path / VOCABULARY_FILE)
    assert tokens.max() < len(saved)
    np.testing.assert_array_equal(saved.render(tokens), FRAMES[:10])


def test_a_resumed_tiles_replay_keeps_its_tokens_and_their_meaning(tmp_path: Path) -> None:
    first = Replay(tmp_path, capacity=100, chunk_length=10, tiles=TileVocabulary(64))
    fill(first, range(17))
    first.flush()
    vocab = TileVocabulary(64)  # a new process: the vocabulary comes from the directory
    again = Replay(tmp_path, capacity=100, chunk_length=10, tiles=vocab)
    assert len(again) == 17
    assert first.vocabulary is not None
    np.testing.assert_array_equal(vocab.patterns, first.vocabulary.patterns)
    batch = again.sample(8, 7)
    t = batch["rewards"].astype(np.int64)
    np.testing.assert_array_equal(vocab.render(batch["tiles"]), FRAMES[t % len(FRAMES)])


def test_a_replay_of_the_other_kind_is_refused_in_one_line(tmp_path: Path) -> None:
    pixels, tiles = tmp_path / "pixels", tmp_path / "tiles"
    fill(Replay(pixels, capacity=100, chunk_length=10), range(10))
    fill(Replay(tiles, capacity=100, chunk_length=10, tiles=TileVocabulary(64)), range(10))
    with pytest.raises(UserError, match="holds a pixel replay") as error:
        Replay(pixels, capacity=100, chunk_length=10, tiles=TileVocabulary(64))
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match="holds a tiles replay") as error:
        Replay(tiles, capacity=100, chunk_length=10)
    assert "\n" not in str(error.value)


def test_a_vocabulary_of_another_start_is_refused(tmp_path: Path) -> None:
    fill(Replay(tmp_path, capacity=100, chunk_length=10, tiles=TileVocabulary(64)), range(10))
    other = TileVocabulary(64)
    other.tokenize(FRAMES[5])  # first-seen order of another frame: other ids
    with pytest.raises(UserError, match="numbers tile patterns differently"):
        Replay(tmp_path, capacity=100, chunk_length=10, tiles=other)


def test_a_checkpoints_vocabulary_is_adopted_or_refused(tmp_path: Path) -> None:
    trained = TileVocabulary(64)
    trained.tokenize(FRAMES[:3])  # the checkpoint's model has seen more than this replay
    replay = Replay(tmp_path / "a", capacity=100, chunk_length=10, tiles=TileVocabulary(64))
    fill(replay, range(1))
    replay.adopt_checkpoint({"tiles": trained.to_meta()}, "wm-1")
    assert replay.vocabulary is not None
    np.testing.assert_array_equal(replay.vocabulary.patterns, trained.patterns)
    assert replay.checkpoint_meta()["tiles"] == trained.to_meta()

    other = Replay(tmp_path / "b", capacity=100, chunk_length=10, tiles=TileVocabulary(64))
    fill(other, range(5, 6))  # another first frame: other ids
    with pytest.raises(UserError, match="checkpoint wm-1 numbers tile patterns differently"):
        other.adopt_checkpoint({"tiles": trained.to_meta()}, "wm-1")
    with pytest.raises(UserError, match="checkpoint wm-1 is not a valid tile vocabulary"):
        other.adopt_checkpoint({"tiles": {"capacity": 64}}, "wm-1")

"""Replay's rare steps (another map, a battle starting or ending, a change in what the quest reads)
and the share of each training batch drawn round them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from clirun import cli

from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.world_model.replay import Replay, rare_rows, rare_steps

MAP, CALM = VECTOR_FIELDS.index("map_id"), VECTOR_FIELDS.index("battle_none")
FRAME = np.zeros(FRAME_SHAPE, np.uint8)


def state(map_id: int, battle: bool = False) -> np.ndarray:
    vector = np.zeros(VECTOR_SIZE, np.float32)
    vector[MAP] = map_id / 255
    vector[CALM] = 0.0 if battle else 1.0
    return vector


def fill(replay: Replay, stream: int, states: list[np.ndarray], first: set[int]) -> None:
    """Adds the steps; each step's reward is its index, so a sampled row says where it lies."""
    for t, vector in enumerate(states):
        replay.add(stream, FRAME, vector, 0, float(t), is_first=t in first)


def test_rare_steps_are_new_maps_and_battles_starting_or_ending_inside_an_episode() -> None:
    states = np.stack(
        [state(0), state(0), state(1), state(1), state(1, True), state(1, True), state(1),
         state(2), state(2)]
    )  # fmt: skip
    is_first = np.zeros(9, bool)
    is_first[7] = True  # a reset onto map 2 is not a step that arrives there
    assert np.flatnonzero(rare_steps(states, is_first)).tolist() == [2, 4, 6]
    # Batched over sequences, and never step 0.
    both = rare_steps(np.stack([states, states[::-1]]), np.stack([is_first, is_first]))
    assert both.shape == (2, 9) and not both[:, 0].any()
    assert np.flatnonzero(both[0]).tolist() == [2, 4, 6]
    assert np.flatnonzero(both[1]).tolist() == [2, 3, 5]  # the change at 7 falls on a reset


@pytest.mark.parametrize(
    "field",
    [
        "party_size",
        "lead_level",
        "hp_fraction",
        "enemy_hp_fraction",
        "event_count",
        "badge_boulder",
    ],
)
def test_a_change_in_what_the_quest_reads_is_a_rare_step(field: str) -> None:
    states = np.stack([state(1, True)] * 4)
    states[2:, VECTOR_FIELDS.index(field)] = 0.5  # a blow lands, a level is gained, ...
    assert np.flatnonzero(rare_steps(states, np.zeros(4, bool))).tolist() == [2]


def test_the_player_walking_or_a_text_box_is_not_a_rare_step() -> None:
    states = np.stack([state(1)] * 4)
    for t, field in ((1, "x"), (2, "text_shown"), (3, "facing_up")):
        states[t:, VECTOR_FIELDS.index(field)] += 1 / 255
    assert not rare_steps(states, np.zeros(4, bool)).any()


def walk(steps: int, events: tuple[int, ...]) -> list[np.ndarray]:
    """Steps on map 0 that change map at each of ``events``."""
    map_id, out = 0, []
    for t in range(steps):
        map_id += t in events
        out.append(state(map_id))
    return out


def test_an_event_share_draws_that_share_of_rows_round_the_rare_steps() -> None:
    replay = Replay(None, capacity=1000, chunk_length=64, seed=1)
    fill(replay, 0, walk(64, (5, 40)), first={0})
    fill(replay, 1, walk(64, ()), first={0})  # a chunk with nothing rare in it
    batch = replay.sample(400, 8, event_share=0.25)
    t = batch["rewards"].astype(np.int64)
    assert (np.diff(t, axis=1) == 1).all()  # still consecutive steps
    rare = rare_steps(batch["states"], batch["is_first"])
    assert rare[:100].any(axis=1).all()  # the first quarter each hold one, after step 0
    # Every place the rare step can take in a sequence of 8, for both of the chunk's steps.
    where = {(int(t[b, 0]), int(np.flatnonzero(rare[b])[0])) for b in range(100)}
    assert where == {(e - k, k) for e in (5, 40) for k in range(1, 8) if e - k >= 0}
    # The rest are uniform over both chunks: most hold nothing rare.
    assert 0.05 < rare[100:].any(axis=1).mean() < 0.3
    assert rare_rows(batch) == pytest.approx(rare.any(axis=1).mean())


def test_with_no_rare_step_an_event_share_draws_as_uniform_sampling_does() -> None:
    a, b = Replay(None, 1000, 32, seed=3), Replay(None, 1000, 32, seed=3)
    for replay in (a, b):
        fill(replay, 0, walk(70, ()), first={0})
    np.testing.assert_array_equal(
        a.sample(16, 8)["rewards"], b.sample(16, 8, event_share=0.5)["rewards"]
    )


def test_a_chunk_still_filling_offers_the_rare_steps_added_since() -> None:
    replay = Replay(None, capacity=1000, chunk_length=64)
    states = walk(60, (50,))
    fill(replay, 0, states[:40], first={0})
    assert rare_rows(replay.sample(50, 8, event_share=1.0)) == 0.0
    for t in range(40, 60):
        replay.add(0, FRAME, states[t], 0, float(t), is_first=False)
    assert rare_rows(replay.sample(50, 8, event_share=1.0)) == 1.0


def test_a_ranks_rows_are_those_of_the_whole_draw() -> None:
    whole, part = Replay(None, 1000, 64, seed=9), Replay(None, 1000, 64, seed=9)
    for replay in (whole, part):
        fill(replay, 0, walk(64, (20,)), first={0})
    rows = slice(4, 8)
    np.testing.assert_array_equal(
        whole.sample(8, 8, event_share=0.5)["rewards"][rows],
        part.sample(8, 8, rows=rows, event_share=0.5)["rewards"],
    )


def test_a_map_share_draws_that_share_of_rows_on_maps_picked_alike() -> None:
    """Map 9 is 3 of 128 steps; with map_share 0.5, half of that share's rows hold it (the
    maps are picked alike), at every place in the sequence, after the rare-step rows."""
    replay = Replay(None, capacity=1000, chunk_length=64, seed=2)
    on_nine = (30, 31, 32)
    fill(replay, 0, [state(9 if t in on_nine else 0) for t in range(64)], first={0})
    fill(replay, 1, [state(0)] * 64, first={0})
    batch = replay.sample(800, 8, event_share=0.25, map_share=0.5)
    t = batch["rewards"].astype(np.int64)
    assert (np.diff(t, axis=1) == 1).all()  # still consecutive steps
    nine = (np.rint(batch["states"][..., MAP] * 255) == 9).any(axis=1)  # stored as float16
    rare = rare_steps(batch["states"], batch["is_first"]).any(axis=1)
    assert rare[:200].all()  # the rare-step rows come first
    share = nine[200:600].mean()
    assert 0.4 < share < 0.6, share
    assert {int(t[b, 0]) for b in range(200, 600) if nine[b]} == set(range(23, 33))
    assert nine[600:].mean() < 0.2  # the uniform rest: about 10 of 121 starts reach it
    # A map share larger than what the rare rows leave takes the rest, no more.
    assert replay.sample(10, 8, event_share=0.7, map_share=0.7)["rewards"].shape == (10, 8)


def test_with_one_map_a_map_share_draws_uniformly_over_it() -> None:
    replay = Replay(None, capacity=1000, chunk_length=32, seed=4)
    fill(replay, 0, walk(32, ()), first={0})
    fill(replay, 1, walk(20, ()), first={0})  # too short for a sequence of 24
    starts = replay.sample(300, 24, map_share=1.0)["rewards"][:, 0]
    assert set(starts.astype(int).tolist()) == set(range(9))


def test_battle_maps_are_where_the_replay_saw_battles_start() -> None:
    replay = Replay(None, capacity=1000, chunk_length=16)
    assert replay.battle_maps().tolist() == []
    # Map 3: a battle starts at step 4 and ends at 6; map 5: a reset into a battle is no start.
    steps = [state(3)] * 4 + [state(3, True)] * 2 + [state(3)] * 2 + [state(5, True)] * 2
    fill(replay, 0, steps, first={0, 8})
    assert replay.battle_maps().tolist() == [3]
    fill(replay, 1, [state(7), state(7, True)], first={0})  # a chunk still filling
    assert replay.battle_maps().tolist() == [3, 7]


def collected(tmp_path: Path, batch: int, length: int) -> Callable[[int], dict[str, float]]:
    """A run of 600 collected random steps with the tiny model drawing ``batch`` sequences of
    ``length``; the callable trains it that many more updates through the CLI and returns the
    last metrics logged."""
    config = tmp_path / "my.toml"
    runs = tmp_path / "runs"
    config.write_text(
        f'[run]\nruns_dir = {json.dumps(str(runs))}\n[world_model]\npreset = "tiny"\n'
        f"batch_size = {batch}\nbatch_length = {length}\nthreads = 1\n",
        encoding="utf-8",
    )
    result = cli("--config", str(config), "collect", "--run", "c", "--steps", "600", "--envs", "1")
    assert result.returncode == 0, result.stderr

    def train(updates: int) -> dict[str, float]:
        result = cli("--config", str(config), "train", "world-model", "--run", "c",
                     "--updates", str(updates))  # fmt: skip
        assert result.returncode == 0, result.stderr
        lines = (runs / "c" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return json.loads(lines[-1])

    return train


def test_train_world_model_draws_the_share_the_environment_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = collected(tmp_path, batch=4, length=16)
    # The cartridge's random play leaves the house within its first few hundred steps.
    assert train(25)["rare_rows"] < 1.0
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__REPLAY_EVENT_SHARE", "1.0")
    assert train(25)["rare_rows"] == 1.0


def test_train_world_model_draws_the_map_share_the_environment_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI: the town, which random play reaches late, fills about half the rows of
    every batch under ``POKEDREAMER_WORLD_MODEL__REPLAY_MAP_SHARE=1`` (the house and the town
    picked alike), against what a uniform draw gives it."""
    train = collected(tmp_path, batch=16, length=8)
    uniform = train(10)["rarest_map_rows"]
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__REPLAY_MAP_SHARE", "1")
    balanced = train(10)["rarest_map_rows"]
    assert balanced >= 0.3 and balanced > uniform, (uniform, balanced)

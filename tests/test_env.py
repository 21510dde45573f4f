"""PokemonRedEnv on the fixture cartridge: the Gymnasium contract, seeding, start states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pokedreamer.config import EnvSettings, RewardSettings
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.rewards import TERMS
from pokedreamer.env.start import StartStates
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE, GameState
from pokedreamer.env.vector import make_vector_env
from pokedreamer.errors import UserError

BUTTONS = ["a", "b", "start", "select", "up", "down", "left", "right"]
A, B, UP, DOWN, LEFT, RIGHT = (BUTTONS.index(b) for b in ("a", "b", "up", "down", "left", "right"))


@pytest.fixture
def env() -> Iterator[PokemonRedEnv]:
    e = PokemonRedEnv(EnvSettings(), RewardSettings(), render_mode="rgb_array")
    yield e
    e.close()


def test_env_checker_passes(env: PokemonRedEnv) -> None:
    check_env(env, skip_render_check=False)


def test_observation_and_info(env: PokemonRedEnv) -> None:
    obs, info = env.reset(seed=0)
    assert obs["screen"].shape == (144, 160) and obs["screen"].dtype == np.uint8
    assert set(np.unique(obs["screen"])) <= {0, 1, 2, 3}
    assert obs["state"].shape == (VECTOR_SIZE,) and obs["state"].dtype == np.float32
    state: GameState = info["state"]
    assert (state.map_name, state.x, state.y) == ("REDS_HOUSE_1F", 3, 5)
    assert set(info["rewards"]) == set(TERMS)
    # the screen observation is the emulator's picture, centred on the player at (3,5): the
    # house's west wall (and the border beyond it) is dark brick, the floor at (6,7) light
    assert obs["screen"][:, :32].mean() > 1.5 and obs["screen"][96:112, 112:128].mean() < 0.2
    obs2, reward, terminated, truncated, info = env.step(UP)
    assert info["state"].y == 4 and not terminated and not truncated
    assert reward == pytest.approx(sum(info["rewards"].values()))
    assert info["rewards"]["explore"] > 0  # a tile never seen before
    assert not np.array_equal(obs["screen"], obs2["screen"])  # a fresh array, not a view
    assert env.render().shape == (144, 160, 3)


def test_text_reaches_the_observation(env: PokemonRedEnv) -> None:
    env.reset(seed=0)
    for action in (RIGHT, RIGHT, UP, UP, UP, RIGHT, A):
        obs, _, _, _, info = env.step(action)
    state = info["state"]
    assert state.text_shown and state.text == ("MOM: Good morning,", "RED!")
    assert obs["state"][VECTOR_FIELDS.index("text_shown")] == 1.0
    assert "MOM: Good morning," in state.summary()


def play(env: PokemonRedEnv, seed: int, steps: int) -> list[tuple[bytes, GameState, float]]:
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, steps)
    trace = []
    for action in actions:
        obs, reward, _, _, info = env.step(int(action))
        trace.append((obs["screen"].tobytes(), info["state"], reward))
    return trace


def test_same_seed_same_game_and_seeds_differ(env: PokemonRedEnv) -> None:
    first = play(env, seed=7, steps=300)
    again = play(env, seed=7, steps=300)
    assert first == again
    other = PokemonRedEnv(EnvSettings(), RewardSettings())
    try:
        assert play(other, seed=7, steps=300) == first  # a second emulator agrees too
        # another seed gives the game another random state from the first step
        other.reset(seed=8)
        rng = other._rng_address
        assert rng is not None
        a = bytes(other._memory[rng : rng + 2])
        other.reset(seed=7)
        assert bytes(other._memory[rng : rng + 2]) != a
    finally:
        other.close()


def test_buttons_noop_and_truncation() -> None:
    env = PokemonRedEnv(EnvSettings(buttons=["up", "down"], noop=True, max_steps=3))
    try:
        assert env.action_space.n == 3
        env.reset(seed=0)
        _, _, _, truncated, info = env.step(2)  # no-op: nothing moves
        assert info["state"].tile == (0x25, 3, 5) and not truncated
        env.step(0)
        _, _, _, truncated, info = env.step(0)
        assert truncated and info["state"].y == 4  # up, then up into the table
    finally:
        env.close()


def test_start_state_file_and_bad_ones(env: PokemonRedEnv, tmp_path: Path) -> None:
    env.reset(seed=0)
    for action in (RIGHT, RIGHT, UP):
        env.step(action)
    saved = tmp_path / "here.state"
    import io

    buffer = io.BytesIO()
    env._pyboy.save_state(buffer)
    saved.write_bytes(buffer.getvalue())
    resumed = PokemonRedEnv(EnvSettings(start_state=str(saved)))
    try:
        _, info = resumed.reset(seed=0)
        assert info["state"].tile == (0x25, 5, 4)
    finally:
        resumed.close()
    with pytest.raises(UserError, match="start state not found"):
        PokemonRedEnv(EnvSettings(start_state=str(tmp_path / "missing.state")))
    junk = tmp_path / "junk.state"
    junk.write_bytes(b"not a save state at all")
    with pytest.raises(UserError, match="is not a PyBoy save state"):
        PokemonRedEnv(EnvSettings(start_state=str(junk)))


def test_start_state_cache_is_atomic_and_keyed_by_rom(tmp_path: Path) -> None:
    cache = StartStates(tmp_path)
    assert cache.get("abc") is None
    path = cache.put("abc", b"state bytes")
    assert path.parent == tmp_path / "start_states" and cache.get("abc") == b"state bytes"
    assert not list(path.parent.glob("*.tmp*"))


def test_parallel_envs_step_in_processes() -> None:
    venv = make_vector_env(EnvSettings(), RewardSettings(), num_envs=2)
    try:
        obs, info = venv.reset(seed=3)
        assert obs["screen"].shape == (2, 144, 160)
        for _ in range(5):
            obs, reward, terminated, truncated, info = venv.step(np.array([UP, LEFT]))
        assert obs["state"].shape == (2, VECTOR_SIZE) and reward.shape == (2,)
        xs = [s.x for s in info["state"]]
        assert xs == [3, 1]  # one walked up, the other left into the wall
    finally:
        venv.close()

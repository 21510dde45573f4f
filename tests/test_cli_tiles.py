"""world_model.observation = "tiles" through the real command: collect stores tokens and the
vocabulary, train world-model and eval world-model read them, run trains, resumes and acts on
them, and weights or a replay of the other kind are refused in one line; the imagined screen
watchers get is the model's token grid drawn through the run's vocabulary at full size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from clirun import cli
from tiny_run import TINY as TINY_RUN
from tiny_run import as_env

from pokedreamer.agent.events import HumanAction, ImaginedEvent
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.play import make_loop, shipped_checkpoint
from pokedreamer.config import load_settings
from pokedreamer.env.tiles import GRID_HW, UNKNOWN_PATTERN, TileVocabulary
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.replay import VOCABULARY_FILE

TINY = {**TINY_RUN, "world_model.observation": "tiles"}


@pytest.fixture
def tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in as_env(TINY).items():
        monkeypatch.setenv(key, value)


def meta(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())["meta"]


def one_line_error(result: object) -> str:
    assert result.returncode == 2, result.stderr  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_collect_and_train_a_world_model_on_tiles(
    tiles: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    collected = cli("collect", "--run", "t", "--steps", "200", "--envs", "1")
    assert collected.returncode == 0, collected.stderr
    replay = Path("runs/t/replay")
    vocab = TileVocabulary.load(replay / VOCABULARY_FILE)
    assert 1 < len(vocab) <= 1024 and vocab.unknown_cells == 0
    chunks = sorted(replay.glob("chunk-*.npz"))
    with np.load(chunks[0], allow_pickle=False) as chunk:
        assert "frames" not in chunk.files
        tokens = chunk["tiles"]
    assert tokens.dtype == np.uint16 and tokens.shape[1:] == GRID_HW
    assert tokens.max() < len(vocab)
    assert len(np.unique(vocab.render(tokens[:1]))) > 1  # a screen, not a blank

    trained = cli("train", "world-model", "--run", "t", "--updates", "2")
    assert trained.returncode == 0, trained.stderr
    wm = meta(Path("runs/t/checkpoints/wm-000000002.json"))
    assert wm["observation"] == "tiles"
    saved = TileVocabulary.from_meta(wm["tiles"], "checkpoint")
    np.testing.assert_array_equal(saved.patterns, vocab.patterns)

    # The same run as pixels: its model and its replay refused, and nothing in it lost.
    settings_saved = Path("runs/t/config.toml").read_text()
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__OBSERVATION", "pixels")
    pixels = cli("train", "world-model", "--run", "t", "--updates", "1")
    assert "wm-000000002 is a world model of tiles" in one_line_error(pixels)
    assert Path("runs/t/config.toml").read_text() == settings_saved  # still says tiles
    more = cli("collect", "--run", "t", "--steps", "20", "--envs", "1")
    assert "holds a tiles replay and world_model.observation is pixels" in one_line_error(more)
    assert sorted(replay.glob("chunk-*.npz")) == chunks
    assert TileVocabulary.load(replay / VOCABULARY_FILE).patterns.tobytes() == (
        vocab.patterns.tobytes()
    )


@pytest.mark.slow  # half a minute or more of CLI runs: make test-slow
def test_run_trains_resumes_and_acts_on_tiles(tiles: None) -> None:
    first = cli("run", "--headless", "--steps", "120", "--name", "r")
    assert first.returncode == 0, first.stderr
    run = Path("runs/r")
    agent = meta(run / "checkpoints" / "agent-000000120.json")
    assert agent["observation"] == "tiles" and agent["updates"] > 0  # type: ignore[operator]
    vocab = TileVocabulary.load(run / "replay" / VOCABULARY_FILE)
    in_checkpoint = TileVocabulary.from_meta(agent["tiles"], "checkpoint")
    np.testing.assert_array_equal(in_checkpoint.patterns, vocab.patterns)

    resumed = cli("run", "--headless", "--steps", "60", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    again = meta(run / "checkpoints" / "agent-000000180.json")
    assert again["updates"] > agent["updates"]  # type: ignore[operator]
    grown = TileVocabulary.from_meta(again["tiles"], "checkpoint")
    np.testing.assert_array_equal(grown.patterns[: len(vocab) - 1], vocab.patterns)

    acting = cli("run", "--headless", "--steps", "30", "--no-train", "--checkpoint", str(run))
    assert acting.returncode == 0, acting.stderr


def test_a_pixel_checkpoint_is_refused_for_a_tiles_run(tiles: None) -> None:
    shipped = shipped_checkpoint()
    assert shipped is not None
    result = cli("run", "--headless", "--steps", "3", "--checkpoint", str(shipped))
    line = one_line_error(result)
    assert "is a world model of pixels" in line and "world_model.observation" in line


def test_the_imagined_screen_of_a_tiles_run_is_drawn_through_its_vocabulary(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, {**TINY, "agent.envs": 1, "planner.kind": "none"})
    loop = AgentLoop(settings, RunDir.make(tmp_path / "r"), train=False)
    watching = loop.bus.subscribe(kinds=(ImaginedEvent,))
    vocab = loop.learner.tiles
    assert vocab is not None
    loop.run(12)
    events = watching.drain()
    assert events, "no imagined screen was published"
    for event in events:
        frame = event.frame
        assert frame.dtype == np.uint8 and frame.shape == (144, 160)  # full size, not pooled
        # Every cell is a pattern of the run's vocabulary, or the unknown checkerboard.
        drawn = TileVocabulary(vocab.capacity)
        drawn.adopt(vocab, "the run's vocabulary")
        known = len(drawn)
        tokens = drawn.tokenize(frame)
        fresh = tokens >= known
        cells = frame.reshape(18, 8, 20, 8).swapaxes(1, 2)
        assert (cells[fresh] == UNKNOWN_PATTERN).all()


def test_the_imagined_screen_of_a_tiles_run_is_drawn_over_the_screen_before(
    tmp_path: Path,
) -> None:
    """The prior guesses the newest screen from the step before it, and the token decoder draws
    its guess over the grid the model observed at that step, not over the newest one."""
    settings = load_settings(None, {**TINY, "agent.envs": 1, "planner.kind": "none"})
    loop = AgentLoop(settings, RunDir.make(tmp_path / "r"), train=False)
    watching = loop.bus.subscribe(kinds=(ImaginedEvent,))
    learner, model = loop.learner, loop.learner.world_model
    observed: list[np.ndarray] = []
    drawn_over: list[tuple[np.ndarray, np.ndarray]] = []
    observe, imagine = learner.observation, model.imagined_obs

    def observation(frames: np.ndarray) -> np.ndarray:
        # A corner cell marks each step's grid, so that no two are equal however still the
        # screen stands.
        grids = observe(frames).copy()
        grids[..., 0, 0] = len(observed) + 1
        observed.append(grids)
        return grids

    def imagined_obs(feat: torch.Tensor, before: torch.Tensor | None = None) -> torch.Tensor:
        assert before is not None and before.shape == (1, *GRID_HW), before
        drawn_over.append((before.numpy(), observed[-2][:1]))
        return imagine(feat, before)

    learner.observation = observation  # type: ignore[method-assign]
    model.imagined_obs = imagined_obs  # type: ignore[method-assign]
    loop.run(12)
    assert watching.drain() and drawn_over
    for before, seen_a_step_ago in drawn_over:
        np.testing.assert_array_equal(before, seen_a_step_ago)


def test_eval_world_model_on_tiles_renders_through_the_runs_vocabulary(tiles: None) -> None:
    collected = cli("collect", "--run", "e", "--steps", "120", "--envs", "1")
    assert collected.returncode == 0, collected.stderr
    trained = cli("train", "world-model", "--run", "e", "--updates", "2")
    assert trained.returncode == 0, trained.stderr
    evaluated = cli("eval", "world-model", "--run", "e", "--sequences", "2", "--context", "2",
                    "--horizon", "3")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(Path("runs/e/eval/wm-000000002/e-n2-c2-h3/openloop.json").read_text())
    assert report["observation"] == "tiles"
    # The checkpoint named by the file a shell completes is the same checkpoint, and its report
    # lands in the same folder.
    Path("runs/e/eval/wm-000000002/e-n2-c2-h3/openloop.json").unlink()
    named = cli("eval", "world-model", "--run", "e", "--sequences", "2", "--context", "2",
                "--horizon", "3", "--checkpoint",
                "runs/e/checkpoints/wm-000000002.safetensors")  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert Path("runs/e/eval/wm-000000002/e-n2-c2-h3/openloop.json").is_file()


def test_eval_world_model_on_tiles_scores_another_runs_episodes(tiles: None) -> None:
    """Held-out data is another run, whose vocabulary numbered its patterns in another order."""
    for run, seed in (("a", "1"), ("held", "5000")):
        collected = cli("collect", "--run", run, "--steps", "120", "--envs", "1", "--seed", seed)
        assert collected.returncode == 0, collected.stderr
    trained = cli("train", "world-model", "--run", "a", "--updates", "1")
    assert trained.returncode == 0, trained.stderr
    evaluated = cli("eval", "world-model", "--run", "a", "--data", "held", "--sequences", "2",
                    "--context", "2", "--horizon", "3")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    held = Path("runs/a/eval/wm-000000001/held-n2-c2-h3")
    report = json.loads((held / "openloop.json").read_text())
    assert report["observation"] == "tiles" and report["data"] == "held"
    # The first imagined step's error, split by what happened in the held-out game.
    split = report["first_step_split"]
    assert [part["kind"] for part in split][-1] == "other"
    assert sum(part["frames"] for part in split) == report["sequences"] == 2
    assert "| what happened | frames |" in (held / "openloop.md").read_text()
    # Another question of the same checkpoint (its own data, one imagined step) keeps its own
    # report and leaves the first one's in place.
    again = cli("eval", "world-model", "--run", "a", "--sequences", "3", "--context", "2",
                "--horizon", "1")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "runs/a/eval/wm-000000001/a-n3-c2-h1/openloop.json" in again.stdout
    own = Path("runs/a/eval/wm-000000001/a-n3-c2-h1/openloop.json")
    assert json.loads(own.read_text())["data"] == "a"
    assert json.loads((held / "openloop.json").read_text())["data"] == "held"


def test_a_persons_play_is_cloned_into_the_actor_of_a_tiles_model(tiles: None) -> None:
    # The person's steps are kept as screens (demos/ is a replay of pixels in any run); cloning
    # filters them through the token model as their tokens.
    person = make_loop(load_settings(None, {"agent.record": False}), name="played", human=True,
                       train=False)  # fmt: skip
    walk = ("down", "down", "left", "down", "down", "right", "down", "a") * 3
    for button in walk:
        person.send(HumanAction(button))
    person.run(len(walk))
    assert person.demonstrations.steps == len(walk)

    collected = cli("collect", "--run", "wm", "--steps", "100", "--envs", "1")
    assert collected.returncode == 0, collected.stderr
    trained = cli("train", "world-model", "--run", "wm", "--updates", "1")
    assert trained.returncode == 0, trained.stderr
    cloned = cli("train", "imitation", "--run", "cloned", "--demos", "runs/played",
                 "--checkpoint", "runs/wm", "--updates", "5")  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    assert "done: 5 updates" in cloned.stdout
    agent = meta(next(Path("runs/cloned/checkpoints").glob("agent-*.json")))
    assert agent["observation"] == "tiles"


def test_dagger_on_tiles_needs_a_token_world_model(tiles: None) -> None:
    # The shipped world model sees pixels: a tiles run has none to imitate on unless given one.
    refused = cli("train", "imitation", "--run", "im", "--steps", "10", "--envs", "1")
    assert one_line_error(refused) == (
        "error: imitation needs a trained world model of the game: give --checkpoint"
    )
    assert not Path("runs/im").exists()

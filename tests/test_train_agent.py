"""``pokedreamer train agent`` through the real CLI: the whole recipe from an empty run, stopped
after a stage and resumed without redoing what was done, its metrics in TensorBoard, and its
refusals in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import REPO_ROOT, cli
from test_rundir import scalars_in

from pokedreamer.agent.recipe_plan import IMAGINATION_RECIPE, IMITATION_RECIPE, recipe_settings
from pokedreamer.config import load_settings
from pokedreamer.config_layers import chosen_keys, read_toml
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE
from pokedreamer.world_model.checkpoint import load_checkpoint
from pokedreamer.world_model.presets import PRESETS

# Tiny sizes: a world-model update replays 2 x 16 steps, and at the recipe's train ratio of 32
# the imagination stage owes one update (with one behaviour update) per env step.
TINY = {
    "WORLD_MODEL__THREADS": "1",
    "WORLD_MODEL__BATCH_SIZE": "2",
    "WORLD_MODEL__BATCH_LENGTH": "16",
    "AGENT__TRAIN_AFTER": "0",
    "AGENT__BEHAVIOR_UPDATES": "1",
    "AGENT__IMAGINE_BATCH": "16",
    "AGENT__RECORD": "false",
}
SIZES = ["--collect-steps", "120", "--world-model-updates", "3", "--eval-episodes", "2",
         "--eval-max-steps", "30", "--validate-episodes", "2"]  # fmt: skip


@pytest.fixture(autouse=True)
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TINY.items():
        monkeypatch.setenv(f"POKEDREAMER_{name}", value)


def one_line_error(result: object, expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.stderr.strip().splitlines() == [f"error: {expected}"]  # type: ignore[attr-defined]


@pytest.mark.slow  # half a minute or more of CLI runs: make test-slow
def test_train_agent_runs_the_recipe_in_stages_and_resumes_without_redoing_them() -> None:
    run = Path("runs/a")
    first = cli("train", "agent", "--run", "a", *SIZES, "--steps", "30", "--until", "world-model")
    assert first.returncode == 0, first.stderr
    assert "collect: 120 steps of go-explore" in first.stdout  # the default
    assert "world model: 3 updates" in first.stdout
    assert "stopped after world-model (--until)" in first.stdout
    stages = json.loads((run / "recipe.json").read_text())["stages"]
    assert set(stages) == {"collect", "world-model"}
    assert stages["collect"]["done"] and stages["world-model"]["updates"] == 3
    assert not list((run / "checkpoints").glob("agent-*"))
    # The recipe's settings where nothing else set them; the environment's where it did.
    saved = load_settings(run / "config.toml", {})
    assert saved.world_model.preset == "mini" and saved.world_model.observation == "tiles"
    assert saved.world_model.state_code == "bits" and saved.agent.cut_leaps
    assert saved.agent.goal_code == "bits" and saved.agent.shaping_scale == 10.0
    assert saved.agent.pairing == "subgoal"
    assert saved.agent.behavior_updates == 1 and saved.env.max_steps == 3000

    # An evaluation at step 20, then on to 30 and the last evaluation; the two envs' episodes
    # wait through the first and go on after it, as in a run without --eval-every.
    # Validated at 10, 20 and 30 on seeds of its own; none better than another, the last kept.
    second = cli("train", "agent", "--run", "a", *SIZES, "--steps", "30", "--eval-every", "20",
                 "--validate-every", "10")  # fmt: skip
    assert second.returncode == 0, second.stderr
    for steps in (10, 20, 30):
        assert (
            f"validation at step {steps} (2 episodes from seed 20000): 0/2 badges; the best so "
            f"far: step {steps}"
        ) in second.stdout
        assert (run / "validation" / f"steps-{steps}" / "report.md").is_file()
    assert "collect: done before (120 steps), skipped" in second.stdout
    assert "world model: done before (3 updates), skipped" in second.stdout
    assert "imagination: 30 steps, 2 episodes" in second.stdout
    assert "on seeds 10000-10001 (never played in training)" in second.stdout
    assert "| agent | " in second.stdout and "[0%–66%]" in second.stdout  # each rate's interval
    assert "done: runs/a/checkpoints/agent-000000030" in second.stdout
    for steps in (20, 30):
        assert (run / "eval" / f"steps-{steps}" / "report.md").is_file()

    again = cli("train", "agent", "--run", "a", *SIZES, "--steps", "30")
    assert again.returncode == 0, again.stderr
    for stage in ("collect", "world model", "imagination", "eval"):
        assert f"{stage}: done before" in again.stdout
    # Nothing was done twice: one world model, trained once; one evaluation of each checkpoint.
    assert [p.name for p in (run / "checkpoints").glob("wm-*.json")] == ["wm-000000003.json"]
    kinds = [json.loads(line)["kind"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("world_model") == 1 and kinds.count("eval") == 2
    assert kinds.count("validation") == 3

    # Evaluating on seeds that training played is refused.
    overlap = cli("train", "agent", "--run", "a", *SIZES, "--steps", "30", "--eval-seed", "0")
    one_line_error(overlap, "training played seeds 0-1; give a --eval-seed above them")

    # TensorBoard: the world model's losses, the behaviour's losses and return scale, the
    # subgoal pairing, and the evaluation.
    scalars = scalars_in(run)
    for tag in ("world_model/loss", "wm/loss", "behavior/actor_loss", "behavior/critic_loss",
                "behavior/return_scale", "behavior/live_rate", "eval/agent/badge_rate",
                "eval/agent/badge_high_95", "validation/agent/badge_rate"):  # fmt: skip
        assert tag in scalars, sorted(scalars)
    assert scalars["world_model/loss"][0][0] == 3  # by update
    # By env step: update 25, logged, is owed at step 26 (the two envs step together).
    assert [step for step, _ in scalars["wm/loss"]] == [26]
    assert scalars["eval/agent/badge_rate"] == [(20, 0.0), (30, 0.0)]
    seconds = scalars["eval/train_seconds"]
    assert [step for step, _ in seconds] == [20, 30] and 0 < seconds[0][1] < seconds[1][1]

    # The curve as docs/recipes/learning_curve.py prints it: a row per evaluation, its env steps
    # counting the collection's 120.
    curve = subprocess.run(
        [sys.executable, str(REPO_ROOT / "docs" / "recipes" / "learning_curve.py"), str(run)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [line.split(" | ") for line in curve.stdout.splitlines()[2:]]
    assert [row[1:3] + row[4:7] for row in rows] == [
        ["20", "140", "0/2 [0%–66%]", "—", "0/2 |"],
        ["30", "150", "0/2 [0%–66%]", "—", "0/2 |"],
    ]

    # The recipe ends with the checkpoint that did best on the validation seeds: were step 20's
    # the best, the eval stage evaluates it as the run's figure at 30 steps, and says so, even
    # though the curve evaluated it at 20; --validate-every 0 takes the last again.
    recipe = json.loads((run / "recipe.json").read_text())
    recipe["stages"]["imagination"]["validations"]["20"].update(badges=1, median_steps=25)
    at_20 = {"checkpoint": "runs/a/checkpoints/agent-000000020", "steps": 20}
    recipe["stages"]["eval"]["asked"].update(at_20)  # as the curve's evaluation at 20 left it
    (run / "recipe.json").write_text(json.dumps(recipe))
    chosen = cli("train", "agent", "--run", "a", *SIZES, "--steps", "30")
    assert chosen.returncode == 0, chosen.stderr
    assert "imagination: done before" in chosen.stdout and "eval: 2 episodes" in chosen.stdout
    assert "checkpoint: `runs/a/checkpoints/agent-000000020`" in chosen.stdout
    assert "agent-000000020" in (run / "eval" / "steps-30" / "report.md").read_text()
    assert "done: runs/a/checkpoints/agent-000000020" in chosen.stdout
    last = cli("train", "agent", "--run", "a", *SIZES, "--steps", "30", "--validate-every", "0")
    assert "done: runs/a/checkpoints/agent-000000030" in last.stdout, last.stderr
    checkpoints = [json.loads(line).get("checkpoint_step") for line in
                   (run / "metrics.jsonl").read_text().splitlines()]  # fmt: skip
    assert [c for c in checkpoints if c is not None] == [20, 30, 20, 30]
    curve = subprocess.run(
        [sys.executable, str(REPO_ROOT / "docs" / "recipes" / "learning_curve.py"), str(run)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "| a | 30 (checkpoint 20) | 150 | " in curve.stdout
    assert curve.stdout.splitlines()[4].endswith("| 1/2 |")


# `train agent` with its last validation killed outright, as a machine that goes down would.
KILLED_IN_VALIDATION = """
import os, signal, sys
import pokedreamer.agent.recipe
from pokedreamer.cli import main
pokedreamer.agent.recipe.validate = lambda *_, **__: os.kill(os.getpid(), signal.SIGKILL)
sys.argv[0] = "pokedreamer"
main()
"""


@pytest.mark.slow  # two CLI runs of the recipe: make test-slow
def test_train_agent_killed_in_its_last_validation_keeps_its_time_and_validates_when_resumed() -> (
    None
):
    args = ["train", "agent", "--run", "k", *SIZES, "--steps", "10", "--validate-every", "10"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_IN_VALIDATION, *args], capture_output=True, text=True, env=env
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    stages = json.loads(Path("runs/k/recipe.json").read_text())["stages"]
    assert stages["imagination"]["steps"] == 10 and stages["imagination"]["seconds"] > 0
    assert not stages["imagination"]["done"] and "validations" not in stages["imagination"]

    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "imagination: done before (10 steps), skipped" in resumed.stdout
    assert "validation at step 10 (2 episodes from seed 20000)" in resumed.stdout
    stages = json.loads(Path("runs/k/recipe.json").read_text())["stages"]
    assert stages["imagination"]["done"] and "10" in stages["imagination"]["validations"]
    assert "done: runs/k/checkpoints/agent-000000010" in resumed.stdout


def test_train_agent_with_imitation_evaluates_the_imitating_actor() -> None:
    result = cli("train", "agent", "--run", "i", *SIZES, "--imitate", "--imitation-steps", "20",
                 "--steps", "0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "imitation: 20 steps" in result.stdout and "imitation updates" in result.stdout
    assert "collect: 120 steps of random" in result.stdout  # --imitate's default
    assert "imagination" not in result.stdout
    assert "done: runs/i/imitation/checkpoints/agent-000000020" in result.stdout
    assert Path("runs/i/eval/steps-20/report.md").is_file()
    # The same run without --imitate is another recipe.
    again = cli("train", "agent", "--run", "i", *SIZES, "--steps", "0")
    one_line_error(again, "runs/i was started with --imitate; run it the same way, or give a new "
                   "--run name")  # fmt: skip


def test_train_agent_learns_on_mini_tiles_and_bits_and_its_checkpoint_plays_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The imagination recipe's world model is mini's (deter 256, 16 x 16 latents) on tiles, its
    actor and critic read the subgoal's map and tile in binary digits (24 more inputs), and the
    checkpoint says so. `eval agent` and `run` take its observation and goal code from it; a
    goal code chosen otherwise on purpose is refused in one line."""
    result = cli("train", "agent", "--run", "g", *SIZES, "--steps", "10")
    assert result.returncode == 0, result.stderr
    saved = Path("runs/g/checkpoints/agent-000000010")
    tensors, meta = load_checkpoint(saved)
    assert meta["preset"]["name"] == "mini" and meta["observation"] == "tiles"
    assert meta["state_code"] == "bits" and meta["behavior"]["settings"]["goal_code"] == "bits"
    feat = PRESETS["mini"].feat_size
    assert feat == 256 + 16 * 16
    for net in ("actor", "critic"):
        first = tensors[f"behavior/module/{net}.net.0.weight"]
        assert first.shape[1] == feat + GOAL_ENCODING_SIZE + 24, (net, first.shape)
    # Nothing set: the settings' defaults (pixels, "scalar") give way to the checkpoint's.
    acting = cli("eval", "agent", "--checkpoint", "runs/g", "--episodes", "1",
                 "--max-steps", "20", "--variants", "agent")  # fmt: skip
    assert acting.returncode == 0, acting.stderr
    watched = cli("run", "--headless", "--no-train", "--checkpoint", str(saved), "--steps", "10",
                  "--name", "w")  # fmt: skip
    assert watched.returncode == 0, watched.stderr
    assert "mini world model" in watched.stdout
    timed = cli("bench", "loop", "--checkpoint", "runs/g", "--envs", "1", "--steps", "10",
                "--train-steps", "0", "--json")  # fmt: skip
    assert timed.returncode == 0, timed.stderr
    imitating = cli("train", "imitation", "--run", "im", "--checkpoint", "runs/g", "--steps", "10")
    assert imitating.returncode == 0, imitating.stderr
    assert load_checkpoint(Path("runs/im/checkpoints/agent-000000010"))[1]["observation"] == "tiles"
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__STATE_CODE", "scalar")
    refused = cli("eval", "agent", "--checkpoint", str(saved), "--episodes", "1")
    assert 'set world_model.state_code = "bits"' in refused.stderr and refused.returncode == 2
    monkeypatch.delenv("POKEDREAMER_WORLD_MODEL__STATE_CODE")
    monkeypatch.setenv("POKEDREAMER_AGENT__GOAL_CODE", "scalar")
    refused = cli("eval", "agent", "--checkpoint", str(saved), "--episodes", "1")
    one_line_error(refused, f"{saved}: its actor reads the subgoal as goal_code 'bits', not "
                   "'scalar'; set agent.goal_code = 'bits' (POKEDREAMER_AGENT__GOAL_CODE=bits) "
                   "to use it, or start an actor afresh with train agent or train imitation "
                   "--fresh-actor")  # fmt: skip


def test_train_agent_with_imitation_keeps_the_shipped_checkpoints_recipe() -> None:
    """--imitate trains as the shipped checkpoint was (docs/recipes/fixture-agent.toml): tiny,
    pixels, the subgoal as a scalar; --preset overrides the recipe's preset."""
    result = cli("train", "agent", "--run", "t", *SIZES, "--imitate", "--until", "world-model")
    assert result.returncode == 0, result.stderr
    saved = load_settings(Path("runs/t/config.toml"), {})
    assert (saved.world_model.preset, saved.world_model.observation) == ("tiny", "pixels")
    assert saved.agent.goal_code == "scalar" and saved.agent.shaping_bonus == 10.0
    assert saved.world_model.state_code == "scalar"  # what the shipped checkpoint reads
    other = cli("train", "agent", "--run", "p", *SIZES, "--preset", "tiny", "--until", "collect")
    assert other.returncode == 0, other.stderr
    assert load_settings(Path("runs/p/config.toml"), {}).world_model.preset == "tiny"


def test_train_agent_refuses_in_one_line_and_makes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    made = cli("collect", "--run", "other", "--steps", "4", "--envs", "1")
    assert made.returncode == 0, made.stderr
    one_line_error(
        cli("train", "agent", "--run", "other"),
        "runs/other is a run of another kind (it has no recipe.json); train agent makes its own "
        "run: give a new --run name",
    )
    one_line_error(
        cli("train", "agent", "--run", "n", "--until", "nowhere"),
        "--until takes one of collect, world-model, imitation, imagination, eval, not 'nowhere'",
    )
    one_line_error(
        cli("train", "agent", "--run", "n", "--until", "imitation"),
        "--until imitation needs --imitate",
    )
    one_line_error(
        cli("train", "agent", "--run", "n", "--eval-variants", "agent,best"),
        "--eval-variants takes some of agent, no-planner, random, demonstrator, floor, not "
        "agent,best",
    )
    one_line_error(
        cli("train", "agent", "--run", "n", "--validate-seed", "10020"),
        "the validation seeds 10020-10029 overlap the evaluation's 10000-10029: choosing by the "
        "seeds that score the result flatters it; move --validate-seed",
    )
    one_line_error(
        cli("train", "agent", "--run", "n", "--validate-seed", "1", "--eval-seed", "100"),
        "training played seeds 0-1; give a --validate-seed above them",
    )
    monkeypatch.setenv("POKEDREAMER_PLANNER__KIND", "none")
    one_line_error(
        cli("train", "agent", "--run", "n", "--imitate"),
        "the demonstrator plays the planner's subgoals: set a planner, not none",
    )
    usage = cli("train", "agent", "--run", "n", "--steps", "-1")
    assert usage.returncode == 2 and "--steps" in usage.stderr
    assert "Traceback" not in usage.stderr
    assert not Path("runs/n").exists()


def test_recipe_settings_fill_only_what_was_left_at_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POKEDREAMER_AGENT__BEHAVIOR_UPDATES")  # the tiny fixture's
    chosen = load_settings(None, {"agent.train_ratio": 8.0, "agent.envs": 3})
    settings = recipe_settings(chosen, imitate=True)
    assert (settings.agent.train_ratio, settings.agent.envs) == (8.0, 3)
    assert (settings.agent.shaping_scale, settings.agent.shaping_bonus) == (10.0, 10.0)
    assert settings.world_model.preset == "tiny" and settings.agent.end_at_badges == 1
    alone = recipe_settings(chosen)
    assert (alone.agent.train_ratio, alone.agent.envs) == (8.0, 3)
    assert (alone.world_model.preset, alone.agent.goal_code) == ("mini", "bits")
    assert alone.world_model.replay_event_share == alone.world_model.replay_map_share == 0.5
    assert (alone.agent.shaping_scale, alone.agent.shaping_bonus) == (10.0, 1.0)
    assert (alone.agent.pairing, alone.agent.behavior_updates) == ("subgoal", 32)
    assert (settings.agent.pairing, settings.agent.behavior_updates) == ("start", 8)


@pytest.mark.parametrize(
    ("recipe", "file"),
    [(IMITATION_RECIPE, "fixture-agent.toml"), (IMAGINATION_RECIPE, "imagination-agent.toml")],
)
def test_each_recipe_is_the_file_it_documents(recipe: dict[str, object], file: str) -> None:
    """The settings `train agent` applies are those of its file in docs/recipes, which people
    read and pass to other verbs with --config."""
    data = read_toml(REPO_ROOT / "docs" / "recipes" / file)
    named = {f"{section}.{key}": value for section, keys in data.items()
             for key, value in keys.items()}  # fmt: skip
    for dotted, value in recipe.items():
        assert named.get(dotted) == value, dotted
    load_settings(REPO_ROOT / "docs" / "recipes" / file, {})  # a valid config file
    # The shipped checkpoint's file also names what only its README commands use.
    assert set(named) - set(recipe) <= {"agent.checkpoint_every", "run.print_every"}


def test_recipe_settings_keep_a_default_chosen_on_purpose(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def scale(file_data: dict[str, object], overrides: dict[str, object]) -> float:
        settings = load_settings(None, overrides)
        return recipe_settings(settings, chosen_keys(file_data, overrides)).agent.shaping_scale

    monkeypatch.chdir(tmp_path)  # no ./config.toml
    assert scale({}, {}) == 10.0
    assert scale({"agent": {"shaping_scale": 1.0}}, {}) == 1.0
    assert scale({}, {"agent.shaping_scale": 1.0}) == 1.0
    monkeypatch.setenv("POKEDREAMER_AGENT__SHAPING_SCALE", "1.0")
    assert scale({}, {}) == 1.0


def test_train_agent_keeps_a_default_chosen_on_purpose_across_a_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ./config.toml, read because it is there, holds the defaults of a template: no choice.
    Path("config.toml").write_text("[agent]\nshaping_scale = 1.0\n", encoding="utf-8")
    until = ("--collect-steps", "120", "--until", "collect")
    template = cli("train", "agent", "--run", "t", *until)
    assert template.returncode == 0, template.stderr
    assert load_settings(Path("runs/t/config.toml"), {}).agent.shaping_scale == 10.0

    monkeypatch.setenv("POKEDREAMER_AGENT__SHAPING_SCALE", "1.0")
    first = cli("train", "agent", "--run", "b", *until)
    assert first.returncode == 0, first.stderr
    monkeypatch.delenv("POKEDREAMER_AGENT__SHAPING_SCALE")
    again = cli("train", "agent", "--run", "b", *until)
    assert again.returncode == 0 and "collect: done before" in again.stdout, again.stderr
    saved = load_settings(Path("runs/b/config.toml"), {}).agent
    assert (saved.shaping_scale, saved.goal_code) == (1.0, "bits")

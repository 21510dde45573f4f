"""Random buttons where an env is stuck (agent.explore_after, agent.explore_share): when they
replace the actor's, that a run never stuck plays and draws exactly as without them, and the
settings through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from clirun import cli
from tiny_run import TINY, TINY_ENV

from pokedreamer.agent.evaluate import evaluate_agent
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.policy import ActorPolicy, Turn
from pokedreamer.config import load_settings
from pokedreamer.rundir import RunDir

ACTOR = 9
"""The actor's button in the unit tests: not one of the 8 a random draw gives."""


def _turn(goals: list[str]) -> Turn:
    books = [SimpleNamespace(service=SimpleNamespace(goal=goal)) for goal in goals]
    return Turn(0, torch.full((len(goals),), ACTOR), None, torch.zeros(len(goals), 1), books)  # type: ignore[arg-type]


def test_a_goal_kept_explore_after_steps_gets_random_buttons_until_it_changes() -> None:
    rng = np.random.default_rng(0)
    policy = ActorPolicy(rng, 8, explore_after=3, explore_share=1.0)
    policy.start(2)
    pressed = []
    for step in range(6):  # env 0 keeps its goal, env 1's changes every step
        pressed.append(policy.act(_turn(["heal", f"leg {step}"])).tolist())
    assert [p[1] for p in pressed] == [ACTOR] * 6
    assert [p[0] == ACTOR for p in pressed] == [True, True, True, False, False, False]
    assert all(0 <= p[0] < 8 for p in pressed[3:])
    assert policy.explored == 3
    # A new goal is the actor's again for explore_after steps; so is a new episode.
    assert [policy.act(_turn(["gym", "x"]))[0].item() for _ in range(4)][:3] == [ACTOR] * 3
    policy.begin(0)
    assert policy.act(_turn(["gym", "x"]))[0].item() == ACTOR


def test_explore_share_is_the_share_of_a_stuck_envs_buttons_replaced() -> None:
    policy = ActorPolicy(np.random.default_rng(1), 8, explore_after=1, explore_share=0.25)
    policy.start(1)
    random = sum(policy.act(_turn(["heal"]))[0].item() != ACTOR for _ in range(4001))
    assert 900 < random < 1100, random  # 0.25 of 4,000 stuck steps; sd about 27


def test_no_draw_from_the_generator_while_no_env_is_stuck() -> None:
    rng = np.random.default_rng(2)
    before = rng.bit_generator.state
    for after in (0, 50):
        policy = ActorPolicy(rng, 8, explore_after=after, explore_share=1.0)
        policy.start(2)
        for _ in range(40):
            assert policy.act(_turn(["heal", "heal"])).tolist() == [ACTOR, ACTOR]
    assert rng.bit_generator.state == before and policy.explored == 0


def _actions(tmp_path: Path, name: str, **extra: object) -> list[int]:
    # Acting alone: the buttons are what is compared, and training would only take time.
    s = load_settings(
        None, {**TINY, "run.runs_dir": str(tmp_path), "agent.train_ratio": 0.0, **extra}
    )
    loop = AgentLoop(s, RunDir.create(s, name))
    loop.run(96)
    lines = (tmp_path / name / "episodes").glob("*/steps.jsonl")
    [steps] = list(lines)
    return [json.loads(line)["action"] for line in steps.read_text().splitlines()[1:]]


def test_through_the_loop_a_run_never_stuck_plays_as_without_the_setting(
    tmp_path: Path,
) -> None:
    """The same seeds give the same buttons when no goal is kept explore_after steps; kept
    for one step with a share of 1, the buttons are the random ones, and the loop says how
    many it pressed in metrics.jsonl."""
    plain = _actions(tmp_path, "plain")
    assert _actions(tmp_path, "never", **{"agent.explore_after": 10_000}) == plain
    mixed = _actions(tmp_path, "mixed", **{"agent.explore_after": 1, "agent.explore_share": 1.0})
    assert len(mixed) == len(plain) == 96 and mixed != plain
    lines = (tmp_path / "mixed" / "metrics.jsonl").read_text().splitlines()
    explored = [json.loads(line) for line in lines if '"kind":"explore"' in line]
    assert explored and 0 < explored[-1]["buttons"] <= 96


def test_explore_settings_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """POKEDREAMER_AGENT__EXPLORE_AFTER and _SHARE select it for a run, which keeps them; a
    share above 1 is refused in one line naming the variable."""
    for key, value in TINY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POKEDREAMER_AGENT__EXPLORE_AFTER", "4")
    monkeypatch.setenv("POKEDREAMER_AGENT__EXPLORE_SHARE", "0.5")
    made = cli("run", "--headless", "--steps", "64", "--name", "stuck")
    assert made.returncode == 0, made.stderr
    agent = load_settings(Path("runs/stuck/config.toml"), {}).agent
    assert (agent.explore_after, agent.explore_share) == (4, 0.5)
    metrics = Path("runs/stuck/metrics.jsonl").read_text()
    assert '"kind":"explore"' in metrics
    monkeypatch.setenv("POKEDREAMER_AGENT__EXPLORE_SHARE", "2")
    refused = cli("run", "--headless", "--steps", "8", "--name", "bad")
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and "POKEDREAMER_AGENT__EXPLORE_SHARE" in line, line


def test_evaluation_scores_the_actor_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """eval agent plays without the random buttons, whatever the run's settings say: they
    collect data; what is scored is the actor."""
    policies: list[ActorPolicy] = []
    start = ActorPolicy.start

    def kept_start(self: ActorPolicy, envs: int) -> None:
        policies.append(self)
        start(self, envs)

    monkeypatch.setattr(ActorPolicy, "start", kept_start)
    s = load_settings(None, {**TINY, "agent.explore_after": 1, "agent.explore_share": 1.0})
    report = evaluate_agent(s, None, tmp_path, episodes=2, max_steps=40, variants=("agent",))
    assert [e["steps"] for e in report["variants"]["agent"]["episodes"]] == [40, 40]
    assert len(policies) == 1 and policies[0].explored == 0

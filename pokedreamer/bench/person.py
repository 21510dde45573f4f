"""A scripted person at the buttons, to measure ``train imitation --demos`` without one.

It plays ``pokedreamer play``'s own loop (``make_loop(human=True)``): each step the loop asks for
the person's button, and the scripted demonstrator's choice for what is on screen and the
planner's subgoal is the answer, so the steps are recorded as any person's are (``demos/`` and
``demos.jsonl``). The demonstrator is a player that the planner's subgoals guide; a person would
play differently, and this stands in for a steady, competent one.

    python -m pokedreamer.bench.person --name NAME [--steps 750] [--seed N]

750 steps are five minutes at the Game Boy's own speed (24 frames a step).
"""

from __future__ import annotations

import argparse
import json

from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.play import make_loop
from pokedreamer.agent.policy import DemonstratorPolicy
from pokedreamer.config import load_settings


class ScriptedPerson:
    """Presses env 0's buttons for the loop, as the dashboard's keys would."""

    def __init__(self, loop: AgentLoop, seed: int) -> None:
        self.loop = loop
        self.player = DemonstratorPolicy(loop.planners.facts, loop.buttons, seed)
        self.player.start(1)

    def press(self) -> int | None:
        """The button for the screen the loop shows now (the loop's ``human_action``)."""
        assert self.loop.driver is not None
        env = self.loop.driver.envs[0]
        if env.episode_step == 0:
            self.player.begin(0)
        button = int(self.player.labels([env])[0])
        self.player.teachers[0].pressed(button)
        return button


def record(name: str, steps: int, seed: int | None) -> dict[str, object]:
    settings = load_settings(None, {"env.seed": seed})
    loop = make_loop(settings, name=name, human=True, train=False)
    person = ScriptedPerson(loop, settings.env.seed)
    # The loop waits on the person's keys here; the script answers instead.
    loop.commands.human_action = person.press  # type: ignore[method-assign]
    result = loop.run(steps)
    return {
        "run": str(loop.run_dir.path), "steps": result.steps, "episodes": result.episodes,
        "badges": result.badges, "demo_steps": loop.demonstrations.steps,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Record a scripted person's play as demos.")
    parser.add_argument("--name", required=True, help="the run to record into")
    parser.add_argument("--steps", type=int, default=750)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(record(args.name, args.steps, args.seed)))


if __name__ == "__main__":
    main()

"""``pokedreamer train agent``: the whole recipe in one run directory, stage after stage.

    collect      random buttons into the run's replay (``pokedreamer collect``)
    world-model  the world model on that replay (``train world-model``)
    imitation    with ``--imitate`` only: the actor learns the demonstrator's buttons (DAgger,
                 ``train imitation``) in the sub-run ``imitation/``, the world model held fixed
    imagination  the agent loop training online (``run``): world model and actor-critic in
                 imagination, rewards shaped by the planner's subgoals
    eval         ``eval agent`` on seeds the training never played, into ``eval/steps-<N>/``

``recipe.json`` records each stage's size and whether it is done. Every stage keeps its work when
stopped (Ctrl-C or SIGTERM), so running the same command again resumes the stage it stopped in
and skips the finished ones; asking for more imagination steps than were taken goes on from the
last checkpoint, and the evaluation is then made again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pokedreamer.agent.checkpointer import CHECKPOINT_NAME
from pokedreamer.agent.collect import collect
from pokedreamer.agent.evaluate import KNOWN_VARIANTS, evaluate_agent, markdown
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.planners import check_planner
from pokedreamer.agent.play import imitation_loop
from pokedreamer.config import Settings
from pokedreamer.errors import UserError
from pokedreamer.files import write_atomic
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import latest_checkpoint
from pokedreamer.world_model.heads import StateRanges
from pokedreamer.world_model.replay import Replay
from pokedreamer.world_model.train import train_world_model
from pokedreamer.world_model.trainer import CHECKPOINT_NAME as WM_CHECKPOINT_NAME

STAGES = ("collect", "world-model", "imitation", "imagination", "eval")
RECIPE_FILE = "recipe.json"
FORMAT = "pokedreamer-recipe"
IMITATION_RUN = "imitation"
"""The DAgger stage's own run folder inside the recipe's (its counters start from 0)."""
EVAL_FOLDER = "eval"

RECIPE_SETTINGS: dict[str, Any] = {
    "world_model.preset": "tiny",
    "world_model.checkpoint_every": 250,
    "env.max_steps": 3000,
    "agent.envs": 2,
    "agent.train_ratio": 32.0,
    "agent.behavior_updates": 8,
    "agent.end_at_badges": 1,
    "agent.shaping_scale": 10.0,
    "agent.shaping_bonus": 10.0,
    "imitation.beta_steps": 10_000,
}
"""docs/recipes/fixture-agent.toml's settings, which the recipe takes wherever the config file,
the environment and the flags leave a setting at its default."""


def recipe_settings(settings: Settings) -> Settings:
    """``settings`` with RECIPE_SETTINGS where they hold a setting's default."""
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in RECIPE_SETTINGS.items():
        section, key = dotted.split(".")
        current = getattr(settings, section)
        if getattr(current, key) == getattr(type(current)(), key):
            sections.setdefault(section, {})[key] = value
    update = {name: getattr(settings, name).model_copy(update=u) for name, u in sections.items()}
    return settings.model_copy(update=update)


@dataclass(frozen=True)
class Sizes:
    """How much each stage does: totals, so that a resumed stage knows what is left."""

    collect_steps: int = 50_000
    world_model_updates: int = 2_000
    imitation_steps: int = 0
    """0: no imitation stage."""
    steps: int = 30_000
    """Env steps of the imagination stage; 0 skips it."""
    eval_episodes: int = 30
    eval_seed: int = 10_000
    eval_max_steps: int = 3000
    eval_variants: tuple[str, ...] = ("agent",)


def check_sizes(sizes: Sizes, until: str | None) -> None:
    """One-line refusals of a recipe that cannot run, before any folder is made."""
    if until is not None and until not in STAGES:
        raise UserError(f"--until takes one of {', '.join(STAGES)}, not {until!r}")
    if until == "imitation" and not sizes.imitation_steps:
        raise UserError("--until imitation needs --imitate")
    unknown = [v for v in sizes.eval_variants if v not in KNOWN_VARIANTS]
    if unknown or not sizes.eval_variants:
        raise UserError(
            f"--eval-variants takes some of {', '.join(KNOWN_VARIANTS)}, not "
            f"{','.join(sizes.eval_variants) or 'none'}"
        )


def check_run_kind(path: Path) -> None:
    """A recipe goes into an empty or missing folder, or one of its own; others are refused."""
    if (path / RECIPE_FILE).is_file() or not path.exists():
        return
    if not path.is_dir() or any(path.iterdir()):
        raise UserError(
            f"{path} is a run of another kind (it has no {RECIPE_FILE}); train agent makes its "
            "own run: give a new --run name"
        )


class Recipe:
    """The stages of one run directory, and ``recipe.json``, where they are recorded."""

    def __init__(
        self,
        settings: Settings,
        run: RunDir,
        sizes: Sizes,
        ranges: StateRanges,
        say: Callable[[str], None],
    ) -> None:
        """``ranges``: the state heads' classes for the game; ``say``: tells the user a line."""
        self.settings, self.run_dir, self.sizes, self.say = settings, run, sizes, say
        self.ranges = ranges
        self.current = "collect"
        """The stage running now (the last one run, once done)."""
        self.record = self._load()
        imitate = bool(sizes.imitation_steps)
        if self.record.setdefault("imitate", imitate) != imitate:
            with_or_not = "with" if self.record["imitate"] else "without"
            raise UserError(
                f"{run.path} was started {with_or_not} --imitate; run it the same way, or give a "
                "new --run name"
            )
        self.record.setdefault("stages", {})
        self._save()

    @property
    def path(self) -> Path:
        return self.run_dir.path / RECIPE_FILE

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"format": FORMAT, "version": 1}
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise UserError(f"{self.path} is not a recipe record; fix or remove it")
        return record

    def _save(self) -> None:
        write_atomic(self.path, (json.dumps(self.record, indent=1) + "\n").encode())

    def stage(self, name: str) -> dict[str, Any]:
        stages: dict[str, dict[str, Any]] = self.record["stages"]
        return stages.setdefault(name, {"done": False, "seconds": 0.0})

    def _timed(self, name: str, work: Callable[[dict[str, Any]], None]) -> None:
        """Runs one stage, adding its wall clock to the record even when it is stopped."""
        stage = self.stage(name)
        start = time.perf_counter()
        try:
            work(stage)
        finally:
            stage["seconds"] = round(stage["seconds"] + time.perf_counter() - start, 1)
            self._save()

    # --- the stages -------------------------------------------------------------------------

    def run(self, until: str | None = None) -> None:
        """Every stage not done yet, in order, up to ``until``."""
        check_planner(self.settings.planner, self.settings.local_llm)
        stages = [s for s in STAGES if s != "imitation" or self.sizes.imitation_steps]
        if not self.sizes.steps:
            stages.remove("imagination")
        for name in stages:
            self.current = name
            self._timed(name, getattr(self, "_" + name.replace("-", "_")))
            if until is not None and STAGES.index(name) >= STAGES.index(until):
                self.say(f"stopped after {name} (--until); run again without it to go on")
                return
        self.say(
            f"done: {self.final_checkpoint()}, trained in {self.train_seconds():,.0f} s; "
            f"tensorboard --logdir {self.run_dir.path.parent}"
        )

    def _collect(self, stage: dict[str, Any]) -> None:
        target = self.sizes.collect_steps
        if stage["done"]:
            self.say(f"collect: done before ({stage['steps']:,} steps), skipped")
            return
        wm = self.settings.world_model
        have = len(Replay(self.run_dir.replay, wm.replay_capacity, wm.replay_chunk))
        if have:
            self.say(f"collect: resuming at {have:,} of {target:,} steps")
            stage["resumes"] = stage.get("resumes", 0) + 1
        # A resumed collection starts other episodes than the ones it has, on the next seeds.
        seed = self.settings.env.seed + self.settings.agent.envs * stage.get("resumes", 0)
        env = self.settings.env.model_copy(update={"seed": seed})
        settings = self.settings.model_copy(update={"env": env})
        if have < target:
            result = collect(settings, self.run_dir, target - have, self.settings.agent.envs)
            have = result.replay_steps
            self.say(
                f"collect: {result.steps:,} steps ({result.episodes} episodes ended) in "
                f"{result.seconds:.0f} s; the replay holds {have:,}"
            )
        stage.update(done=True, steps=have)

    def _world_model(self, stage: dict[str, Any]) -> None:
        target = self.sizes.world_model_updates
        done = _number(latest_checkpoint(self.run_dir.checkpoints, WM_CHECKPOINT_NAME))
        if stage["done"]:
            self.say(f"world model: done before ({done:,} updates), skipped")
            return
        if done:
            self.say(f"world model: resuming at update {done:,} of {target:,}")
        if done < target:
            result = train_world_model(self.settings, self.run_dir, target - done, self.ranges)
            done = result["updates"]
            self.say(
                f"world model: {done:,} updates, loss {result.get('loss', float('nan')):.3f}; "
                f"checkpoint {result['checkpoint']}"
            )
        stage.update(done=True, updates=done)

    def _imitation(self, stage: dict[str, Any]) -> None:
        target = self.sizes.imitation_steps
        if stage["done"]:
            self.say(f"imitation: done before ({stage['steps']:,} steps), skipped")
            return
        settings = self.settings.model_copy(
            update={
                "run": self.settings.run.model_copy(update={"runs_dir": str(self.run_dir.path)})
            }
        )
        loop = imitation_loop(settings, IMITATION_RUN, self._world_model_checkpoint())
        if loop.steps:
            self.say(f"imitation: resuming at step {loop.steps:,} of {target:,}")
        self._play(loop, "imitation", target)
        stage.update(done=loop.steps >= target, steps=loop.steps, episodes=loop.tally.episodes)

    def _imagination(self, stage: dict[str, Any]) -> None:
        target = self.sizes.steps
        run = self.run_dir
        own = latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
        # The run's own checkpoint resumes it; else the loop starts from the stage before.
        start = None if own else self._imitation_checkpoint() or self._world_model_checkpoint()
        loop = AgentLoop(self.settings, run, checkpoint=start, train=True)
        if loop.steps >= target:
            self.say(f"imagination: done before ({loop.steps:,} steps), skipped")
            stage.update(done=True)
            return
        if loop.steps:
            self.say(f"imagination: resuming at step {loop.steps:,} of {target:,}")
        self._play(loop, "imagination", target)
        stage.update(
            done=loop.steps >= target, steps=loop.steps, episodes=loop.tally.episodes,
            updates=loop.trainer.updates, badge_episodes=loop.tally.badge_episodes,
        )  # fmt: skip

    def _eval(self, stage: dict[str, Any]) -> None:
        sizes = self.sizes
        checkpoint = self.final_checkpoint()
        asked = {"checkpoint": str(checkpoint), "episodes": sizes.eval_episodes,
                 "seed": sizes.eval_seed, "max_steps": sizes.eval_max_steps,
                 "variants": list(sizes.eval_variants)}  # fmt: skip
        # One folder per evaluation, named by the env steps trained: a run trained on in pieces
        # keeps the report of each piece.
        out = self.run_dir.path / EVAL_FOLDER / f"steps-{self.trained_steps()}"
        if stage["done"] and stage.get("asked") == asked:
            self.say(f"eval: done before, skipped; the report is {out / 'report.md'}")
            return
        self._check_fresh_seeds()
        last = sizes.eval_seed + sizes.eval_episodes - 1
        self.say(
            f"eval: {sizes.eval_episodes} episodes per variant on seeds {sizes.eval_seed}-{last} "
            f"(never played in training), up to {sizes.eval_max_steps:,} steps each"
        )
        if out.exists():  # what an interrupted evaluation left
            shutil.rmtree(out)
        env = self.settings.env.model_copy(update={"seed": sizes.eval_seed})
        report = evaluate_agent(
            self.settings.model_copy(update={"env": env}), checkpoint, out, sizes.eval_episodes,
            sizes.eval_max_steps, sizes.eval_variants,
        )  # fmt: skip
        self.say(markdown(report).rstrip())
        self.say(f"report: {out / 'report.md'}")
        record = {
            "kind": "eval",
            "step": self.trained_steps(),
            "train_seconds": self.train_seconds(),
        }
        self.run_dir.log_metrics({**record, **eval_metrics(report)})
        stage.update(done=True, asked=asked)

    # --- what the stages share --------------------------------------------------------------

    def _play(self, loop: AgentLoop, name: str, target: int) -> None:
        """Runs ``loop`` to ``target`` env steps under a progress bar."""
        columns = (TextColumn(name), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                   TextColumn("{task.fields[rate]:.0f} steps/s, badges {task.fields[badges]}"),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(name, total=target, completed=loop.steps, rate=0.0, badges=0)

            def show(loop: AgentLoop, rate: float) -> None:
                bar.update(task, completed=loop.steps, rate=rate, badges=loop.tally.badge_episodes)

            loop.progress, loop.say = show, self.say
            result = loop.run(target - loop.steps)
        if loop.imitation is not None:
            updates = f"{loop.imitation.updates:,} imitation updates"
        else:
            updates = f"{result.updates:,} world-model updates"
        self.say(
            f"{name}: {loop.steps:,} steps, {result.episodes} episodes ({result.badges} with a "
            f"badge), {updates}; {result.seconds:.0f} s this time; checkpoint {result.checkpoint}"
        )

    def _world_model_checkpoint(self) -> Path:
        found = latest_checkpoint(self.run_dir.checkpoints, WM_CHECKPOINT_NAME)
        if found is None:
            raise UserError(f"{self.run_dir.checkpoints} holds no world model: its stage is undone")
        return found

    def _imitation_checkpoint(self) -> Path | None:
        folder = self.run_dir.path / IMITATION_RUN / "checkpoints"
        return latest_checkpoint(folder, CHECKPOINT_NAME) if self.sizes.imitation_steps else None

    def final_checkpoint(self) -> Path:
        """The weights the recipe ends with: the last stage's latest checkpoint."""
        own = latest_checkpoint(self.run_dir.checkpoints, CHECKPOINT_NAME)
        return own or self._imitation_checkpoint() or self._world_model_checkpoint()

    def trained_steps(self) -> int:
        """Env steps the final weights learnt from, after collecting: imitation and imagination."""
        stages = self.record["stages"]
        return sum(int(stages.get(s, {}).get("steps", 0)) for s in ("imitation", "imagination"))

    def train_seconds(self) -> float:
        """Wall clock of every training stage so far (evaluation not counted)."""
        stages = self.record["stages"]
        return round(sum(v["seconds"] for k, v in stages.items() if k != "eval"), 1)

    def _check_fresh_seeds(self) -> None:
        """Refuses evaluation seeds at or below the highest seed a training episode began with
        (every stage seeds its episodes upwards from env.seed)."""
        stages, seed, envs = self.record["stages"], self.settings.env.seed, self.settings.agent.envs
        collected = envs * (stages.get("collect", {}).get("resumes", 0) + 1)
        played = [int(stages.get(s, {}).get("episodes", 0)) for s in ("imitation", "imagination")]
        last = seed + max(collected, *played) - 1
        if self.sizes.eval_seed <= last:
            raise UserError(f"training played seeds {seed}-{last}; give an --eval-seed above them")


def eval_metrics(report: dict[str, Any]) -> dict[str, float]:
    """An evaluation's figures as metrics: each variant's badge rate, its 95% interval and the
    median steps to it (when any episode got it)."""
    metrics: dict[str, float] = {}
    for variant, result in report["variants"].items():
        badge = result["stages"]["badge"]
        low, high = badge["interval_95"]
        name = f"eval/{variant}/badge"
        metrics |= {
            f"{name}_rate": badge["reached"],
            f"{name}_low_95": low,
            f"{name}_high_95": high,
        }
        if badge["median_steps"] is not None:
            metrics[f"{name}_median_steps"] = float(badge["median_steps"])
    return metrics


def _number(checkpoint: Path | None) -> int:
    """The step or update count in a checkpoint's name, ``wm-000002250``; 0 for none."""
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else 0

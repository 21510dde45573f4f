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
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pokedreamer.agent.checkpointer import CHECKPOINT_NAME
from pokedreamer.agent.collect import collect
from pokedreamer.agent.evaluate import eval_metrics, evaluate_from, markdown
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.planners import check_planner
from pokedreamer.agent.play import imitation_loop
from pokedreamer.agent.recipe_plan import RECIPE_FILE, STAGES, Sizes, check_seeds
from pokedreamer.agent.stage_bar import played, stage_bar
from pokedreamer.agent.validation import best, checkpoint_number, validate
from pokedreamer.agent.validation import record as record_validation
from pokedreamer.config import Settings
from pokedreamer.errors import UserError
from pokedreamer.files import write_atomic
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import latest_checkpoint
from pokedreamer.world_model.distributed import SINGLE, Ranks
from pokedreamer.world_model.heads import StateRanges
from pokedreamer.world_model.replay import run_replay
from pokedreamer.world_model.train import train_world_model
from pokedreamer.world_model.trainer import CHECKPOINT_NAME as WM_CHECKPOINT_NAME

FORMAT = "pokedreamer-recipe"
IMITATION_RUN = "imitation"
"""The DAgger stage's own run folder inside the recipe's (its counters start from 0)."""
EVAL_FOLDER = "eval"
VALIDATION_FOLDER = "validation"


class Recipe:
    """The stages of one run directory, and ``recipe.json``, where they are recorded."""

    def __init__(
        self,
        settings: Settings,
        run: RunDir,
        sizes: Sizes,
        ranges: StateRanges,
        say: Callable[[str], None],
        ranks: Ranks = SINGLE,
    ) -> None:
        """``ranges``: the state heads' classes for the game; ``say``: tells the user a line;
        ``ranks``: under torchrun, the learner's processes (rank 0 keeps the record)."""
        self.settings, self.run_dir, self.sizes, self.say = settings, run, sizes, say
        self.ranges, self.ranks = ranges, ranks
        self.current = "collect"
        """The stage running now (the last one run, once done)."""
        self._started: float | None = None
        """When the stage running now last added its time to the record (perf_counter), None
        between stages."""
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
        if self._started is not None:  # the running stage's clock, into its record
            now, stage = time.perf_counter(), self.stage(self.current)
            stage["seconds"] = round(stage["seconds"] + now - self._started, 1)
            self._started = now
        if not self.ranks.is_main:
            return
        write_atomic(self.path, (json.dumps(self.record, indent=1) + "\n").encode())

    def stage(self, name: str) -> dict[str, Any]:
        stages: dict[str, dict[str, Any]] = self.record["stages"]
        return stages.setdefault(name, {"done": False, "seconds": 0.0})

    def _timed(self, name: str, work: Callable[[dict[str, Any]], None]) -> None:
        """Runs one stage, its wall clock added to the record at each save (a run killed
        outright keeps the time it spent) and when it ends or is stopped."""
        self.current, self._started = name, time.perf_counter()
        try:
            work(self.stage(name))
        finally:
            self._save()
            self._started = None

    # --- the stages -------------------------------------------------------------------------

    def run(self, until: str | None = None) -> None:
        """Every stage not done yet, in order, up to ``until``."""
        check_planner(self.settings.planner, self.settings.local_llm)
        if self.ranks.distributed:
            self._run_distributed()
            return
        stages = [s for s in STAGES if s != "imitation" or self.sizes.imitation_steps]
        if not self.sizes.steps:
            stages.remove("imagination")
        for name in stages:
            self._timed(name, getattr(self, "_" + name.replace("-", "_")))
            if until is not None and STAGES.index(name) >= STAGES.index(until):
                self.say(f"stopped after {name} (--until); run again without it to go on")
                return
        self.say(
            f"done: {self.final_checkpoint()}, trained in {self.train_seconds():,.0f} s; "
            f"tensorboard --logdir {self.run_dir.path.parent}"
        )

    def _run_distributed(self) -> None:
        """Under torchrun: the replay-driven stage, the world model, on every rank. The other
        stages play emulators in one process and run without torchrun."""
        if not self.stage("collect")["done"]:
            raise UserError(
                "under torchrun, train agent trains the world model on the run's collected "
                "replay: collect first, without torchrun (the same command with --until collect)"
            )
        self._timed("world-model", self._world_model)
        self.say(
            "stopped after world-model: the next stages play emulators in one process; run the "
            "same command without torchrun to go on"
        )

    def _collect(self, stage: dict[str, Any]) -> None:
        target = self.sizes.collect_steps
        if stage["done"]:
            self.say(f"collect: done before ({stage['steps']:,} steps), skipped")
            return
        wm = self.settings.world_model
        have = len(run_replay(self.run_dir.replay, wm))
        if have:
            self.say(f"collect: resuming at {have:,} of {target:,} steps")
            stage["resumes"] = stage.get("resumes", 0) + 1
        # A resumed collection starts other episodes than the ones it has, on the next seeds.
        seed = self.settings.env.seed + self.settings.agent.envs * stage.get("resumes", 0)
        env = self.settings.env.model_copy(update={"seed": seed})
        settings = self.settings.model_copy(update={"env": env})
        if have < target:
            policy = self.sizes.collect_policy
            result = collect(settings, self.run_dir, target - have, settings.agent.envs, policy)
            have = result.replay_steps
            self.say(
                f"collect: {result.steps:,} steps of {policy} ({result.ended()}) in "
                f"{result.seconds:.0f} s; the replay holds {have:,}"
            )
        stage.update(done=True, steps=have, policy=self.sizes.collect_policy)

    def _world_model(self, stage: dict[str, Any]) -> None:
        target = self.sizes.world_model_updates
        done = checkpoint_number(latest_checkpoint(self.run_dir.checkpoints, WM_CHECKPOINT_NAME))
        if stage["done"]:
            self.say(f"world model: done before ({done:,} updates), skipped")
            return
        if done:
            self.say(f"world model: resuming at update {done:,} of {target:,}")
        if done < target:
            result = train_world_model(
                self.settings, self.run_dir, target - done, self.ranges, self.ranks
            )
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
        target, every = self.sizes.steps, self.sizes.eval_every
        validate_every, run = self.sizes.validate_every, self.run_dir
        own = latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
        # The run's own checkpoint resumes it; else it starts from the stage before.
        start = None if own else self._imitation_checkpoint() or self._world_model_checkpoint()
        loop = AgentLoop(self.settings, run, checkpoint=start, train=True)
        if loop.steps >= target:
            self.say(f"imagination: done before ({loop.steps:,} steps), skipped")
            stage.update(steps=loop.steps)  # a stopped run may have gone further
            self._validate(stage, latest_checkpoint(run.checkpoints, CHECKPOINT_NAME))
            stage["done"] = True
            return
        if loop.steps:
            self.say(f"imagination: resuming at step {loop.steps:,} of {target:,}")

        def record(loop: AgentLoop) -> None:
            stage.update(
                steps=loop.steps, episodes=loop.tally.episodes, updates=loop.trainer.updates,
                badge_episodes=loop.tally.badge_episodes,
            )  # fmt: skip

        begun, passed = loop.steps, dict[str, int]()

        def due(name: str, n: int) -> bool:
            """Whether the loop went past a multiple of ``n`` since ``name`` last asked."""
            before = passed.get(name, begun // max(n, 1))
            passed[name] = loop.steps // max(n, 1)
            return bool(n) and passed[name] > before

        def pause(loop: AgentLoop) -> None:
            """Each --validate-every and --eval-every steps: a checkpoint, validated and (for
            the curve) evaluated, the training envs waiting with their episodes for it; the
            last ones are made after the stage."""
            validate, curve = due("validate", validate_every), due("eval", every)
            if loop.steps >= target or not (validate or curve):
                return
            checkpoint = loop.save()
            record(loop)
            self._save()
            if validate:
                self._validate(stage, checkpoint)
            if curve:
                start_eval = time.perf_counter()
                try:
                    self._evaluate(self.stage("eval"), checkpoint)
                finally:
                    # The curve's wall clock is training's: its evaluations are not counted.
                    spent = round(time.perf_counter() - start_eval, 1)
                    stage["eval_seconds"] = stage.get("eval_seconds", 0.0) + spent

        pieces = [n for n in (validate_every, every) if n]
        loop.every = (math.gcd(*pieces), pause) if pieces else None
        self._play(loop, "imagination", target)
        record(loop)
        self._save()
        self._validate(stage, latest_checkpoint(run.checkpoints, CHECKPOINT_NAME))
        # Done only once its last checkpoint is validated: a run stopped in that validation
        # makes it when resumed, and may end with that checkpoint.
        stage["done"] = loop.steps >= target

    def _validate(self, stage: dict[str, Any], checkpoint: Path | None) -> None:
        """With --validate-every: plays ``checkpoint`` on the validation seeds, once, and
        tells which checkpoint is the best so far (the one the recipe ends with). Its time
        counts as training's: it chooses the weights."""
        sizes = self.sizes
        if not sizes.validate_every or checkpoint is None:
            return
        step, validations = checkpoint_number(checkpoint), stage.setdefault("validations", {})
        if str(step) in validations:
            return
        self._check_fresh_seeds()
        validated, report = validate(
            self.settings, checkpoint, self.run_dir.path / VALIDATION_FOLDER / f"steps-{step}",
            sizes.validate_seed, sizes.validate_episodes, sizes.eval_max_steps,
        )  # fmt: skip
        record_validation(validations, validated)
        self._save()
        kept = f"step {best(validations).step:,}"  # type: ignore[union-attr]  # one at least
        self.say(
            f"validation at step {step:,} ({sizes.validate_episodes} episodes from seed "
            f"{sizes.validate_seed}): {validated.line()}; the best so far: {kept}"
        )
        metrics = eval_metrics(report, "validation")
        self.run_dir.log_metrics({"kind": "validation", "step": step, **metrics})

    def _eval(self, stage: dict[str, Any]) -> None:
        if stage["done"] and stage.get("asked") == self._asked():
            self.say(f"eval: done before, skipped; the report is {self._eval_folder()}")
            return
        self._evaluate(stage)

    def _asked(self) -> dict[str, Any]:
        sizes = self.sizes
        # The steps trained too: a checkpoint the curve evaluated and then chose is evaluated
        # again, as the run's figure at its end.
        return {"checkpoint": str(self.final_checkpoint()), "steps": self.trained_steps(),
                "episodes": sizes.eval_episodes, "seed": sizes.eval_seed,
                "max_steps": sizes.eval_max_steps,
                "variants": list(sizes.eval_variants)}  # fmt: skip

    def _eval_folder(self) -> Path:
        """One folder per evaluation, named by the env steps trained: a run trained in pieces
        keeps the report of each."""
        return self.run_dir.path / EVAL_FOLDER / f"steps-{self.trained_steps()}"

    def _evaluate(self, stage: dict[str, Any], checkpoint: Path | None = None) -> None:
        """``eval agent`` of ``checkpoint`` (None: the recipe's final one); the figures go to
        the run's metrics."""
        sizes, out, asked = self.sizes, self._eval_folder(), self._asked()
        if checkpoint is not None:
            asked["checkpoint"] = str(checkpoint)
        trained = self.train_seconds()  # before this evaluation's own time
        self._check_fresh_seeds()
        last = sizes.eval_seed + sizes.eval_episodes - 1
        self.say(
            f"eval: {sizes.eval_episodes} episodes per variant on seeds {sizes.eval_seed}-{last} "
            f"(never played in training), up to {sizes.eval_max_steps:,} steps each"
        )
        report = evaluate_from(
            self.settings, Path(asked["checkpoint"]), out, sizes.eval_seed,
            sizes.eval_episodes, sizes.eval_max_steps, sizes.eval_variants,
        )  # fmt: skip
        self.say(markdown(report).rstrip())
        self.say(f"report: {out / 'report.md'}")
        # step: the env steps trained; checkpoint_step: the weights', when validation chose
        # an earlier checkpoint than the last.
        record = {"kind": "eval", "step": self.trained_steps(),
                  "checkpoint_step": checkpoint_number(Path(asked["checkpoint"]))}  # fmt: skip
        self.run_dir.log_metrics({**record, "train_seconds": trained, **eval_metrics(report)})
        stage.update(done=True, asked=asked)

    # --- what the stages share --------------------------------------------------------------
    def _play(self, loop: AgentLoop, name: str, end: int) -> None:
        """Runs ``loop`` to ``end`` env steps under a progress bar."""
        say = self.say
        with stage_bar(loop, name, end) as self.say:  # lines told meanwhile go above the bar
            try:
                result = loop.run(end - loop.steps)
            finally:
                self.say = say
        self.say(played(loop, name, result))

    def _world_model_checkpoint(self) -> Path:
        found = latest_checkpoint(self.run_dir.checkpoints, WM_CHECKPOINT_NAME)
        if found is None:
            raise UserError(f"{self.run_dir.checkpoints} holds no world model: its stage is undone")
        return found

    def _imitation_checkpoint(self) -> Path | None:
        folder = self.run_dir.path / IMITATION_RUN / "checkpoints"
        return latest_checkpoint(folder, CHECKPOINT_NAME) if self.sizes.imitation_steps else None

    def final_checkpoint(self) -> Path:
        """The weights the recipe ends with: the imagination checkpoint that did best on the
        validation seeds, else the last stage's latest checkpoint."""
        validations = self.record["stages"].get("imagination", {}).get("validations", {})
        chosen = best(validations) if self.sizes.validate_every else None
        if chosen is not None:
            return Path(chosen.checkpoint)
        own = latest_checkpoint(self.run_dir.checkpoints, CHECKPOINT_NAME)
        return own or self._imitation_checkpoint() or self._world_model_checkpoint()

    def trained_steps(self) -> int:
        """Env steps the final weights learnt from, after collecting: imitation and imagination."""
        stages = self.record["stages"]
        return sum(int(stages.get(s, {}).get("steps", 0)) for s in ("imitation", "imagination"))

    def train_seconds(self) -> float:
        """Wall clock of the training stages so far, the stage running now included, and
        evaluations not counted."""
        stages = self.record["stages"]
        spent = sum(
            v["seconds"] - v.get("eval_seconds", 0) for k, v in stages.items() if k != "eval"
        )
        if self._started is not None and self.current != "eval":
            spent += time.perf_counter() - self._started
        return round(spent, 1)

    def _check_fresh_seeds(self) -> None:
        """Refuses evaluation or validation seeds a training episode began with."""
        env, envs = self.settings.env, self.settings.agent.envs
        check_seeds(self.sizes, env.seed, envs, self.record["stages"])

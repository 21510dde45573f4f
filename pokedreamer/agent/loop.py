"""The agent loop: System 1 acting in N emulators, System 2 planning beside it, learning online.

``AgentLoop`` wires the parts and runs them; each part has one job:

- ``Driver`` (driver.py) steps the envs and keeps each env's books (books.py), handing every
  step to the writers (writers.py: replay, demonstrations, events) and the episode recorder;
- a ``Policy`` (policy.py) picks the buttons: the actor, random, the demonstrator or DAgger;
- ``Learner`` (learner.py) trains the world model and the actor-critic, and the imitation;
- ``Checkpointer`` (checkpointer.py) saves and resumes;
- ``Commands`` (commands.py) applies the watchers' commands between steps;
- ``Planners`` (planners.py) gives each env's episode its planner.

Each iteration of ``run``: apply the commands; encode every env's active subgoal; filter each
env's posterior with its newest observation and pick the buttons in one batched forward pass;
step the envs; let each env's planner look at the new state (never waiting on an LLM); then
learn — the updates owed at the configured ratios; then, when the loop keeps a pace (pace.py),
wait out the rest of the step's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokedreamer.agent.books import EnvBook, StepCallback
from pokedreamer.agent.checkpointer import (
    Checkpointer,
    Start,
)
from pokedreamer.agent.commands import Commands
from pokedreamer.agent.driver import Driver
from pokedreamer.agent.events import EventBus, StatusEvent
from pokedreamer.agent.imagined import ImaginedFrames
from pokedreamer.agent.learner import Learner
from pokedreamer.agent.pace import UNCAPPED, Pace
from pokedreamer.agent.planners import Planners
from pokedreamer.agent.policy import Turn, check_policy, make_policy
from pokedreamer.agent.tally import LoopResult, Tally
from pokedreamer.agent.writers import Demonstrations, Events, ReplayWriter
from pokedreamer.config import ImitationSettings, PlannerKind, Settings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.graph import GRAPH_FILE, MapGraph
from pokedreamer.env.rom import Rom, load_rom
from pokedreamer.env.state import GameState
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.subgoals import describe
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.replay import Replay

METRICS_EVERY_S = 1.0


class AgentLoop:
    """Plays, records, plans and learns; ``run()`` blocks, ``send()`` steers it from any thread."""

    def __init__(
        self,
        settings: Settings,
        run: RunDir,
        *,
        checkpoint: Path | None = None,
        train: bool = True,
        human: bool = False,
        bus: EventBus | None = None,
        policy: str = "agent",
        store: bool | None = None,
        rom: Rom | None = None,
        imitation: ImitationSettings | None = None,
        speed: int = UNCAPPED,
        map_graph: MapGraph | None = None,
        fresh_actor: bool = False,
    ) -> None:
        """``policy``: who presses the buttons (POLICIES); ``imitation``: the agent's actor
        learns from the demonstrator (DAgger). ``store``: keep the steps in replay (by
        default, when training). ``speed``: the pace to start at, in times the Game Boy's own
        speed (pace.watched_speed: agent.speed when a person watches); uncapped by default.
        ``map_graph``: the maps known at the start; by default the run's own map_graph.json (a
        resumed run keeps what it saw), else none. The run's envs grow it. ``fresh_actor``: take
        only the world model of ``checkpoint``; the actor and critic start untrained."""
        check_policy(policy, imitation is not None, settings.planner.kind)
        self.settings = settings
        self.run_dir = run
        self.bus = bus or EventBus()
        self.training = train and settings.agent.train_ratio > 0
        # Replay is for learning: an acting-only run keeps its episodes, not a replay.
        self.store = self.training if store is None else store
        # The ROM is checked before an emulator or a model is built: a bad file costs nothing.
        self.rom = rom or load_rom(settings.env.rom or str(ROM_PATH))
        # The [local_llm] section belongs to the local model's server (planner/local.py).
        graph_file = run.path / GRAPH_FILE
        if map_graph is None:
            map_graph = MapGraph.load(graph_file) if graph_file.exists() else MapGraph()
        self.map_graph = map_graph
        self.planners = Planners(
            settings.planner, self.rom.game, local=settings.local_llm, graph=map_graph
        )
        self.planners.ledger.restore(_last_planner_metrics(run))
        self.buttons = settings.env.action_names
        self.num_actions = settings.env.num_actions

        # Which weights: this run's own latest checkpoint (a resume) beats --checkpoint.
        start = Start.find(run, checkpoint)
        if start is not None and fresh_actor and not start.resume:
            start = start.world_model_only()
        wm_settings = settings.world_model
        if start is not None:
            wm_settings = start.world_model_settings(wm_settings, self.num_actions)
        self.learner = Learner(
            settings, wm_settings, self.num_actions, run, self.planners.facts, self.bus, imitation
        )
        self.trainer, self.replay = self.learner.trainer, self.learner.replay
        self.preset, self.imitation = self.learner.preset, self.learner.imitation
        self.learning = self.training or self.learner.imitation is not None
        """Whether anything learns: the world model and actor-critic, or the actor imitating."""
        self.tally = Tally(settings.env.seed)
        self.finished = self.tally.finished
        """Every episode ended in this process (see ``Tally.finished``)."""
        self.checkpointer = Checkpointer(run, self.learner, self.tally, settings, self.rom.game)
        saved_pool = self.checkpointer.load(start, self.learning) if start is not None else []

        self.commands = Commands(
            self.bus, self.buttons, self.planners, status=self.status,
            save=self.save, envs=self._envs, human=human, speed=speed,
        )  # fmt: skip
        self.pace = Pace(settings.env.action_repeat)
        """Waits out each step's time at the commanded speed (tests hand it a fake clock)."""
        # The offline planner's knowledge seeds the subgoals behaviour learning rehearses, so
        # the actor has practised a stage's subgoals before the quest reaches it.
        if self.planners.kind != "none":
            for stage in self.planners.heuristic.stages:
                self.learner.pool.add(stage.plan.subgoals)
        if saved_pool:  # a resumed run draws from the pool as it was, in its order
            self.learner.pool.restore(saved_pool)

        self.policy = make_policy(
            policy, self.learner, self.planners.facts, self.buttons, settings.env.seed,
            settings.agent.explore_after, settings.agent.explore_share,
        )  # fmt: skip
        self.demonstrations = Demonstrations(
            run.path / "demos", wm_settings.replay_capacity, wm_settings.replay_chunk
        )
        self.events = Events(self.bus, self.buttons, self.planners.facts, self.tally)
        self.imagined = ImaginedFrames(
            self.learner.world_model, self.num_actions, self.learner.device, self.bus,
            self.learner.tiles,
        )  # fmt: skip
        self.driver: Driver | None = None
        """The envs of the latest ``run``."""
        self._logged_calls = self.planners.ledger.calls
        self._logged_explored = 0
        self.progress: Callable[[AgentLoop, float], None] | None = None
        """Called about once a second with the step rate (the headless CLI prints a line)."""
        self.every: tuple[int, Callable[[AgentLoop], None]] | None = None  # (N, hook): below
        self.say: Callable[[str], None] | None = None
        """Called with a line to tell the user once, such as the LLM's token budget being
        spent (the headless CLI prints it; the dashboard gets it as a status message)."""

    # --- the loop -----------------------------------------------------------------------------

    def run(self, steps: int | None = None, episodes: int | None = None) -> LoopResult:
        """Plays until ``steps`` more env steps (all envs together; None or 0: until Quit), or
        with ``episodes``, until the episodes of the first that many seeds have all ended."""
        settings, commands, learner = self.settings, self.commands, self.learner
        n, device = settings.agent.envs, learner.device
        writers: list[StepCallback] = [ReplayWriter(learner.replay)] if self.store else []
        self.planners.open()  # the LLM's client, and the local model's server, for this run
        try:
            self.driver = driver = Driver(
                settings, self.rom, self.run_dir, self.planners, self.tally,
                on_step=[*writers, self.demonstrations, self.events.step],
                on_plan=[self.events.plan], on_lost=self._workers_lost,
            )  # fmt: skip
        except BaseException:
            self.planners.close()
            raise
        self.policy.start(n)
        target = self.steps + steps if steps else None
        # "stepping": the loop itself, from the first reset to the last step, without starting
        # and closing the envs or the final checkpoint (in LoopResult.seconds).
        timings = {"model": 0.0, "train": 0.0}
        start = last_metrics = time.perf_counter()
        steps_at_metrics = self.steps
        checkpoint: Path | None = None
        self.bus.publish(self.status("started"))
        try:
            driver.start()
            actions_prev = torch.zeros(n, dtype=torch.int64)
            is_first = torch.ones(n, dtype=torch.bool)
            post = learner.world_model.rssm.initial(n)
            frames, vectors = driver.observations()
            obs_prev: np.ndarray | None = None  # what the model observed a step ago
            while not commands.quitting and (target is None or self.steps < target):
                if episodes is not None and self.tally.seeds_done(episodes):
                    break
                if commands.paused or commands.human:
                    driver.flush()  # what is on screen is written before waiting
                if not commands.wait_for_turn():
                    break
                # --- act
                self.pace.begin()
                t0 = time.perf_counter()
                goal = driver.goals(learner.pool).to(device)
                prev_post = post
                obs = learner.observation(frames)
                actor, post = learner.behavior.policy_step(
                    learner.world_model, post, actions_prev.to(device),
                    torch.from_numpy(obs).to(device),
                    torch.from_numpy(vectors).to(device),
                    is_first.to(device), goal, settings.agent.sample,
                )  # fmt: skip
                actions = self.policy.act(Turn(self.steps, actor.cpu(), post, goal, driver.envs))
                human = False
                if commands.human:
                    human_action = commands.human_action()
                    if commands.quitting:
                        break
                    if human_action is not None:
                        actions[0], human = human_action, True
                timings["model"] += time.perf_counter() - t0
                if self.imagined.due():
                    self.imagined.publish(self.steps, prev_post, actions_prev, is_first, obs_prev)
                obs_prev = obs
                # --- step the envs
                stepped = driver.step(actions)
                self.tally.steps += n
                ended = driver.take(stepped, actions, human)
                actions_prev = actions
                is_first = torch.zeros(n, dtype=torch.bool)
                if ended.any():
                    driver.reset(ended)
                    for i in np.flatnonzero(ended):
                        self.policy.begin(int(i))
                    is_first = torch.from_numpy(ended.copy())
                    actions_prev = torch.where(is_first, 0, actions_prev)
                frames, vectors = driver.observations()
                # --- learn
                t0 = time.perf_counter()
                if self.training:
                    learner.train_owed(self.steps, self._pursued())
                if learner.imitation is not None:
                    learner.imitate_owed(self.steps)
                timings["train"] += time.perf_counter() - t0
                every = settings.agent.checkpoint_every if self.learning else 0
                if every and self.steps // every != (self.steps - n) // every:
                    self.save()
                piece, hook = self.every or (0, None)
                if hook is not None and self.steps // piece != (self.steps - n) // piece:
                    hook(self)  # e.g. the recipe's evaluation: the envs' episodes wait for it
                    last_metrics, steps_at_metrics = time.perf_counter(), self.steps
                now = time.perf_counter()
                if now - last_metrics >= METRICS_EVERY_S:
                    rate = (self.steps - steps_at_metrics) / (now - last_metrics)
                    spent = self._log_spending()
                    self._log_exploring()
                    learner.publish_metrics(self.steps, {"steps_per_s": rate, **spent})
                    if self.progress is not None:
                        self.progress(self, rate)
                    last_metrics, steps_at_metrics = now, self.steps
                # Acting waits, learning does not: the updates owed were all taken above.
                self.pace.wait(commands.speed)
        finally:
            stepping = time.perf_counter() - start
            # Also on Ctrl-C or an error: the work so far is kept and the logs are readable.
            driver.close()
            self.map_graph.save(self.run_dir.path / GRAPH_FILE)
            learner.replay.flush()
            self.demonstrations.flush()
            self.planners.close()
            self._log_spending()
            self._log_exploring()
            # Acting only changes nothing worth keeping (SaveCheckpoint still writes one).
            checkpoint = self.save() if self.learning else None
            saved = f"; checkpoint {checkpoint}" if checkpoint else ""
            self.bus.publish(self.status(f"stopped{saved}", finished=True))
        d = driver.timings
        return LoopResult(
            steps=self.steps, episodes=self.tally.episodes, updates=self.trainer.updates,
            seconds=time.perf_counter() - start, checkpoint=str(checkpoint) if checkpoint else None,
            badges=self.tally.badge_episodes,
            timings={"env": d["env"], "model": timings["model"], "train": timings["train"],
                     "hidden": d["hidden"], "wait": d["wait"], "stepping": stepping},
        )  # fmt: skip

    def _log_spending(self) -> dict[str, float]:
        """The LLM's spending as metrics; a ``kind: "planner"`` line in metrics.jsonl when it
        changed, and the ledger's notice told once."""
        ledger = self.planners.ledger
        metrics = ledger.metrics()
        if metrics and ledger.calls != self._logged_calls:
            self._logged_calls = ledger.calls
            self.run_dir.log_metrics({"kind": "planner", "step": self.steps, **ledger.totals()})
        notice = ledger.take_notice()
        if notice:
            self.bus.publish(self.status(notice))
            if self.say is not None:
                self.say(notice)
        return metrics

    def _log_exploring(self) -> None:
        """The random buttons pressed where envs were stuck (agent.explore_after) so far, a
        ``kind: "explore"`` line in metrics.jsonl when the count changed."""
        explored = getattr(self.policy, "explored", 0)
        if explored != self._logged_explored:
            self._logged_explored = explored
            self.run_dir.log_metrics({"kind": "explore", "step": self.steps, "buttons": explored})

    def _workers_lost(self, envs: list[int]) -> None:
        """A Ray worker died and was replaced: its envs' episodes were cut short (a
        ``kind: "workers"`` line in metrics.jsonl, a status message and a line told)."""
        self.run_dir.log_metrics({"kind": "workers", "step": self.steps, "lost_envs": envs})
        message = f"env worker lost and restarted: envs {envs} begin new episodes"
        self.bus.publish(self.status(message))
        if self.say is not None:
            self.say(message)

    def _envs(self) -> list[EnvBook]:
        return self.driver.envs if self.driver is not None else []

    def _pursued(self) -> list[Any] | None:
        """The subgoals the envs pursue now, for behaviour learning; None without a planner."""
        if self.planners.kind == "none":
            return None
        return self.driver.pursued() if self.driver is not None else []

    # --- steering and watching ----------------------------------------------------------------

    def send(self, command: Any) -> None:
        """Queues a command from events.py; the loop applies it before its next step."""
        self.commands.send(command)

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        c = self.commands
        return StatusEvent(
            step=self.steps, paused=c.paused, human=c.human, planner=self.planners.kind,
            speed=c.speed, training=self.training, run_dir=str(self.run_dir.path),
            message=message, finished=finished, buttons=tuple(self.buttons),
            demo_steps=self.demonstrations.steps,
        )  # fmt: skip

    def env_view(self, index: int = 0) -> tuple[GameState | None, str]:
        """Env ``index``'s latest GameState and its active subgoal, described."""
        envs = self._envs()
        if index >= len(envs):
            return None, ""
        subgoal = envs[index].subgoal
        return envs[index].state, describe(subgoal) if subgoal is not None else ""

    # --- learning and checkpoints -------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One world-model update and its behaviour updates, now."""
        return self.learner.train_step(self.steps, self._pursued())

    def save(self) -> Path:
        """Writes ``checkpoints/agent-<steps>``, from which ``--resume`` goes on exactly, and
        the map graph beside it."""
        self.map_graph.save(self.run_dir.path / GRAPH_FILE)
        return self.checkpointer.save()

    # --- what others read ---------------------------------------------------------------------

    @property
    def steps(self) -> int:
        return self.tally.steps

    @property
    def prompts(self) -> PromptLibrary | None:
        return self.planners.prompts

    @property
    def planner_kind(self) -> PlannerKind:
        return self.planners.kind

    @property
    def paused(self) -> bool:
        return self.commands.paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self.commands.paused = paused

    @property
    def last_metrics(self) -> dict[str, float]:
        return self.learner.last_metrics

    @property
    def demos(self) -> Replay | None:
        """The person's steps, once there is one (a Replay)."""
        return self.demonstrations.replay


def _last_planner_metrics(run: RunDir) -> dict[str, Any]:
    """The LLM's totals as a run last logged them (a resumed run goes on counting from them)."""
    lines = [m for m in run.read_metrics() if m.get("kind") == "planner"]
    return lines[-1] if lines else {}

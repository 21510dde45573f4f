"""The agent loop: System 1 acting in N emulators, System 2 planning beside it, learning online.

Each iteration: apply the watchers' commands; encode every env's active subgoal; filter each env's
posterior with its newest observation and pick the buttons in one batched forward pass; step the
envs; store the transitions in replay and the episodes on disk; let each env's planner look at
the new state (never waiting on an LLM); publish events; then train — world-model and behaviour
updates owed at the configured train ratio, the behaviour imagining from the world model's own
training posteriors under subgoals the planners have set. Checkpoints hold everything a resumed
run needs to take the same updates: weights, optimisers, counters, and every RNG.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pokedreamer.agent.behavior import Behavior
from pokedreamer.agent.events import (
    EventBus,
    HumanAction,
    ImaginedEvent,
    MetricsEvent,
    Pause,
    PlanEvent,
    Quit,
    Replan,
    Resume,
    SaveCheckpoint,
    SetPlanner,
    SetRealtime,
    SingleStep,
    StatusEvent,
    StepEvent,
    TakeControl,
    UsePrompts,
)
from pokedreamer.agent.quest import stages_reached
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.errors import UserError
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE, describe, encode, phi

if TYPE_CHECKING:
    from collections.abc import Callable

    from pokedreamer.agent.demonstrator import Demonstrator
    from pokedreamer.agent.episodes import EpisodeRecorder
    from pokedreamer.agent.imitation import Imitation
    from pokedreamer.config import ImitationSettings, Settings
    from pokedreamer.env.rom import Rom
    from pokedreamer.env.state import GameState
    from pokedreamer.planner.service import PlannerService, PlanRecord
    from pokedreamer.rundir import RunDir

CHECKPOINT_NAME = "agent"
# The Game Boy draws ~59.73 frames a second; realtime play waits out each step's frames.
GAME_BOY_FPS = 59.7275
METRICS_EVERY_S = 1.0
IMAGINE_SHARE = 0.01  # of the wall time, at most, decoding imagined frames for watchers
IMAGINE_FPS = 5.0  # imagined frames a second, at most: enough to watch the model guess
SUBGOAL_POOL = 32
# Who picks the buttons: the actor, uniform random buttons, or the scripted demonstrator.
POLICIES = ("agent", "random", "demonstrator")


@dataclass
class LoopResult:
    steps: int
    episodes: int
    updates: int
    seconds: float
    checkpoint: str | None
    badges: int = 0
    """Episodes (ended or not) in which a badge was won."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds: ``env`` (stepping, including ``hidden``, the writes done meanwhile, and
    ``wait``, blocked on the envs), ``model`` (acting), ``train``, and ``stepping`` (the whole
    stepping loop, without starting and closing the envs)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint as the user names it — a run folder, its checkpoints folder, the .json or
    .safetensors file, or the stem — as the stem the loaders take."""
    from pokedreamer.world_model.checkpoint import (
        META_SUFFIX,
        TENSORS_SUFFIX,
        latest_checkpoint,
    )

    path = Path(path)
    if path.is_dir():
        for folder in (path / "checkpoints", path):
            found = latest_checkpoint(folder, CHECKPOINT_NAME) or latest_checkpoint(folder, "wm")
            if found is not None:
                return found
        raise UserError(f"{path} holds no agent or world-model checkpoint; check the path")
    for suffix in (TENSORS_SUFFIX, META_SUFFIX):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def read_checkpoint_meta(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and meta of an agent or world-model checkpoint, checked (UserError otherwise)."""
    from pokedreamer.world_model.checkpoint import load_checkpoint

    tensors, meta = load_checkpoint(path)
    if meta.get("kind") not in ("agent", "world_model") or "preset" not in meta:
        raise UserError(
            f"{path} is a {meta.get('kind', 'unknown')!r} checkpoint, not an agent or world-model "
            "one; give a checkpoint from pokedreamer run or train world-model"
        )
    return tensors, meta


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
    ) -> None:
        from pokedreamer.env.cartridge import ROM_PATH
        from pokedreamer.env.rom import load_rom
        from pokedreamer.planner.heuristic import HeuristicPlanner
        from pokedreamer.world_model.checkpoint import latest_checkpoint
        from pokedreamer.world_model.presets import PRESETS
        from pokedreamer.world_model.replay import Replay
        from pokedreamer.world_model.trainer import WorldModelTrainer

        if policy not in POLICIES:
            raise UserError(f"unknown policy {policy!r}: {', '.join(POLICIES)}")
        if (policy == "demonstrator" or imitation) and settings.planner.kind == "none":
            raise UserError("the demonstrator plays the planner's subgoals: it needs a planner")
        if imitation is not None and policy != "agent":
            raise UserError("imitation trains the agent's own policy: use policy 'agent'")
        self.policy = policy
        # Replay is for learning: an acting-only run keeps its episodes, not a replay.
        self.store = (train and settings.agent.train_ratio > 0) if store is None else store
        self.settings = settings
        self.run_dir = run
        self.bus = bus or EventBus()
        self.training = train and settings.agent.train_ratio > 0
        # The ROM is checked before an emulator or a model is built: a bad file costs nothing.
        self.rom = rom or load_rom(settings.env.rom or str(ROM_PATH))
        self.heuristic = HeuristicPlanner(self.rom.game)
        self.facts = self.heuristic.facts
        self.buttons = settings.env.action_names
        self.num_actions = settings.env.num_actions
        self.planner_kind = settings.planner.kind
        self.prompts: Any = None
        self._llm: Any = None

        # Which weights: this run's own latest checkpoint (a resume) beats --checkpoint.
        resume = latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
        source = resume or (resolve_checkpoint(checkpoint) if checkpoint else None)
        tensors, meta = read_checkpoint_meta(source) if source else (None, None)
        wm_settings = settings.world_model
        if meta is not None:
            preset = next((p for p in PRESETS.values() if p.meta() == meta["preset"]), None)
            if preset is None:
                raise UserError(f"{source}: its preset {meta['preset'].get('name')!r} is unknown")
            wm_settings = wm_settings.model_copy(update={"preset": preset.name})
            if int(meta["num_actions"]) != self.num_actions:
                raise UserError(
                    f"{source} was trained with {meta['num_actions']} buttons, env.buttons has "
                    f"{self.num_actions}; use the env settings it was made with"
                )
        self.trainer = WorldModelTrainer(wm_settings, self.num_actions, seed=settings.env.seed)
        self.world_model = self.trainer.model
        self.device = self.trainer.device
        self.preset = self.world_model.preset
        self.behavior = Behavior(self.preset, self.num_actions, settings.agent).to(self.device)
        self.rng = np.random.default_rng(settings.env.seed)
        self.replay = Replay(
            run.replay,
            wm_settings.replay_capacity,
            wm_settings.replay_chunk,
            seed=settings.env.seed,
        )
        self.demos: Replay | None = None
        self.imitation: Imitation | None = None
        if imitation is not None:
            from pokedreamer.agent.imitation import Imitation

            self.imitation = Imitation(imitation, self.behavior, seed=settings.env.seed)
        self.learning = self.training or self.imitation is not None
        """Whether anything learns: the world model and actor-critic, or the actor imitating."""
        self.steps = 0
        self.episodes_started = 0
        self.badge_episodes = 0
        self._saved_pool: list[dict[str, Any]] = []
        self.finished: list[dict[str, Any]] = []
        """Every episode ended in this process: seed, env, steps, why, and the step each quest
        stage was reached at."""
        if tensors is not None and meta is not None and source is not None:
            self._load(tensors, meta, source, exact=resume is not None)

        # Control state, changed only by commands between steps.
        self._commands: queue.Queue[Any] = queue.Queue()
        self.paused = False
        self._single_steps = 0
        self.human = human
        self._human_actions: queue.Queue[int] = queue.Queue()
        self.realtime = settings.agent.realtime
        self._quit = False
        self._subgoals: OrderedDict[str, Any] = OrderedDict()
        self._goal_rows: dict[int, tuple[Any, torch.Tensor]] = {}
        self.last_metrics: dict[str, float] = {}
        self._venv: Any = None
        self._envs: list[_Env] = []
        self._imagine_at = 0.0
        # The offline planner's knowledge seeds the subgoals behaviour learning rehearses, so
        # the actor has practised a stage's subgoals before the quest reaches it.
        if self.planner_kind != "none":
            for stage in self.heuristic.stages:
                for subgoal in stage.plan.subgoals:
                    self._goal_row(subgoal)
        if self._saved_pool:  # a resumed run draws from the pool as it was, in its order
            from pydantic import TypeAdapter

            from pokedreamer.planner.subgoals import Subgoal

            adapter = TypeAdapter(Subgoal)
            self._subgoals.clear()
            for saved in self._saved_pool:
                self._goal_row(adapter.validate_python(saved))
        self.progress: Callable[[AgentLoop, float], None] | None = None
        """Called about once a second with the step rate (the headless CLI prints a line)."""

    # --- steering ---------------------------------------------------------------------------

    def send(self, command: Any) -> None:
        """Queues a command from events.py; the loop applies it before its next step."""
        if isinstance(command, HumanAction):
            if command.button not in self.buttons:
                raise ValueError(f"unknown button {command.button!r}; buttons: {self.buttons}")
            self._human_actions.put(self.buttons.index(command.button))
            return
        self._commands.put(command)

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        return StatusEvent(
            step=self.steps, paused=self.paused, human=self.human, planner=self.planner_kind,
            realtime=self.realtime, training=self.training, run_dir=str(self.run_dir.path),
            message=message, finished=finished,
        )  # fmt: skip

    def _apply(self, command: Any) -> None:
        message = ""
        if isinstance(command, Pause):
            self.paused = True
        elif isinstance(command, Resume):
            self.paused, self._single_steps = False, 0
        elif isinstance(command, SingleStep):
            self._single_steps += max(1, command.steps)
        elif isinstance(command, Replan):
            for env in self._envs:
                if env.service is not None and env.state is not None:
                    env.service.request(env.episode_step, env.state, "asked by a person")
            message = "replanning"
        elif isinstance(command, SetPlanner):
            message = self._set_planner(command.kind)
        elif isinstance(command, SetRealtime):
            self.realtime = command.realtime
        elif isinstance(command, SaveCheckpoint):
            message = f"checkpoint saved: {self.save()}"
        elif isinstance(command, TakeControl):
            self.human = command.human
            message = "you have control" if self.human else "the agent has control"
        elif isinstance(command, UsePrompts):
            message = self._use_prompts(Path(command.folder))
        elif isinstance(command, Quit):
            self._quit = True
        self.bus.publish(self.status(message))

    def _use_prompts(self, folder: Path) -> str:
        from pokedreamer.planner.prompts import PromptLibrary

        if self.prompts is not None:
            # The library reads its folder at every render: the next plan sees the change.
            self.prompts.prompts_dir = folder
            return ""
        try:
            self.prompts = PromptLibrary(folder)
        except UserError as exc:
            return f"prompts not used: {exc}"
        return ""

    def _set_planner(self, kind: str) -> str:
        try:
            if kind == "llm":
                self._ensure_llm()
        except UserError as exc:
            return f"planner stays {self.planner_kind}: {exc}"
        self.planner_kind = kind  # type: ignore[assignment]
        for env in self._envs:
            if env.service is not None:
                env.service.close()  # its LLM worker thread, if any, is not needed any more
            env.service = self._service(env) if env.state is not None else None
            if env.service is not None and env.state is not None:
                env.service.observe(env.episode_step, env.state)
        return f"planner: {kind}"

    # --- planning -----------------------------------------------------------------------------

    def _ensure_llm(self) -> None:
        if self._llm is not None:
            return
        from pokedreamer.planner.llm import LLMPlanner
        from pokedreamer.planner.prompts import PromptLibrary

        settings = self.settings.planner
        if not settings.base_url and settings.api_key is None:
            raise UserError(
                "the LLM planner needs planner.base_url (a local server) or an API key "
                "(OPENAI_API_KEY); or use --planner heuristic"
            )
        if self.prompts is None:  # the dashboard's editor may have handed us its library
            self.prompts = PromptLibrary(settings.prompts_dir)
        self._llm = LLMPlanner(settings, self.facts)

    def _service(self, env: _Env) -> PlannerService | None:
        from pokedreamer.planner.service import PlannerService

        if self.planner_kind == "none":
            return None
        settings = self.settings.planner.model_copy(update={"kind": self.planner_kind})
        llm = self._llm if self.planner_kind == "llm" else None
        return PlannerService(
            settings, self.facts, self.heuristic, self.prompts, llm, sink=env.on_plan
        )

    def _goal_row(self, subgoal: Any) -> torch.Tensor:
        # By identity, for speed; the entry holds the subgoal so that its id is not reused.
        cached = self._goal_rows.get(id(subgoal))
        if cached is not None:
            return cached[1]
        if len(self._goal_rows) > 4 * SUBGOAL_POOL:
            self._goal_rows.clear()
        row = torch.tensor(encode(subgoal, self.facts), dtype=torch.float32)
        self._goal_rows[id(subgoal)] = (subgoal, row)
        name = describe(subgoal)
        self._subgoals[name] = subgoal
        self._subgoals.move_to_end(name)
        while len(self._subgoals) > SUBGOAL_POOL:
            self._subgoals.popitem(last=False)
        return row

    # --- the loop -----------------------------------------------------------------------------

    def run(self, steps: int | None = None, episodes: int | None = None) -> LoopResult:
        """Plays until ``steps`` more env steps (all envs together; None or 0: until Quit), or
        with ``episodes``, until the episodes of the first that many seeds have all ended."""
        from pokedreamer.env.vector import make_vector_env

        settings = self.settings
        n = settings.agent.envs
        env_settings = settings.env.model_copy(update={"rom": str(self.rom.path)})
        self._venv = venv = make_vector_env(
            env_settings, settings.rewards, n, asynchronous=n > 1, autoreset=False
        )
        from pokedreamer.agent.episodes import EpisodeRecorder

        self._envs = [_Env(self, i, EpisodeRecorder(self.run_dir)) for i in range(n)]
        target = self.steps + steps if steps else None
        # "stepping": the loop itself, from the first reset to the last step, without starting
        # and closing the envs or the final checkpoint (in LoopResult.seconds).
        timings = {"env": 0.0, "model": 0.0, "train": 0.0, "hidden": 0.0, "wait": 0.0}
        overlap = n > 1
        start = last_metrics = time.perf_counter()
        steps_at_metrics = self.steps
        checkpoint: Path | None = None
        self.bus.publish(self.status("started"))
        try:
            t0 = time.perf_counter()
            seeds = [self._next_seed() for _ in range(n)]
            obs, info = venv.reset(seed=seeds)
            timings["env"] += time.perf_counter() - t0
            for env in self._envs:
                i = env.index
                env.begin(obs["screen"][i], obs["state"][i], info["state"][i], seeds[i])
            actions_prev = torch.zeros(n, dtype=torch.int64)
            is_first = torch.ones(n, dtype=torch.bool)
            post = self.world_model.rssm.initial(n)
            frames = np.stack([env.frame for env in self._envs])
            vectors = np.stack([env.vector for env in self._envs])
            while not self._quit and (target is None or self.steps < target):
                if episodes is not None and self._seeds_done(episodes):
                    break
                if self.paused or self.human:
                    for env in self._envs:  # what is on screen is written before waiting
                        env.flush()
                if not self._wait_for_turn():
                    break
                # --- act
                t0 = began = time.perf_counter()
                goal = torch.stack([env.goal_row() for env in self._envs]).to(self.device)
                prev_post = post
                actions, post = self.behavior.policy_step(
                    self.world_model, post, actions_prev.to(self.device),
                    torch.from_numpy(frames).to(self.device),
                    torch.from_numpy(vectors).to(self.device),
                    is_first.to(self.device), goal, settings.agent.sample,
                )  # fmt: skip
                actions = actions.cpu()
                if self.policy == "random":
                    actions = torch.from_numpy(self.rng.integers(0, self.num_actions, n))
                elif self.policy == "demonstrator":
                    actions = torch.tensor([env.teach() for env in self._envs])
                elif self.imitation is not None:
                    actions = self._dagger(post, goal, actions)
                human = False
                if self.human:
                    human_action = self._human_action()
                    if self._quit:
                        break
                    if human_action is not None:
                        actions[0], human = human_action, True
                timings["model"] += time.perf_counter() - t0
                if self.bus.wants(ImaginedEvent) and time.perf_counter() >= self._imagine_at:
                    self._publish_imagined(prev_post, actions_prev, is_first)
                # --- step the envs; with envs in their own processes, the last step's writes
                # (replay, episode files, events) are done while they step
                t0 = time.perf_counter()
                if overlap:
                    venv.step_async(actions.numpy())
                    t1 = time.perf_counter()
                    for env in self._envs:
                        env.flush()
                    t2 = time.perf_counter()
                    timings["hidden"] += t2 - t1
                    obs, reward, terminated, truncated, info = venv.step_wait()
                    timings["wait"] += time.perf_counter() - t2
                else:
                    obs, reward, terminated, truncated, info = venv.step(actions.numpy())
                timings["env"] += time.perf_counter() - t0
                if not overlap:
                    for env in self._envs:
                        env.flush()
                self.steps += n
                ended = np.zeros(n, dtype=bool)
                for env in self._envs:
                    i = env.index
                    action = int(actions[i])
                    ended[i] = env.record(
                        obs["screen"][i], obs["state"][i], info["state"][i], action,
                        float(reward[i]), _terms(info["rewards"], i), bool(terminated[i]),
                        bool(truncated[i]), human and i == 0,
                    )  # fmt: skip
                actions_prev = actions
                is_first = torch.zeros(n, dtype=torch.bool)
                if ended.any():
                    t0 = time.perf_counter()
                    seeds = [self._next_seed() if ended[i] else None for i in range(n)]
                    obs, info = venv.reset(seed=seeds, options={"reset_mask": ended})
                    timings["env"] += time.perf_counter() - t0
                    for env in self._envs:
                        if ended[env.index]:
                            i = env.index
                            env.begin(obs["screen"][i], obs["state"][i], info["state"][i], seeds[i])
                    is_first = torch.from_numpy(ended.copy())
                    actions_prev = torch.where(is_first, 0, actions_prev)
                frames = np.stack([env.frame for env in self._envs])
                vectors = np.stack([env.vector for env in self._envs])
                # --- learn
                if self.training:
                    t0 = time.perf_counter()
                    self._train_owed()
                    timings["train"] += time.perf_counter() - t0
                if self.imitation is not None:
                    t0 = time.perf_counter()
                    self._imitate_owed()
                    timings["train"] += time.perf_counter() - t0
                every = settings.agent.checkpoint_every if self.learning else 0
                if every and self.steps // every != (self.steps - n) // every:
                    self.save()
                now = time.perf_counter()
                if now - last_metrics >= METRICS_EVERY_S:
                    rate = (self.steps - steps_at_metrics) / (now - last_metrics)
                    self._publish_metrics({"steps_per_s": rate})
                    if self.progress is not None:
                        self.progress(self, rate)
                    last_metrics, steps_at_metrics = now, self.steps
                if self.realtime:
                    time.sleep(max(0.0, settings.env.action_repeat / GAME_BOY_FPS - (now - began)))
        finally:
            timings["stepping"] = time.perf_counter() - start
            # Also on Ctrl-C or an error: the work so far is kept and the logs are readable.
            for env in self._envs:
                env.flush()
                env.close()
            venv.close()
            self.replay.flush()
            if self.demos is not None:
                self.demos.flush()
            if self._llm is not None:
                self._llm.close()
            # Acting only changes nothing worth keeping (SaveCheckpoint still writes one).
            checkpoint = self.save() if self.learning else None
            saved = f"; checkpoint {checkpoint}" if checkpoint else ""
            self.bus.publish(self.status(f"stopped{saved}", finished=True))
        return LoopResult(
            steps=self.steps, episodes=self.episodes_started, updates=self.trainer.updates,
            seconds=time.perf_counter() - start, checkpoint=str(checkpoint) if checkpoint else None,
            badges=self.badge_episodes, timings=timings,
        )  # fmt: skip

    def env_view(self, index: int = 0) -> tuple[GameState | None, str]:
        """Env ``index``'s latest GameState and its active subgoal, described."""
        if index >= len(self._envs):
            return None, ""
        env = self._envs[index]
        subgoal = env.service.subgoal if env.service is not None else None
        return env.state, describe(subgoal) if subgoal is not None else ""

    def _seeds_done(self, episodes: int) -> bool:
        first = self.settings.env.seed
        done = {e["seed"] for e in self.finished if e["seed"] < first + episodes}
        return len(done) >= episodes

    def _next_seed(self) -> int:
        self.episodes_started += 1
        return self.settings.env.seed + self.episodes_started - 1

    def _wait_for_turn(self) -> bool:
        """Applies commands; while paused, waits for a resume or a single step. False: quit."""
        while True:
            try:
                while True:
                    self._apply(self._commands.get_nowait())
            except queue.Empty:
                pass
            if self._quit:
                return False
            if not self.paused:
                return True
            if self.human and not self._human_actions.empty():
                return True  # a person's button steps the game even while paused
            if self._single_steps > 0:
                self._single_steps -= 1
                return True
            with contextlib.suppress(queue.Empty):
                self._apply(self._commands.get(timeout=0.05))

    def _human_action(self) -> int | None:
        """Waits for a person's button for env 0, still applying commands. None: the loop is
        quitting, or control went back to the agent meanwhile."""
        while self.human:
            with contextlib.suppress(queue.Empty):
                return self._human_actions.get(timeout=0.05)
            if not self._wait_for_turn():
                return None
        return None

    def _demo_add(
        self, frame: np.ndarray, vector: np.ndarray, action: int, reward: float, first: bool
    ) -> None:
        """A person's step, kept apart as a demonstration (a replay of its own, for a later
        behaviour-cloning warm start)."""
        from pokedreamer.world_model.replay import Replay

        if self.demos is None:
            wm = self.trainer.settings
            self.demos = Replay(self.run_dir.path / "demos", wm.replay_capacity, wm.replay_chunk)
        self.demos.add(0, frame, vector, action, reward, is_first=first)

    def _publish_imagined(
        self, prev_post: Any, actions_prev: torch.Tensor, is_first: torch.Tensor
    ) -> None:
        """The prior's guess of env 0's newest frame, before the posterior saw it. Decoding is
        not free, so it runs on a budget: at most IMAGINE_SHARE of the wall time, and no more
        often than IMAGINE_FPS."""
        if bool(is_first[0]):
            return
        began = time.perf_counter()
        with torch.no_grad():
            rssm = self.world_model.rssm
            state = prev_post.map(lambda x: x[:1])
            one_hot = torch.nn.functional.one_hot(
                actions_prev[:1].to(self.device), self.num_actions
            ).float()
            prior = rssm.img_step(state, one_hot)
            shades = self.world_model.decode(rssm.feat(prior)).argmax(-3)[0]
        pool = self.preset.pool
        frame = shades.to(torch.uint8).cpu().numpy().repeat(pool, 0).repeat(pool, 1)
        self.bus.publish(ImaginedEvent(self.steps, 0, frame))
        spent = time.perf_counter() - began
        self._imagine_at = began + max(spent / IMAGINE_SHARE, 1.0 / IMAGINE_FPS)

    def _publish_metrics(self, extra: dict[str, float]) -> None:
        metrics = {
            **self.last_metrics, **extra,
            "updates": float(self.trainer.updates), "replay_steps": float(len(self.replay)),
        }  # fmt: skip
        self.bus.publish(MetricsEvent(self.steps, metrics))

    # --- learning -------------------------------------------------------------------------------

    def _dagger(self, post: Any, goal: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Labels every env's state with the demonstrator's button and keeps it for imitation;
        with the chance beta the demonstrator's button is the one pressed."""
        assert self.imitation is not None
        labels = torch.tensor([env.teach() for env in self._envs])
        self.imitation.add(self.world_model.rssm.feat(post), goal, labels)
        chosen = torch.from_numpy(self.rng.random(len(labels)) < self.imitation.beta(self.steps))
        actions = torch.where(chosen, labels, actions)
        for env, action in zip(self._envs, actions.tolist(), strict=True):
            assert env.teacher is not None
            env.teacher.pressed(action)
        return actions

    def _imitate_owed(self) -> None:
        assert self.imitation is not None
        for _ in range(self.imitation.owed()):
            metrics = self.imitation.update()
            metrics["imitation/beta"] = self.imitation.beta(self.steps)
            self.last_metrics = metrics
            if self.imitation.updates % 100 == 0:
                record = {"kind": "imitation", "step": self.steps, "update": self.imitation.updates}
                self.run_dir.log_metrics({**record, **metrics})
                self._publish_metrics({})

    def _train_owed(self) -> None:
        wm = self.trainer.settings
        agent = self.settings.agent
        per_update = wm.batch_size * wm.batch_length
        if len(self.replay) < agent.train_after or self.replay.num_sequences(wm.batch_length) == 0:
            return
        owed = (self.steps - agent.train_after) * agent.train_ratio / per_update
        while self.trainer.updates < owed and not self._quit:
            self.train_step()

    def train_step(self) -> dict[str, float]:
        """One world-model update, then agent.behavior_updates behaviour updates imagining from
        its posteriors."""
        wm = self.trainer.settings
        metrics = {
            f"wm/{k}": v
            for k, v in self.trainer.update(
                self.replay.sample(wm.batch_size, wm.batch_length)
            ).items()
        }
        posts = self.trainer.last_posts
        assert posts is not None
        starts = posts.flatten()
        for _ in range(self.settings.agent.behavior_updates):
            behavior = self._behavior_update(starts)
        metrics.update({f"behavior/{k}": v for k, v in behavior.items()})
        self.last_metrics = metrics
        if self.trainer.updates % 25 == 0:
            record = {"kind": "agent", "step": self.steps, "update": self.trainer.updates}
            self.run_dir.log_metrics({**record, **metrics})
            self._publish_metrics({})
        return metrics

    def _behavior_update(self, all_starts: Any) -> dict[str, float]:
        total = all_starts.deter.shape[0]
        take = min(self.settings.agent.imagine_batch, total)
        index = torch.from_numpy(self.rng.choice(total, take, replace=False)).to(self.device)
        starts = all_starts.map(lambda x: x.index_select(0, index))
        subgoal = self._training_subgoal()
        if subgoal is None:
            goal = torch.zeros(take, GOAL_ENCODING_SIZE, device=self.device)
        else:
            goal = self._goal_row(subgoal).to(self.device).expand(take, -1).clone()
        return self.behavior.imagine_and_train(
            self.world_model, starts, goal, subgoal, self.facts if subgoal else None
        )

    def _training_subgoal(self) -> Any | None:
        """Half the updates train the subgoal some env pursues now, half one seen lately, so
        that the actor keeps what it learnt for earlier stages of the quest."""
        if self.planner_kind == "none" or not self._subgoals:
            return None
        active = [env.service.subgoal for env in self._envs if env.service is not None]
        active = [s for s in active if s is not None]
        if active and self.rng.random() < 0.5:
            return active[int(self.rng.integers(len(active)))]
        pool = list(self._subgoals.values())
        return pool[int(self.rng.integers(len(pool)))]

    # --- checkpoints ----------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        return {**self.trainer.identity(), "kind": "agent"}

    def save(self) -> Path:
        """Writes ``checkpoints/agent-<steps>``: world model, behaviour, optimisers, counters and
        RNGs, so that ``--resume`` takes the updates this run would have taken."""
        from pokedreamer.world_model.checkpoint import (
            checkpoint_path,
            generator_state,
            module_tensors,
            optimizer_tensors,
            rng_state,
            save_checkpoint,
        )

        path = checkpoint_path(self.run_dir.checkpoints, CHECKPOINT_NAME, self.steps)
        tensors = module_tensors("model", self.world_model)
        opt_tensors, opt_meta = optimizer_tensors("optimizer", self.trainer.optimizer)
        beh_tensors, beh_meta = self.behavior.state_tensors()
        meta = {
            **self.identity(),
            "updates": self.trainer.updates,
            "optimizer": opt_meta,
            "behavior": beh_meta,
            "steps": self.steps,
            "episodes": self.episodes_started,
            "badge_episodes": self.badge_episodes,
            "rng": rng_state(),
            "loop_rng": generator_state(self.rng),
            "replay_rng": generator_state(self.replay.rng),
            # Oldest first, as behaviour learning draws from it.
            "subgoal_pool": [subgoal.model_dump() for subgoal in self._subgoals.values()],
            "settings": self.settings.model_dump(mode="json", exclude={"planner": {"api_key"}}),
            "game": self.rom.game,
        }
        save_checkpoint(path, {**tensors, **opt_tensors, **beh_tensors}, meta)
        return path

    def _load(
        self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: Path, exact: bool
    ) -> None:
        from pokedreamer.world_model.checkpoint import (
            restore_generator,
            restore_module,
            restore_optimizer,
            restore_rng,
        )

        restore_module("model", self.world_model, tensors, source)
        if "optimizer" in meta and self.learning:
            restore_optimizer("optimizer", self.trainer.optimizer, tensors, meta["optimizer"])
        if meta["kind"] == "agent":
            self.behavior.load_state_tensors(tensors, meta["behavior"], source=source)
        if not exact:
            return  # weights to start from; this run keeps its own counters
        self.trainer.updates = int(meta["updates"])
        self.steps = int(meta["steps"])
        self.episodes_started = int(meta["episodes"])
        self.badge_episodes = int(meta.get("badge_episodes", 0))
        restore_rng(meta["rng"])
        restore_generator(self.rng, meta["loop_rng"])
        restore_generator(self.replay.rng, meta["replay_rng"])
        self._saved_pool = meta.get("subgoal_pool", [])


def _terms(rewards: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {name: float(values[i]) for name, values in rewards.items() if not name.startswith("_")}


class _Env:
    """One emulator's episode bookkeeping: its recorder, planner and latest observation."""

    def __init__(self, loop: AgentLoop, index: int, recorder: EpisodeRecorder) -> None:
        self.loop = loop
        self.index = index
        self.recorder = recorder
        self.service: PlannerService | None = None
        self.state: GameState | None = None
        self.frame: np.ndarray = np.zeros(FRAME_SHAPE, np.uint8)
        self.vector: np.ndarray = np.zeros(VECTOR_SIZE, np.float32)
        self.episode = 0
        self.episode_step = 0
        self.badge = False
        self.seed = 0
        self.reached: dict[str, int] = {}
        self._queue_plan: Any = None
        self._queue_length = -1
        self._queue_texts: tuple[str, ...] = ()
        # The newest step's writes, held until ``flush``: the loop does them while the envs
        # step the next one, so they cost the step rate nothing when the envs are slower.
        self._unwritten: tuple[Any, ...] | None = None
        self._unwritten_plans: list[PlanRecord] = []
        self.teacher: Demonstrator | None = None
        if loop.policy == "demonstrator" or loop.imitation is not None:
            from pokedreamer.agent.demonstrator import Demonstrator

            self.teacher = Demonstrator(
                loop.facts, loop.buttons, seed=loop.settings.env.seed + index
            )

    def teach(self) -> int:
        """The demonstrator's button for the newest state and the active subgoal."""
        assert self.teacher is not None and self.state is not None
        return self.teacher.act(self.state, self.service.subgoal if self.service else None)

    def begin(self, frame: np.ndarray, vector: np.ndarray, state: GameState, seed: int) -> None:
        loop = self.loop
        self.frame, self.vector, self.state = frame, vector, state
        self.episode_step = 0
        self.badge = False
        self.seed = seed
        self.reached = {}
        if self.teacher is not None:
            self.teacher.reset()
        stages_reached(state, self.reached, 0)
        if loop.store:
            loop.replay.add(self.index, frame, vector, 0, 0.0, is_first=True)
        if loop.settings.agent.record:
            self.episode = self.recorder.start(
                {"env": self.index, "seed": seed,
                 "game": loop.rom.game, "rom_sha1": loop.rom.sha1, "step": loop.steps}
            )  # fmt: skip
        self.service = loop._service(self)
        if self.service is not None:
            self.service.observe(0, state, frame)
        self._record_step(frame, state, None, 0.0, {}, False)

    def goal_row(self) -> torch.Tensor:
        subgoal = self.service.subgoal if self.service is not None else None
        if subgoal is None:
            return torch.zeros(GOAL_ENCODING_SIZE)
        return self.loop._goal_row(subgoal)

    def record(
        self, frame: np.ndarray, vector: np.ndarray, state: GameState, action: int,
        reward: float, terms: dict[str, float], terminated: bool, truncated: bool, human: bool,
    ) -> bool:  # fmt: skip
        """Takes in one step: the planner sees it now, and its writes (replay, demos, episode
        files, the step event) wait for ``flush``. True when the episode ended with it."""
        loop = self.loop
        self.frame, self.vector, self.state = frame, vector, state
        self.episode_step += 1
        if self.service is not None:
            self.service.observe(self.episode_step, state, frame)
        self._unwritten = (frame, vector, state, action, reward, terms, terminated, human)
        stages_reached(state, self.reached, self.episode_step)
        if state.badge_count and not self.badge:
            self.badge = True
            loop.badge_episodes += 1
        end_at = loop.settings.agent.end_at_badges
        if terminated or truncated or (end_at and state.badge_count >= end_at):
            self.end("terminated" if terminated else "truncated" if truncated else "quest done")
            return True
        return False

    def flush(self) -> None:
        """Writes the step taken in by ``record``, if not yet written. The subgoal recorded is
        the one the planner chose on seeing that step, as no later step has been seen."""
        if self._unwritten_plans:
            self._write_plans()
        if self._unwritten is None:
            return
        frame, vector, state, action, reward, terms, terminated, human = self._unwritten
        self._unwritten = None
        loop = self.loop
        if loop.store:
            loop.replay.add(
                self.index, frame, vector, action, reward, is_first=False, is_terminal=terminated
            )
        if human:
            loop._demo_add(frame, vector, action, reward, self.episode_step == 1)
        self._record_step(frame, state, action, reward, terms, human)

    def _record_step(
        self, frame: np.ndarray, state: GameState, action: int | None, reward: float,
        terms: dict[str, float], human: bool,
    ) -> None:  # fmt: skip
        loop = self.loop
        service = self.service
        subgoal = service.subgoal if service is not None else None
        texts = self.queue_texts()
        if self.recorder.recording:
            extra = {"human": True} if human else None
            active = texts[0] if texts else None
            self.recorder.step(frame, action, reward, terms, state, active, extra)
        if loop.bus.wants(StepEvent):
            progress = float(phi(subgoal, state, loop.facts)) if subgoal is not None else 0.0
            loop.bus.publish(
                StepEvent(
                    step=loop.steps, env=self.index, episode=self.episode,
                    episode_step=self.episode_step, frame=frame, state=state, action=action,
                    button="" if action is None else loop.buttons[action], reward=reward,
                    terms=terms, goal=service.goal if service is not None else "",
                    subgoals=texts,
                    progress=progress, human=human,
                )
            )  # fmt: skip

    def queue_texts(self) -> tuple[str, ...]:
        """The subgoal queue, described (the first is active). Read every step but changed a
        few times an episode, so it is described once per plan and queue length: the queue is
        always a tail of its plan's subgoals."""
        service = self.service
        if service is None:
            return ()
        plan, length = service.plan, len(service.queue)
        if plan is not self._queue_plan or length != self._queue_length:
            self._queue_plan, self._queue_length = plan, length
            self._queue_texts = tuple(describe(s) for s in service.queue)
        return self._queue_texts

    def on_plan(self, record: PlanRecord) -> None:
        self._unwritten_plans.append(record)  # written by flush, with the step's writes

    def _write_plans(self) -> None:
        records, self._unwritten_plans = self._unwritten_plans, []
        for record in records:
            if self.recorder.recording:
                self.recorder.plan(record)
            if self.loop.bus.wants(PlanEvent):
                # A shallow copy: each record's plan dict is its own.
                self.loop.bus.publish(PlanEvent(self.index, self.episode, dict(record.__dict__)))

    def end(self, why: str) -> None:
        self.flush()  # the episode's last step, before its summary and the next episode
        if self.service is not None:
            self.service.close()
        self.loop.finished.append(
            {"seed": self.seed, "env": self.index, "steps": self.episode_step, "ended": why,
             "stages": dict(self.reached)}
        )  # fmt: skip
        if self.recorder.recording:
            state = self.state
            self.recorder.end(
                {"ended": why, "badges": state.badge_count if state else 0,
                 "events": state.event_count if state else 0}
            )  # fmt: skip

    def close(self) -> None:
        """At the loop's end: an episode still running is ended as cut short."""
        if self.recorder.recording:
            self.end("loop stopped")
        elif self.service is not None:
            self.service.close()
        self.service = None  # no subgoal is pursued any more

"""Starting the agent loop the way ``pokedreamer run`` and ``play`` do: which run directory,
which weights, the dashboard or progress lines, and a clean stop on Ctrl-C."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from pokedreamer.agent.checkpoint_kind import world_model_fits
from pokedreamer.agent.checkpointer import CHECKPOINT_NAME
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.pace import watched_speed
from pokedreamer.agent.planners import check_planner
from pokedreamer.agent.tally import LoopResult
from pokedreamer.config import Settings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rom import load_rom
from pokedreamer.env.vector import check_workers
from pokedreamer.errors import UserError
from pokedreamer.planner.service import TokenLedger
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import latest_checkpoint

# Trained on the fixture cartridge by the recipe in the README; used when no weights are named.
SHIPPED_CHECKPOINT = Path(__file__).parent / "shipped" / "fixture-agent"


def shipped_checkpoint() -> Path | None:
    return SHIPPED_CHECKPOINT if SHIPPED_CHECKPOINT.with_suffix(".json").is_file() else None


SHIPPED_PRESET = "tiny"
"""The shipped checkpoint's world-model preset (its JSON's meta says so too; a test holds them
together)."""


def shipped_for(settings: Settings, game: str, preset_chosen: bool = False) -> Path | None:
    """The shipped checkpoint when it fits ``settings``: the fixture's game, a world model of
    the kind they ask for (checkpoint_kind.world_model_fits: pixels, the GameState vector as
    scalars) and, where the preset was chosen on purpose, the shipped one's; else None (a tiles
    run, or one asking for another preset, starts from a new model)."""
    shipped = shipped_checkpoint()
    fits = (
        shipped is not None
        and game == "fixture"
        and world_model_fits(settings, shipped)
        and (not preset_chosen or settings.world_model.preset == SHIPPED_PRESET)
    )
    return shipped if fits else None


def make_loop(
    settings: Settings,
    *,
    resume: Path | None = None,
    checkpoint: Path | None = None,
    train: bool = True,
    name: str | None = None,
    human: bool = False,
    imitation: bool = False,
    speed: int = 0,
    fresh_actor: bool = False,
    preset_chosen: bool = False,
) -> AgentLoop:
    """The loop for a new run (in run.runs_dir) or a resumed one, with its weights chosen;
    ``speed`` paces its acting (0: uncapped). ``preset_chosen``: world_model.preset was set on
    purpose, so the shipped checkpoint stands in only if it is of that preset."""
    rom = load_rom(settings.env.rom or str(ROM_PATH))  # a bad ROM is refused before any folder
    if rom.warning:
        print(f"warning: {rom.warning}", file=sys.stderr, flush=True)
    check_planner(settings.planner, settings.local_llm)  # before any folder
    check_workers(settings.agent.workers, settings.agent.ray_address)  # and Ray, asked for
    if resume is not None:
        run = RunDir.open(resume)
        if latest_checkpoint(run.checkpoints, CHECKPOINT_NAME) is None:
            raise UserError(f"{resume} has no agent checkpoint to resume from; check the path")
        if checkpoint is not None:
            raise UserError("--resume continues a run's own weights; leave out --checkpoint")
    else:
        if name is not None:
            existing = Path(settings.run.runs_dir) / name / "checkpoints"
            if latest_checkpoint(existing, CHECKPOINT_NAME) is not None:
                raise UserError(
                    f"run {name} exists already; continue it with --resume "
                    f"{existing.parent} or pick another --name"
                )
        if checkpoint is None:
            checkpoint = shipped_for(settings, rom.game, preset_chosen)
        run = RunDir.create(settings, name)
    return AgentLoop(
        settings, run, checkpoint=checkpoint, train=train, human=human, rom=rom,
        imitation=settings.imitation if imitation else None, speed=speed, fresh_actor=fresh_actor,
    )  # fmt: skip


def imitation_loop(
    settings: Settings, name: str, checkpoint: Path | None, fresh_actor: bool = False
) -> AgentLoop:
    """The loop of ``train imitation`` on the run ``name``: continued from its own checkpoint
    when it has one, else new from ``checkpoint``'s world model (with its actor, unless
    ``fresh_actor``); acting only, its actor imitating."""
    path = Path(settings.run.runs_dir) / name
    resume = path if latest_checkpoint(path / "checkpoints", CHECKPOINT_NAME) else None
    # A user's ROM, or tiles, has no shipped world model; the fixture's is used when none is named.
    game = "red" if settings.env.rom else "fixture"
    if resume is None and checkpoint is None and shipped_for(settings, game) is None:
        raise UserError("imitation needs a trained world model of the game: give --checkpoint")
    return make_loop(
        settings, resume=resume, checkpoint=None if resume else checkpoint, train=False,
        name=None if resume else name, imitation=True, fresh_actor=fresh_actor,
    )  # fmt: skip


def run_imitation(
    settings: Settings, name: str, checkpoint: Path | None, steps: int, fresh_actor: bool = False
) -> None:
    """``pokedreamer train imitation``: DAgger on the run ``name``, new or continued, with
    progress lines and a checkpoint on Ctrl-C or SIGTERM."""
    if settings.planner.kind == "none":
        raise UserError("the demonstrator plays the planner's subgoals: set a planner, not none")
    loop = imitation_loop(settings, name, checkpoint, fresh_actor)
    assert loop.imitation is not None
    result = _run_headless(loop, steps, "imitating the demonstrator")
    accuracy = loop.last_metrics.get("imitation/accuracy", float("nan"))
    print(
        f"done: {result.steps} steps, {result.episodes} episodes ({result.badges} with a badge), "
        f"{loop.imitation.updates} imitation updates in "
        f"{result.seconds:.1f} s, accuracy {accuracy:.2f}; checkpoint {result.checkpoint}",
        flush=True,
    )


def start_loop(
    settings: Settings,
    *,
    resume: Path | None,
    checkpoint: Path | None,
    train: bool,
    name: str | None,
    dashboard: bool,
    human: bool,
    preset_chosen: bool = False,
) -> dict[str, Any]:
    """Runs the loop to its end in the dashboard or with progress lines; returns its result."""
    loop = make_loop(
        settings, resume=resume, checkpoint=checkpoint, train=train, name=name, human=human,
        speed=watched_speed(settings, dashboard), preset_chosen=preset_chosen,
    )  # fmt: skip
    steps = settings.run.steps or None
    if dashboard:
        # Textual takes a while to import: a headless run never pays for it.
        from pokedreamer.dashboard.process import run_dashboard

        return run_dashboard(loop, human=human, steps=steps)
    result = _run_headless(loop, steps)
    spent = spending(loop.planners.ledger)
    print(
        f"done: {result.steps} steps, {result.episodes} episodes ({result.badges} with a badge), "
        f"{result.updates} updates in {result.seconds:.1f} s"
        + (f"; checkpoint {result.checkpoint}" if result.checkpoint else "; nothing learnt")
        + (f"; {spent}" if spent else ""),
        flush=True,
    )
    return result.as_dict()


def _run_headless(loop: AgentLoop, steps: int | None, doing: str = "") -> LoopResult:
    """Runs the loop with progress lines; Ctrl-C and SIGTERM stop it with everything saved."""
    line = f"run {loop.run_dir.path}: {describe_start(loop)}" + (f", {doing}" if doing else "")
    print(line, flush=True)
    loop.progress = progress_printer(loop.settings.run.print_every)
    loop.say = lambda line: print(line, file=sys.stderr, flush=True)
    # A service manager stops a server run with SIGTERM: stop as Ctrl-C does, checkpoint and
    # logs written, rather than dying mid-step.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return loop.run(steps)
    except KeyboardInterrupt:
        print(f"stopped at step {loop.steps}; the checkpoint and logs are saved", file=sys.stderr)
        raise


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def describe_start(loop: AgentLoop) -> str:
    train = "training" if loop.training else "acting only"
    return (
        f"{loop.rom.game} ({loop.rom.title}), {loop.settings.agent.envs} env(s), planner "
        f"{loop.planner_kind}, {loop.preset.name} world model at update {loop.trainer.updates}, "
        f"{train}"
    )


def progress_printer(every_steps: int) -> Any:
    """A loop.progress callback printing a line every ``every_steps`` steps (0: never)."""
    last = {"step": -every_steps}

    def show(loop: AgentLoop, rate: float) -> None:
        if not every_steps or loop.steps - last["step"] < every_steps:
            return
        last["step"] = loop.steps
        state, subgoal = loop.env_view(0)
        where = f"{state.map_name} ({state.x},{state.y})" if state is not None else "?"
        loss = loop.last_metrics.get("wm/loss")
        train = f"  updates {loop.trainer.updates}" + (f" loss {loss:.1f}" if loss else "")
        accuracy = loop.last_metrics.get("imitation/accuracy")
        if accuracy is not None and loop.imitation is not None:
            train = f"  imitation updates {loop.imitation.updates} accuracy {accuracy:.2f}"
        spent = spending(loop.planners.ledger)
        print(
            f"step {loop.steps:>7}  {rate:7.0f} steps/s  {where:<24} badges "
            f"{state.badge_count if state else 0}  subgoal: {subgoal or '-'}{train}"
            + (f"  {spent}" if spent else ""),
            flush=True,
        )

    return show


def spending(ledger: TokenLedger) -> str:
    """The LLM's calls, tokens (prompt + completion) and cost, for the progress and last
    lines; "" before any call."""
    if not ledger.calls:
        return ""
    cost = f" cost {ledger.cost:.4f}" if ledger.priced else ""
    return (
        f"LLM {ledger.calls} calls, tokens {ledger.prompt_tokens:,}+"
        f"{ledger.completion_tokens:,}{cost}"
    )

"""The ``pokedreamer`` command.

Heavy libraries (torch, pyboy, numpy, textual, openai) are imported inside the verbs that need them,
so that ``--help``, ``--version`` and a typo in a flag answer at once.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from pokedreamer import __version__
from pokedreamer.agent.collect_policy import POLICY_HELP, check_policy
from pokedreamer.agent.train_verbs import RunOption, state_ranges, train_app
from pokedreamer.bench.cli import bench_app
from pokedreamer.config import PlannerKind, Settings, load_settings
from pokedreamer.config_layers import chosen_keys, read_toml
from pokedreamer.errors import UserError
from pokedreamer.planner.prompt_verbs import prompts_app

EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="pokedreamer",
    help="An agent that plays Pokémon Red: a world model (System 1) and an LLM planner (System 2).",
    # Plain help: no rich rendering to import or to mangle bracketed text.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
)

# Where each CLI flag lands in Settings: the one place a flag is tied to a setting, so that flags,
# config.toml and POKEDREAMER_* variables can never disagree on a name.
FLAG_TO_SETTING: dict[str, str] = {
    "preset": "world_model.preset",
    "device": "world_model.device",
    "rom": "env.rom",
    "headless": "env.headless",
    "seed": "env.seed",
    "steps": "run.steps",
    "planner": "planner.kind",
    "envs": "agent.envs",
    "speed": "agent.speed",
    "workers": "agent.workers",
    "ray_address": "agent.ray_address",
}

WorkersOption = Annotated[
    Literal["local", "ray"] | None,
    typer.Option(
        help="Where the envs step: local processes, or Ray actors (the ray extra) "
        "(default: agent.workers)."
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        metavar="ADDR",
        help="Ray cluster to join with --workers ray (default: agent.ray_address; empty starts "
        "a local Ray).",
    ),
]

SpeedChoice = Literal["1", "2", "4", "8", "16", "uncapped"]
SpeedOption = Annotated[
    SpeedChoice | None,
    typer.Option(
        help="Times the Game Boy's own speed while you watch (default: agent.speed).",
    ),
]


def speed_setting(speed: SpeedChoice | None) -> int | None:
    """The --speed flag as agent.speed: times the Game Boy's own speed, 0 uncapped."""
    if speed is None:
        return None
    return 0 if speed == "uncapped" else int(speed)


def flag_overrides(**flags: Any) -> dict[str, Any]:
    """Map a verb's flags onto dotted settings keys, dropping flags that were not given (None)."""
    overrides: dict[str, Any] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        overrides[FLAG_TO_SETTING[flag]] = value
    return overrides


@dataclass(frozen=True)
class _Globals:
    config: Path | None


def _globals(ctx: typer.Context) -> _Globals:
    return ctx.obj if isinstance(ctx.obj, _Globals) else _Globals(config=None)


def _settings(ctx: typer.Context, **flags: Any) -> Settings:
    return load_settings(_globals(ctx).config, flag_overrides(**flags))


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pokedreamer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="PATH",
            help="Config file to read instead of ./config.toml.",
            dir_okay=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    ctx.obj = _Globals(config=config)


PresetOption = Annotated[
    str | None, typer.Option(help="Size preset: tiny, mini, small, base, large (default: config).")
]


@app.command()
def run(
    ctx: typer.Context,
    rom: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Game Boy ROM to play (default: the bundled fixture cartridge).",
            # No dir_okay=False: click would answer a directory with a four-line usage error,
            # while load_rom names every bad path in one line.
        ),
    ] = None,
    headless: Annotated[
        bool | None,
        typer.Option(
            "--headless/--no-headless",
            help="No emulator window and no dashboard: progress lines only (servers, CI).",
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(metavar="N", help="Agent steps to take; 0 runs until stopped.")
    ] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Random seed.")] = None,
    planner: Annotated[
        PlannerKind | None, typer.Option(help="Which planner sets subgoals.")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Agent or world-model checkpoint to start from (default on the fixture: the "
            "shipped one, unless --preset asks for another size).",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(metavar="RUN_DIR", help="Continue a run from its latest checkpoint."),
    ] = None,
    no_train: Annotated[bool, typer.Option("--no-train", help="Only act; learn nothing.")] = False,
    envs: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Emulators played at once.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Run name (default: a timestamp).")
    ] = None,
    preset: PresetOption = None,
    speed: SpeedOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Run the agent: play, plan, learn online and record every episode.

    With no arguments it plays the fixture cartridge with the heuristic planner and the shipped
    checkpoint, in the dashboard when stdout is a terminal (at agent.speed times the Game Boy's
    own speed; without a dashboard, uncapped).
    """
    from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind
    from pokedreamer.agent.play import start_loop

    flags = {"rom": rom, "headless": headless, "steps": steps, "seed": seed, "planner": planner,
             "preset": preset, "envs": envs, "speed": speed_setting(speed),
             "workers": workers, "ray_address": ray_address}  # fmt: skip
    if resume is not None:
        settings = _run_settings(ctx, resume, **flags)
        preset_chosen = False
    else:
        settings = _settings(ctx, **flags)
        chosen = _chosen(ctx, None, **flags)
        # The checkpoint's observation and goal code, where none was chosen; a preset asked for
        # (flag, variable or --config) is a new model of it, not the shipped one.
        settings = adopt_checkpoint_kind(settings, checkpoint, chosen)
        preset_chosen = "world_model.preset" in chosen
    dashboard = not headless and sys.stdout.isatty()
    if speed is not None and not dashboard and settings.env.headless:
        raise UserError(
            "--speed paces a run someone watches: the dashboard (run it in a terminal, without "
            "--headless) or the emulator's window (--no-headless); this one runs uncapped"
        )
    start_loop(
        settings, resume=resume, checkpoint=checkpoint, train=not no_train, name=name,
        dashboard=dashboard, human=False, preset_chosen=preset_chosen,
    )  # fmt: skip


@app.command()
def play(
    ctx: typer.Context,
    rom: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Game Boy ROM (default: the fixture cartridge)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="Weights the agent acts with when you hand it back."),
    ] = None,
    train: Annotated[
        bool, typer.Option("--train/--no-train", help="Let the agent learn meanwhile.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Run name (default: a timestamp).")
    ] = None,
    seed: Annotated[int | None, typer.Option(metavar="N", help="Random seed.")] = None,
    speed: SpeedOption = None,
) -> None:
    """Play the game yourself in the dashboard; your steps are kept as demonstrations."""
    from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind
    from pokedreamer.agent.play import start_loop

    if not sys.stdout.isatty():
        raise UserError("pokedreamer play needs a terminal: run it in one (not piped)")
    flags = {"rom": rom, "seed": seed, "speed": speed_setting(speed)}
    settings = _settings(ctx, **flags)
    settings = adopt_checkpoint_kind(settings, checkpoint, _chosen(ctx, None, **flags))
    start_loop(
        settings, resume=None, checkpoint=checkpoint, train=train, name=name, dashboard=True,
        human=True,
    )  # fmt: skip


@app.command()
def replay(
    ctx: typer.Context,
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder, e.g. runs/NAME.")],
    episode: Annotated[
        int | None, typer.Argument(metavar="[EPISODE]", help="Episode number (default: latest).")
    ] = None,
) -> None:
    """Scrub a recorded episode with its state, reward terms and subgoal trace."""
    from pokedreamer.dashboard.replay import run_replay

    if not sys.stdout.isatty():
        raise UserError("pokedreamer replay needs a terminal: run it in one (not piped)")
    run_replay(run_dir, episode)


@app.command()
def ram(
    check_symbols: Annotated[
        Path | None,
        typer.Option(
            "--check-symbols",
            metavar="FILE.sym",
            help="Compare the RAM map with a symbol file, e.g. pret/pokered's pokered.sym; "
            "exits 1 on any mismatch.",
        ),
    ] = None,
) -> None:
    """Show the RAM map (address, bytes, pret symbol, meaning) or check it against a .sym file."""
    from pokedreamer.env import ram as ram_map

    if check_symbols is None:
        width = max(len(name) for name in ram_map.RAM)
        typer.echo(f"{'address':<9}{'bytes':>5}  {'pret symbol':<{width}}  meaning")
        for var in sorted(ram_map.RAM.values(), key=lambda v: v.address):
            typer.echo(f"${var.address:04X}    {var.width:>5}  {var.name:<{width}}  {var.meaning}")
        return
    problems = ram_map.check_symbols(ram_map.load_sym(check_symbols))
    for line in problems:
        typer.echo(line)
    if problems:
        typer.echo(
            f"{len(problems)} of {len(ram_map.RAM)} RAM variables do not match {check_symbols}"
        )
        raise typer.Exit(EXIT_CHECK_FAILED)
    typer.echo(f"{len(ram_map.RAM)} RAM variables match {check_symbols}")


def _run_settings(ctx: typer.Context, run_path: Path, **flags: Any) -> Settings:
    """A run's own saved settings (so models match their data), unless --config says otherwise."""
    saved = run_path / "config.toml"
    config = _globals(ctx).config or (saved if saved.is_file() else None)
    return load_settings(config, flag_overrides(**flags))


def _chosen(ctx: typer.Context, run_path: Path | None, **flags: Any) -> frozenset[str]:
    """The settings chosen on purpose (config_layers.chosen_keys): the flags given, the
    POKEDREAMER_* variables, and every key of the file --config names or, for an existing run
    (``run_path``), of the run's own saved settings. ./config.toml, read because it is there, is
    no choice: the repository's own sets every key to its default."""
    named = _globals(ctx).config
    if named is None and run_path is not None and (run_path / "config.toml").is_file():
        named = run_path / "config.toml"
    return chosen_keys(read_toml(named) if named is not None else {}, flag_overrides(**flags))


def _runs_dir(ctx: typer.Context) -> Path:
    """Where runs live: run.runs_dir of --config (or ./config.toml), the environment's value or
    the default; a run's own saved settings cannot say where the run itself is."""
    return Path(_settings(ctx).run.runs_dir)


@app.command()
def collect(
    ctx: typer.Context,
    run: RunOption,
    steps: Annotated[int, typer.Option(min=1, help="Env steps to collect, all envs.")] = 50_000,
    envs: Annotated[int, typer.Option(min=1, help="Envs in parallel processes.")] = 2,
    policy: Annotated[str, typer.Option(help=POLICY_HELP)] = "random",
    seed: Annotated[int | None, typer.Option(metavar="N", help="Random seed.")] = None,
    rom: Annotated[
        Path | None, typer.Option(metavar="PATH", help="ROM (default: the fixture cartridge).")
    ] = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
) -> None:
    """Play with a behaviour policy and store every step in the run's replay."""
    from pokedreamer.agent.collect import collect as run_collect
    from pokedreamer.env.vector import check_workers
    from pokedreamer.rundir import RunDir

    settings = _settings(
        ctx, seed=seed, rom=rom, envs=envs, workers=workers, ray_address=ray_address
    )
    check_policy(policy, settings.agent.workers)  # before the run directory is made
    check_workers(settings.agent.workers, settings.agent.ray_address)
    run_dir = RunDir.create(settings, run)
    result = run_collect(settings, run_dir, steps, settings.agent.envs, policy)
    typer.echo(
        f"collected {result.steps} steps ({result.ended()}) in "
        f"{result.seconds:.1f} s, {result.steps / max(result.seconds, 1e-9):.0f} steps/s; "
        f"{run_dir.replay} holds {result.replay_steps} steps"
    )


app.add_typer(train_app(_settings, _run_settings, _chosen), name="train")


eval_app = typer.Typer(
    help="Evaluate the world model, the agent or the planner.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(eval_app, name="eval")


@eval_app.command("world-model")
def eval_world_model(
    ctx: typer.Context,
    run: RunOption,
    data: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Run whose replay to score on (default: --run's own)."),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Checkpoint (default: the latest).")
    ] = None,
    sequences: Annotated[
        int,
        typer.Option(
            min=1,
            help="Sequences to score: the pooled PSNR is ruled by the few frames drawn worst, "
            "and 64 move it by dBs from one draw to the next.",
        ),
    ] = 256,
    context: Annotated[int, typer.Option(min=1, help="Observed steps before imagining.")] = 5,
    horizon: Annotated[int, typer.Option(min=1, help="Imagined steps.")] = 30,
) -> None:
    """Open-loop report: observe, then imagine under logged actions; JSON, markdown, PNG, GIF."""
    from pokedreamer.rundir import RunDir
    from pokedreamer.world_model.evaluate import evaluate_world_model, summary_line

    runs_dir = _runs_dir(ctx)
    run_dir = RunDir.open(runs_dir / run)
    data_dir = RunDir.open(runs_dir / data) if data else run_dir
    settings = _run_settings(ctx, run_dir.path)
    report, paths = evaluate_world_model(
        settings, run_dir, data_dir, checkpoint, sequences, context, horizon,
        state_ranges(settings),
    )  # fmt: skip
    typer.echo(summary_line(report))
    for kind, file in paths.items():
        typer.echo(f"{kind}: {file}")


_EVAL_SEED_HELP = (
    "First episode's seed. Score on seeds used neither in training (runs start at env.seed, 0 "
    "by default, and count up) nor in choosing a checkpoint (the README's recipe chose on 100-119)."
)


@eval_app.command("agent")
def eval_agent(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Agent checkpoint or run folder (default on the fixture: the shipped one).",
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="Seeded episodes per variant.")] = 30,
    max_steps: Annotated[int, typer.Option(min=1, help="Step budget of an episode.")] = 3000,
    variants: Annotated[
        str, typer.Option(help="Comma-separated: agent, no-planner, random, demonstrator, floor.")
    ] = "agent,no-planner,random",
    envs: Annotated[int, typer.Option(min=1, help="Emulators played at once.")] = 2,
    seed: Annotated[int, typer.Option(metavar="N", help=_EVAL_SEED_HELP)] = 10_000,
    planner: Annotated[
        PlannerKind | None,
        typer.Option(help="Which planner sets the agent's subgoals (default: config)."),
    ] = None,
    pace: Annotated[
        Literal["wait", "free"] | None,
        typer.Option(
            help="wait: the game waits for each LLM plan (the default for llm and local); "
            "free: the agent plays on, on heuristic plans, while the LLM thinks."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Report folder (default runs/eval-<time>).")
    ] = None,
    map_graph: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE_OR_RUN_DIR",
            help="Start from this map graph (a map_graph.json or a run folder holding one); "
            "default: an empty one, grown over the episodes.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Success rate and steps to each quest stage over seeded episodes, beside ablations."""
    import json
    import time

    from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind
    from pokedreamer.agent.checkpointer import resolve_checkpoint
    from pokedreamer.agent.evaluate import evaluate_agent, markdown
    from pokedreamer.agent.play import shipped_checkpoint

    flags = {"seed": seed, "envs": envs, "planner": planner}
    settings = _settings(ctx, **flags)
    if checkpoint is not None:
        checkpoint = resolve_checkpoint(checkpoint)
        settings = adopt_checkpoint_kind(settings, checkpoint, _chosen(ctx, None, **flags))
    elif not settings.env.rom:
        checkpoint = shipped_checkpoint()
    folder = out or Path(settings.run.runs_dir) / time.strftime("eval-%Y%m%d-%H%M%S")
    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    report = evaluate_agent(
        settings, checkpoint, folder, episodes, max_steps, chosen, pace, map_graph=map_graph
    )
    typer.echo(json.dumps(report, indent=1) if json_out else markdown(report))
    if not json_out:
        typer.echo(f"report: {folder / 'report.md'}")


@eval_app.command("planner")
def eval_planner(
    ctx: typer.Context,
    planner: Annotated[
        str | None,
        typer.Option(
            metavar="heuristic|llm|local", help="Planner to score (default: planner.kind)."
        ),
    ] = None,
    prompts: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Prompt templates (default: planner.prompts_dir)."),
    ] = None,
    scenarios: Annotated[
        str,
        typer.Option(metavar="WHICH", help="all, quick, or ids by pattern: red-*,fixture-start."),
    ] = "all",
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Also write report.json and report.md there.")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="A line per scenario on stderr."),
    ] = None,
) -> None:
    """Score a planner and its prompts on stored game scenarios: valid plans, acceptable first
    subgoals, latency and tokens per plan."""
    from pokedreamer.planner.evaluate import run_eval_planner

    shown = sys.stderr.isatty() if progress is None else progress
    typer.echo(run_eval_planner(_settings(ctx), planner, prompts, scenarios, json_out, out, shown))


app.add_typer(bench_app(_settings, _chosen), name="bench")


@app.command()
def export(
    ctx: typer.Context,
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="Run name under run.runs_dir (default runs/), or its folder."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE.mp4|FILE.gif",
            help="File to write; its suffix picks the format.",
        ),
    ],
    episode: Annotated[
        int | None,
        typer.Argument(metavar="EPISODE", min=1, help="Episode number (default: the latest)."),
    ] = None,
    scale: Annotated[int, typer.Option(min=1, max=8, help="Whole-number screen scale.")] = 2,
    every: Annotated[int, typer.Option(min=1, metavar="K", help="Keep every K-th step.")] = 1,
    fps: Annotated[
        float, typer.Option(min=0.1, help="Frames per second of the output (GIF: 50 at most).")
    ] = 20.0,
) -> None:
    """Render a recorded episode to MP4 or GIF, with step, place, subgoal and reward under it."""
    from rich.console import Console
    from rich.progress import Progress

    from pokedreamer.agent.episodes import open_episode
    from pokedreamer.agent.export import check_export, export_episode
    from pokedreamer.rundir import RunDir

    # Options first: a wrong suffix or a missing encoder should not wait on reading the episode.
    check_export(out, scale, every, fps)
    runs_dir = _runs_dir(ctx)
    # A name is looked up under runs_dir, like --run elsewhere; a path to a run folder works too.
    folder = runs_dir / run
    if not folder.is_dir() and Path(run).is_dir():
        folder = Path(run)
    if not folder.is_dir():
        raise UserError(f"run not found: {run} (no folder {runs_dir / run})")
    reader = open_episode(RunDir.open(folder), episode)
    # On stderr, and only at a terminal: stdout keeps just the result line for scripts.
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"episode {reader.number}", total=len(reader))
        result = export_episode(
            reader, out, scale, every, fps, lambda done: bar.update(task, completed=done)
        )
    typer.echo(
        f"wrote {result.path}: {result.frames} frames from episode {reader.number} "
        f"({result.steps} steps, every {every}), {result.width}x{result.height} at "
        f"{result.fps:.4g} fps"
    )


app.add_typer(prompts_app(_settings), name="prompts")


TORCHRUN_VERBS = (("train", "world-model"), ("train", "agent"), ("bench", "train"))
"""The verbs that run as one learner spread over torchrun's processes (world_model.distributed)."""


def check_torchrun(args: list[str]) -> None:
    """Refuses a verb other than the learner's under torchrun: each rank would run all of it,
    playing its own emulators into the same files. ``args``: the command line after the program."""
    # What torch.distributed.is_torchelastic_launched() reads, without importing torch for
    # every command.
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    words = [
        a for i, a in enumerate(args) if not a.startswith("-") and args[i - 1 : i] != ["--config"]
    ]
    verb = tuple(words[:2]) if words[:1] in (["train"], ["bench"]) else tuple(words[:1])
    if verb in TORCHRUN_VERBS or verb in ((), ("train",), ("bench",)):
        return  # a learner's verb, or none: typer tells what is missing
    why = (
        "keeps one learner process beside its emulators"
        if verb == ("run",)
        else "runs in one process"
    )
    allowed = ", ".join(" ".join(v) for v in TORCHRUN_VERBS)
    raise UserError(
        f"{' '.join(verb)} {why}: start it without torchrun (torchrun is for {allowed})"
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user mistakes are one line and exit 2, Ctrl-C exits 130."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        # torchrun's own parser takes --run for an abbreviation of its --run-path unless the
        # command's arguments follow a "--", which it then passes on: ours start after it.
        args = args[1:]
    try:
        check_torchrun(args)
        # Standalone mode lets typer turn usage errors, --help and typer.Exit into exit codes;
        # only our own errors come back out as exceptions.
        app(args=args, prog_name="pokedreamer")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        # Typer already maps Ctrl-C inside a verb to 130; this catches it anywhere else.
        sys.exit(EXIT_INTERRUPTED)

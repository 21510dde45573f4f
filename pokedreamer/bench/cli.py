"""The ``pokedreamer bench`` verbs.

Each verb reads its flags, runs one bench of this package and prints the result: a line per
figure, or with ``--json`` the whole result, whose keys users' scripts and docs/benchmarks.md
read. The benches, and the heavy libraries they load, are imported inside the verbs, so that
``pokedreamer --help`` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    # The main command's ways of resolving a verb's settings, as the train verbs take them.
    from pokedreamer.agent.train_verbs import ChosenFor, SettingsFor


JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
PresetOption = Annotated[
    str | None, typer.Option(help="Size preset: tiny, mini, small, base, large (default: config).")
]
DeviceOption = Annotated[str | None, typer.Option(help="auto, cpu or cuda.")]


def echo_result(result: dict[str, Any], json_out: bool) -> None:
    """A bench's result as JSON, or as one ``key: value`` line per entry."""
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {value}")


def bench_app(settings_for: SettingsFor, chosen_for: ChosenFor) -> typer.Typer:
    """The ``bench`` sub-command, its verbs reading their settings through ``settings_for``
    (and what was chosen on purpose through ``chosen_for``)."""
    bench = typer.Typer(
        help="Measure speed: the env, the world model, the planner, the agent loop and the "
        "dashboard.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @bench.command("env")
    def env(
        ctx: typer.Context,
        json_out: JsonOption = False,
        steps: Annotated[int, typer.Option(min=50, help="Steps per timed round.")] = 400,
        rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds of raw and env.")] = 21,
        processes: Annotated[
            int | None, typer.Option(min=1, help="Most processes to try (default: the core count).")
        ] = None,
        seconds: Annotated[
            float, typer.Option(min=0.5, help="Seconds each process count runs.")
        ] = 3.0,
        rom: Annotated[
            Path | None, typer.Option(metavar="PATH", help="ROM (default: the fixture cartridge).")
        ] = None,
        workers: Annotated[
            Literal["local", "ray"],
            typer.Option(
                help="ray: envs on Ray actors against the local vector env instead, and what "
                "one Ray call per step costs."
            ),
        ] = "local",
        ray_workers: Annotated[
            int, typer.Option(min=1, help="With --workers ray: the actors compared.")
        ] = 2,
        envs_per_worker: Annotated[
            int, typer.Option(min=1, help="With --workers ray: envs each actor steps.")
        ] = 4,
        ray_address: Annotated[
            str | None,
            typer.Option(metavar="ADDR", help="With --workers ray: the Ray cluster to join."),
        ] = None,
        call_envs: Annotated[
            str,
            typer.Option(
                metavar="N,N,...",
                help="With --workers ray: the envs per actor at which one call's cost is timed.",
            ),
        ] = "1,2,4,8,16,32,64",
    ) -> None:
        """Env steps/s against raw PyBoy at the same frames per step, and over 1..N processes;
        with --workers ray, Ray actors against the local vector env with as many envs."""
        if workers == "ray":
            from pokedreamer.bench.ray_env import bench_ray_env

            sizes = tuple(int(n) for n in call_envs.split(",") if n.strip().isdigit())
            if not sizes or len(sizes) != len(call_envs.split(",")) or min(sizes) < 1:
                raise typer.BadParameter("a comma-separated list of env counts, each ≥ 1",
                                         param_hint="--call-envs")  # fmt: skip
            settings = settings_for(ctx, rom=rom, ray_address=ray_address)
            echo_result(
                bench_ray_env(
                    settings.env, ray_workers, envs_per_worker, steps, rounds,
                    settings.agent.ray_address, sizes,
                ).as_dict(),
                json_out,
            )  # fmt: skip
            return
        from pokedreamer.bench.env import bench_env

        settings = settings_for(ctx, rom=rom)
        result = bench_env(settings.env, steps, rounds, processes, seconds).as_dict()
        if json_out:
            echo_result(result, json_out)
            return
        typer.echo(f"machine: {result['machine']}")
        typer.echo(
            f"raw PyBoy {result['raw_pyboy_steps_per_s']:.0f} steps/s, env "
            f"{result['env_steps_per_s']:.0f} steps/s: env/raw = {result['env_over_raw']:.3f}"
        )
        for n, rate in result["processes_steps_per_s"].items():
            scaling = result["processes_scaling"][n]
            typer.echo(f"{n} process(es): {rate:.0f} steps/s (x{scaling:.2f} of linear)")

    @bench.command("tiles")
    def tiles(
        ctx: typer.Context,
        json_out: JsonOption = False,
        steps: Annotated[int, typer.Option(min=20, help="Random-button env steps.")] = 2000,
        capacity: Annotated[
            int | None, typer.Option(help="Vocabulary capacity (default: world_model's).")
        ] = None,
        run: Annotated[
            Path | None,
            typer.Option(metavar="RUN_DIR", help="Tokenize this run's recorded episodes."),
        ] = None,
    ) -> None:
        """Tokenizing a screen into tiles against an env step, and the vocabulary it grows."""
        from pokedreamer.bench.tiles import bench_tiles

        settings = settings_for(ctx)
        size = capacity or settings.world_model.tile_capacity
        echo_result(bench_tiles(settings.env, steps, size, run).as_dict(), json_out)

    @bench.command("imagine")
    def imagine(
        ctx: typer.Context,
        json_out: JsonOption = False,
        preset: PresetOption = None,
        batch: Annotated[int, typer.Option(min=1, help="Imagined trajectories at once.")] = 1024,
        horizon: Annotated[int, typer.Option(min=1, help="Imagined steps per trajectory.")] = 15,
        device: DeviceOption = None,
    ) -> None:
        """Imagined transitions/s of the bare rollout (actor + GRU + prior) and of the real
        behaviour update, beside one env process's steps/s; imagine_only_ratio is the update's
        imagination and scoring without its learning, over the bare rollout."""
        from pokedreamer.bench.world_model import bench_imagine

        settings = settings_for(ctx, preset=preset, device=device)
        result = bench_imagine(
            settings.world_model, settings.env, batch, horizon, agent=settings.agent
        )
        echo_result(result.as_dict(), json_out)

    @bench.command("train")
    def train(
        ctx: typer.Context,
        json_out: JsonOption = False,
        preset: PresetOption = None,
        updates: Annotated[
            int, typer.Option(min=1, help="Timed updates of each model, in turn.")
        ] = 5,
        device: DeviceOption = None,
    ) -> None:
        """Replayed transitions/s of world-model updates, pixels and tiles (their ratio in
        tiles_over_pixels), beside one env process's steps/s; under torchrun, of the processes
        training together (DDP)."""
        from pokedreamer.bench.world_model import bench_train
        from pokedreamer.world_model.distributed import process_group

        settings = settings_for(ctx, preset=preset, device=device)
        with process_group(settings.world_model.device) as ranks:
            result = bench_train(settings.world_model, settings.env, updates, ranks)
        if result is not None:  # rank 0 reports for all
            echo_result(result.as_dict(), json_out)

    @bench.command("planner")
    def planner(
        ctx: typer.Context,
        json_out: JsonOption = False,
        steps: Annotated[int, typer.Option(min=100, help="Steps per timed round.")] = 20_000,
        rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds.")] = 3,
        latency: Annotated[
            str,
            typer.Option(
                "--latency-s",
                "--latency",
                help="Seconds the LLM takes to answer; several, comma-separated, are replayed "
                "in turn.",
            ),
        ] = "7.1",
        local: Annotated[
            bool,
            typer.Option(
                "--local",
                help="Plan with the real local model (the local-llm extra) at local_llm.threads, "
                "instead of a server replaying --latency-s.",
            ),
        ] = False,
    ) -> None:
        """Loop steps/s with an asynchronous LLM planner (a slow local endpoint that answers every
        request) against the heuristic planner and none."""
        from pokedreamer.bench.planner import bench_planner, parse_latencies

        settings = settings_for(ctx)
        echo_result(
            bench_planner(
                settings,
                steps,
                rounds,
                parse_latencies(latency),
                settings.local_llm if local else None,
            ),
            json_out,
        )

    @bench.command("loop")
    def loop(
        ctx: typer.Context,
        json_out: JsonOption = False,
        preset: PresetOption = None,
        envs: Annotated[str, typer.Option(help="Env counts to time, comma-separated.")] = "1,2",
        steps: Annotated[
            int, typer.Option(min=10, help="Timed acting steps per env count.")
        ] = 2000,
        train_steps: Annotated[
            int, typer.Option(min=0, help="Steps timed with training (0 skips it).")
        ] = 1000,
        checkpoint: Annotated[
            Path | None, typer.Option(metavar="PATH", help="Weights to act with.")
        ] = None,
    ) -> None:
        """Agent loop steps/s: env, model and overhead time acting only; updates/s training."""
        from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind
        from pokedreamer.agent.checkpointer import resolve_checkpoint
        from pokedreamer.bench.loop import bench_loop

        counts = tuple(int(n) for n in envs.split(",") if n.strip())
        path = resolve_checkpoint(checkpoint) if checkpoint else None
        settings = settings_for(ctx, preset=preset)
        # The checkpoint's observation and goal code, where none was chosen: timed as it plays.
        settings = adopt_checkpoint_kind(settings, path, chosen_for(ctx, None, preset=preset))
        echo_result(bench_loop(settings, counts, steps, train_steps, path), json_out)

    @bench.command("dashboard")
    def dashboard(
        ctx: typer.Context,
        json_out: JsonOption = False,
        preset: PresetOption = None,
        seconds: Annotated[float, typer.Option(min=0.5, help="Seconds of drawing timed.")] = 3.0,
        steps: Annotated[int, typer.Option(min=100, help="Loop steps per timed round.")] = 3000,
        rounds: Annotated[int, typer.Option(min=1, help="Alone/watched round pairs.")] = 3,
        toggle_seconds: Annotated[
            float,
            typer.Option(
                min=0,
                help="Also time one loop this long with the dashboard attached and detached in "
                "turn (twice: with and without imagined frames); 0 skips it.",
            ),
        ] = 60.0,
        window: Annotated[
            float, typer.Option(min=0.5, help="Seconds of each attached or detached window.")
        ] = 2.5,
        size: Annotated[
            list[str] | None,
            typer.Option(
                metavar="WxH",
                help="Terminal size to measure in, e.g. 80x24; several by repeating the flag or "
                "comma-separated, each measured in turn (default: 200x60).",
            ),
        ] = None,
    ) -> None:
        """Dashboard screen updates/s, and what watching costs the agent loop, at 200x60 or at each
        --size."""
        from pokedreamer.bench.dashboard import SIZE, bench_dashboard, parse_sizes

        result = bench_dashboard(
            settings_for(ctx, preset=preset), seconds, steps, rounds,
            toggle_seconds=toggle_seconds, window_seconds=window,
            sizes=parse_sizes(size) if size else (SIZE,),
        )  # fmt: skip
        by_size = None if json_out else result.pop("by_size", None)
        echo_result(result, json_out)
        for name, figures in (by_size or {}).items():  # a block of lines per terminal size
            typer.echo(f"--- {name}")
            echo_result(figures, json_out)

    return bench

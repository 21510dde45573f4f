"""The ``pokedreamer train`` verbs: the world model, the actor's imitation, and the whole recipe
(``train agent``).

The trainers, and the heavy libraries they load, are imported inside the verbs, so that
``pokedreamer --help`` answers at once.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from pokedreamer.agent.collect_policy import check_policy
from pokedreamer.config import PlannerKind, Settings
from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.world_model.heads import StateRanges


class SettingsFor(Protocol):
    """How the main command resolves a verb's settings: its ``--config`` file under the verb's
    flags, each tied to its setting by the main command's one flag table."""

    def __call__(self, ctx: typer.Context, **flags: Any) -> Settings: ...


class RunSettingsFor(Protocol):
    """The same for a verb on an existing run: the run's own saved settings, unless
    ``--config`` says otherwise."""

    def __call__(self, ctx: typer.Context, run_path: Path, **flags: Any) -> Settings: ...


RunOption = Annotated[
    str, typer.Option("--run", metavar="NAME", help="Run name, under run.runs_dir (default runs/).")
]


def state_ranges(settings: Settings) -> StateRanges:
    """The state heads' classes for the game of ``env.rom`` (the fixture when unset)."""
    from pokedreamer.env.cartridge import ROM_PATH
    from pokedreamer.env.rom import load_rom
    from pokedreamer.planner.facts import GameFacts
    from pokedreamer.world_model.heads import StateRanges

    game = load_rom(settings.env.rom or str(ROM_PATH)).game
    return StateRanges.of_maps(GameFacts.for_game(game).maps.values())


class ChosenFor(Protocol):
    """Which settings a verb was given on purpose (dotted keys): its flags, the POKEDREAMER_*
    variables, and the keys of the config file named, or of a run's own saved settings
    (``run_path``, None for a new run)."""

    def __call__(
        self, ctx: typer.Context, run_path: Path | None, **flags: Any
    ) -> frozenset[str]: ...


def train_app(
    settings_for: SettingsFor, run_settings_for: RunSettingsFor, chosen_for: ChosenFor
) -> typer.Typer:
    """The ``train`` sub-command, its verbs reading their settings through the first two
    functions; ``train agent`` asks the third which settings were chosen on purpose."""
    train = typer.Typer(help="Train System 1.", no_args_is_help=True, rich_markup_mode=None)

    def runs_dir(ctx: typer.Context) -> Path:
        """Where runs live: run.runs_dir of --config (or ./config.toml), the environment's
        value or the default; a run's own saved settings cannot say where the run itself is."""
        return Path(settings_for(ctx).run.runs_dir)

    @train.command("world-model")
    def train_world_model(
        ctx: typer.Context,
        run: RunOption,
        updates: Annotated[int, typer.Option(min=1, help="Updates to add.")] = 1000,
        preset: Annotated[
            str | None, typer.Option(help="Size preset: tiny, mini, small, base, large.")
        ] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    ) -> None:
        """Train the world model on the run's replay; resumes from its latest checkpoint."""
        from pokedreamer.rundir import RunDir
        from pokedreamer.world_model.distributed import process_group
        from pokedreamer.world_model.train import train_world_model as run_train

        run_dir = RunDir.open(runs_dir(ctx) / run)
        settings = run_settings_for(ctx, run_dir.path, preset=preset, device=device)
        # Under torchrun: one rank per process, each on its share of every batch.
        with process_group(settings.world_model.device) as ranks:

            def save_settings() -> None:
                # The run's config.toml describes what was trained on it, so eval and resume
                # find the model; written once the model and replay fit, so a refusal keeps it.
                if ranks.is_main:
                    text = settings.to_toml()
                    (run_dir.path / "config.toml").write_text(text, encoding="utf-8")

            result = run_train(
                settings, run_dir, updates, state_ranges(settings), ranks, save_settings
            )
        if ranks.is_main:
            on = f" on {ranks.world_size} processes" if ranks.distributed else ""
            typer.echo(
                f"{result['updates']} updates{on} ({result['seconds']:.0f} s this session), loss "
                f"{result.get('loss', float('nan')):.4f}; checkpoint {result['checkpoint']}"
            )

    @train.command("imitation")
    def train_imitation(
        ctx: typer.Context,
        run: RunOption,
        demos: Annotated[
            list[str] | None,
            typer.Option(
                metavar="RUN",
                help="Clone a person's play: the demonstrations recorded in this run (a name under "
                "run.runs_dir, or a folder); repeat for more runs.",
            ),
        ] = None,
        steps: Annotated[
            int | None,
            typer.Option(min=1, help="DAgger: env steps to add, all envs (default 30,000)."),
        ] = None,
        updates: Annotated[
            int | None, typer.Option(min=1, help="With --demos: updates to add (default 1,000).")
        ] = None,
        checkpoint: Annotated[
            Path | None,
            typer.Option(
                metavar="PATH",
                help="Agent or world-model checkpoint whose world model the actor learns on "
                "(default on the fixture: the shipped one); ignored when the run has its own.",
            ),
        ] = None,
        envs: Annotated[int | None, typer.Option(min=1, help="Emulators played at once.")] = None,
        seed: Annotated[int | None, typer.Option(metavar="N", help="Random seed.")] = None,
        fresh_actor: Annotated[
            bool,
            typer.Option(
                "--fresh-actor",
                help="DAgger: take only the checkpoint's world model; the actor and critic start "
                "untrained (e.g. with agent.goal_input = false, the fair no-planner ablation).",
            ),
        ] = False,
    ) -> None:
        """Teach the actor the scripted demonstrator's buttons on the states it reaches (DAgger),
        or with --demos a person's recorded buttons (behaviour cloning); continues the run from its
        latest checkpoint when it has one."""
        # The run's own settings, once it has them.
        path = runs_dir(ctx) / run
        settings = run_settings_for(ctx, path, seed=seed, envs=envs)
        if fresh_actor and demos:
            raise UserError("--fresh-actor is for DAgger, not --demos")

        def with_checkpoint_kind(settings: Settings) -> Settings:
            """The observation and goal code --checkpoint was trained on, where none was
            chosen (agent.checkpoint_kind); a run's own saved settings count as chosen."""
            if checkpoint is None:
                return settings
            from pokedreamer.agent.checkpoint_kind import adopt_checkpoint_kind

            chosen = chosen_for(ctx, path, seed=seed, envs=envs)
            return adopt_checkpoint_kind(settings, checkpoint, chosen, fresh_actor=fresh_actor)

        if demos:
            from pokedreamer.agent.demos import load_demos

            if steps is not None:
                raise UserError("--steps is for DAgger; with --demos give --updates")
            # Read and checked before torch is imported: a mistake is told at once.
            recorded = load_demos(demos, runs_dir(ctx), settings.env.action_names)
            from pokedreamer.agent.cloning import UPDATES, run_cloning

            settings = with_checkpoint_kind(settings)
            run_cloning(settings, run, recorded, demos, checkpoint, updates or UPDATES)
            return
        from pokedreamer.agent.play import run_imitation

        if updates is not None:
            raise UserError("--updates goes with --demos; DAgger takes --steps")
        settings = with_checkpoint_kind(settings)
        run_imitation(settings, run, checkpoint, steps or 30_000, fresh_actor)

    @train.command("agent")
    def agent(
        ctx: typer.Context,
        run: RunOption,
        imitate: Annotated[
            bool,
            typer.Option(
                "--imitate",
                help="Add the actor's imitation of the scripted demonstrator (DAgger) after the "
                "world model, as a warm start for learning in imagination.",
            ),
        ] = False,
        collect_steps: Annotated[
            int | None,
            typer.Option(
                min=1,
                metavar="N",
                help="Random-button env steps to collect, all envs (default 150,000; with "
                "--imitate 50,000).",
            ),
        ] = None,
        collect_policy: Annotated[
            str | None,
            typer.Option(
                metavar="POLICY",
                help="go-explore: random buttons from the places reached least (local envs "
                "only; the default); random: buttons from the start state (with --imitate, the "
                "default).",
            ),
        ] = None,
        world_model_updates: Annotated[
            int | None,
            typer.Option(
                min=1,
                metavar="N",
                help="World-model updates on the collected replay (default 3,000; with "
                "--imitate 2,000).",
            ),
        ] = None,
        imitation_steps: Annotated[
            int, typer.Option(min=1, help="With --imitate: DAgger's env steps, all envs.")
        ] = 20_000,
        steps: Annotated[
            int | None,
            typer.Option(
                min=0,
                metavar="N",
                help="Env steps of online learning in imagination, all envs; 0 skips it. More "
                "than a finished run took goes on from its last checkpoint (default 5,000; "
                "with --imitate 30,000).",
            ),
        ] = None,
        eval_episodes: Annotated[
            int, typer.Option(min=1, help="Evaluation episodes per variant.")
        ] = 30,
        eval_seed: Annotated[
            int,
            typer.Option(min=0, help="First evaluation seed: above every seed training played."),
        ] = 10_000,
        eval_max_steps: Annotated[
            int, typer.Option(min=1, help="Step budget of an evaluation episode.")
        ] = 3000,
        eval_variants: Annotated[
            str,
            typer.Option(help="Comma-separated: agent, no-planner, random, demonstrator, floor."),
        ] = "agent",
        eval_every: Annotated[
            int,
            typer.Option(
                min=0,
                help="Also evaluate every this many imagination steps, for the learning curve; "
                "0: only at the end.",
            ),
        ] = 0,
        validate_every: Annotated[
            int | None,
            typer.Option(
                min=0,
                metavar="N",
                help="Validate a checkpoint every N imagination steps and end "
                "with the best; 0: end with the last (default 1,000; with --imitate 0).",
            ),
        ] = None,
        validate_episodes: Annotated[int, typer.Option(min=1, help="Validation episodes.")] = 10,
        validate_seed: Annotated[
            int, typer.Option(min=0, help="First validation seed: apart from the evaluation's.")
        ] = 20_000,
        until: Annotated[
            str | None,
            typer.Option(
                metavar="STAGE",
                help="Stop after this stage: collect, world-model, imitation, imagination, eval.",
            ),
        ] = None,
        preset: Annotated[
            str | None,
            typer.Option(help="Size preset (default: the recipe's mini; with --imitate tiny)."),
        ] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
        envs: Annotated[
            int | None, typer.Option(min=1, help="Emulators played at once (default 2).")
        ] = None,
        seed: Annotated[
            int | None, typer.Option(metavar="N", help="First training seed (default 0).")
        ] = None,
        planner: Annotated[
            PlannerKind | None, typer.Option(help="Which planner sets subgoals.")
        ] = None,
    ) -> None:
        """The whole recipe from an empty run: collect, world model, (imitation,) behaviour in
        imagination, then eval agent on fresh seeds. Each stage resumes when run again."""
        from pokedreamer.agent.recipe_plan import (
            IMAGINATION_SIZES,
            IMITATION_SIZES,
            RECIPE_FILE,
            Sizes,
            check_run_kind,
            check_seeds,
            check_sizes,
            recipe_settings,
        )  # fmt: skip

        default = IMITATION_SIZES if imitate else IMAGINATION_SIZES
        sizes = Sizes(
            collect_steps=default.collect_steps if collect_steps is None else collect_steps,
            collect_policy=default.collect_policy if collect_policy is None else collect_policy,
            world_model_updates=(
                default.world_model_updates if world_model_updates is None else world_model_updates
            ),
            imitation_steps=imitation_steps if imitate else 0,
            steps=default.steps if steps is None else steps,
            eval_episodes=eval_episodes, eval_seed=eval_seed, eval_max_steps=eval_max_steps,
            eval_variants=tuple(v.strip() for v in eval_variants.split(",") if v.strip()),
            eval_every=eval_every, validate_episodes=validate_episodes, validate_seed=validate_seed,
            validate_every=default.validate_every if validate_every is None else validate_every,
        )  # fmt: skip
        check_sizes(sizes, until)
        path = runs_dir(ctx) / run
        check_run_kind(path)
        flags = {"preset": preset, "device": device, "envs": envs, "seed": seed,
                 "planner": planner}  # fmt: skip
        existing = path if (path / RECIPE_FILE).is_file() else None
        if existing is not None:
            settings = run_settings_for(ctx, existing, **flags)
        else:
            settings = settings_for(ctx, **flags)
        settings = recipe_settings(settings, chosen_for(ctx, existing, **flags), imitate=imitate)
        check_policy(sizes.collect_policy, settings.agent.workers)
        check_seeds(sizes, settings.env.seed, settings.agent.envs)
        if imitate and settings.planner.kind == "none":
            raise UserError(
                "the demonstrator plays the planner's subgoals: set a planner, not none"
            )
        # The stages' code, and torch with it, once the flags are known to be good.
        from pokedreamer.agent.recipe import Recipe
        from pokedreamer.rundir import RunDir
        from pokedreamer.world_model.distributed import barrier, process_group

        # A service manager's SIGTERM stops it as Ctrl-C does: the stage's work is saved.
        signal.signal(signal.SIGTERM, _interrupt)
        recipe: Recipe | None = None
        run_dir: RunDir | None = None
        try:
            # Under torchrun: the world-model stage on every rank (Recipe.run says so).
            with process_group(settings.world_model.device) as ranks:
                # Every rank has checked the run before rank 0 makes it; the others then read it.
                barrier(ranks)
                for turn in (True, False):
                    if ranks.is_main is turn:
                        run_dir = RunDir.make(path)
                        say = typer.echo if ranks.is_main else _silent
                        ranges = state_ranges(settings)
                        recipe = Recipe(settings, run_dir, sizes, ranges, say, ranks)
                    barrier(ranks)
                assert recipe is not None
                if ranks.is_main:
                    # Once the run is known to be this recipe's: a re-run reads the settings it
                    # trained with.
                    (path / "config.toml").write_text(settings.to_toml(), encoding="utf-8")
                recipe.run(until)
        except KeyboardInterrupt:
            where = recipe.current if recipe is not None else "collect"
            print(
                f"stopped in {where}; its work is kept: the same command resumes it",
                file=sys.stderr,
            )
            raise
        finally:
            if run_dir is not None:
                run_dir.close_metrics()

    return train


def _silent(line: str) -> None:
    """What a rank other than 0 says: nothing, rank 0 speaks for all."""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

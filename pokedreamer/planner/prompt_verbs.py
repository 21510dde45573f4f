"""``pokedreamer prompts``: copy, render and list the planner's prompt templates."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from pokedreamer.planner.prompts import PromptLibrary, init_prompts_dir, sample_fields

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.env.state import GameState


class SettingsFor(Protocol):
    """How the main command resolves a verb's settings (its ``--config`` file and flags)."""

    def __call__(self, ctx: typer.Context, **flags: Any) -> Settings: ...


class SampleState(StrEnum):
    fixture_start = "fixture-start"


def _sample_state(which: SampleState) -> GameState:
    """A GameState to render prompts against, as the env reads it (fixture-start: the only
    sample so far, the fixture cartridge just after boot)."""
    from pokedreamer.config import EnvSettings
    from pokedreamer.env.gym_env import PokemonRedEnv

    # The fixture whatever env.rom says: a sample must not need a user's ROM nor its scripted intro.
    env = PokemonRedEnv(EnvSettings())
    try:
        _, info = env.reset(seed=0)
        return info["state"]
    finally:
        env.close()


def prompts_app(settings_for: SettingsFor) -> typer.Typer:
    """The ``prompts`` sub-command, its verbs reading their settings through ``settings_for``."""
    prompts = typer.Typer(
        help="Show or edit the planner's prompt templates.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )

    @prompts.command("init")
    def prompts_init(
        ctx: typer.Context,
        directory: Annotated[
            Path | None,
            typer.Argument(
                metavar="[DIR]",
                help="Folder to write them to (default: planner.prompts_dir, else ./prompts).",
            ),
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite templates that are there already.")
        ] = False,
    ) -> None:
        """Copy the built-in templates into a folder, to edit them there."""
        configured = settings_for(ctx).planner.prompts_dir
        target = directory or Path(configured or "prompts")
        for path in init_prompts_dir(target, force):
            typer.echo(f"wrote {path}")
        if configured and Path(configured).expanduser().resolve() == target.resolve():
            typer.echo("planner.prompts_dir points here already: an edit applies to the next plan")
            return
        # Absolute, so that the setting means the same folder wherever pokedreamer is started from.
        where = str(target.resolve())
        typer.echo(
            "to use them, set in config.toml\n"
            f"  [planner]\n  prompts_dir = {json.dumps(where, ensure_ascii=False)}\n"
            f"or in the environment POKEDREAMER_PLANNER__PROMPTS_DIR={where}"
        )

    @prompts.command("show")
    def prompts_show(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(metavar="NAME", help="Template: system, user, ...")],
        state: Annotated[
            SampleState, typer.Option(help="Sample GameState that fills the fields.")
        ] = SampleState.fixture_start,
    ) -> None:
        """Render a template as the planner would send it: a sample state and the Plan schema."""
        library = PromptLibrary(settings_for(ctx).planner.prompts_dir)
        library.template(name)  # an unknown name fails before the emulator boots
        typer.echo(library.render(name, **sample_fields(_sample_state(state))))

    @prompts.command("list")
    def prompts_list(ctx: typer.Context) -> None:
        """List the templates and the file each one is read from."""
        library = PromptLibrary(settings_for(ctx).planner.prompts_dir)
        for name in library.names():
            template = library.template(name)
            origin = "built-in" if template.builtin else "yours"
            typer.echo(f"{name:<12} {origin:<9} {template.source}")

    return prompts

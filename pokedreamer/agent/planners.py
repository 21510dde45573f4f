"""System 2 as the loop's envs consult it: the offline heuristic always, the LLM planner once a
run plans with it, the prompt library the LLM renders from, and the kind in use now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pokedreamer.config import PlannerKind, PlannerSettings
from pokedreamer.errors import UserError
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.service import PlannerService, PlanRecord

if TYPE_CHECKING:
    from pokedreamer.planner.llm import LLMPlanner


class Planners:
    def __init__(self, settings: PlannerSettings, game: str) -> None:
        self.settings = settings
        self.heuristic = HeuristicPlanner(game)
        self.facts = self.heuristic.facts
        self.kind: PlannerKind = settings.kind
        self.prompts: PromptLibrary | None = None
        """The LLM's templates, once there is an LLM planner or a watcher handed a folder."""
        self.llm: LLMPlanner | None = None

    def service(self, sink: Callable[[PlanRecord], None]) -> PlannerService | None:
        """A planner for one env's episode (None when the kind is "none"); its plans go to
        ``sink``."""
        if self.kind == "none":
            return None
        settings = self.settings.model_copy(update={"kind": self.kind})
        llm = self.llm if self.kind == "llm" else None
        return PlannerService(settings, self.facts, self.heuristic, self.prompts, llm, sink=sink)

    def switch(self, kind: PlannerKind) -> str | None:
        """Plans with ``kind`` from the next service on; a message when that cannot be (the
        kind in use then stays)."""
        try:
            if kind == "llm":
                self._ensure_llm()
        except UserError as exc:
            return f"planner stays {self.kind}: {exc}"
        self.kind = kind
        return None

    def use_prompts(self, folder: Path) -> str:
        """Renders from the templates in ``folder``; a message when that cannot be."""
        if self.prompts is not None:
            # The library reads its folder at every render: the next plan sees the change.
            self.prompts.prompts_dir = folder
            return ""
        try:
            self.prompts = PromptLibrary(folder)
        except UserError as exc:
            return f"prompts not used: {exc}"
        return ""

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()

    def _ensure_llm(self) -> None:
        if self.llm is not None:
            return
        # openai takes about a second to import: only a run that plans with the LLM pays it.
        from pokedreamer.planner.llm import LLMPlanner

        settings = self.settings
        if not settings.base_url and settings.api_key is None:
            raise UserError(
                "the LLM planner needs planner.base_url (a local server) or an API key "
                "(OPENAI_API_KEY); or use --planner heuristic"
            )
        if self.prompts is None:  # a watcher's prompt editor may have handed us its folder
            self.prompts = PromptLibrary(settings.prompts_dir)
        self.llm = LLMPlanner(settings, self.facts)

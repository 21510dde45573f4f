"""System 2 as the loop's envs consult it: the offline heuristic always; the LLM planner, its
prompt library and, for the local model, its server, while a run plans with them; the run's
token ledger; and the kind in use now."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedreamer.config import LLM_KINDS, LocalLLMSettings, PlannerKind, PlannerSettings
from pokedreamer.env.graph import MapGraph
from pokedreamer.errors import UserError
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.service import PlannerService, PlanRecord, TokenLedger

if TYPE_CHECKING:
    from pokedreamer.planner.llm import LLMPlanner


def check_planner(settings: PlannerSettings, local: LocalLLMSettings | None = None) -> None:
    """Refuses, in one line, an LLM planner that has nowhere to ask (no endpoint and no key),
    or a local one whose extra or model is missing, before a run makes any folder."""
    if settings.kind == "llm" and not settings.base_url and settings.api_key is None:
        raise UserError(
            "the LLM planner needs planner.base_url (a local server) or an API key "
            "(OPENAI_API_KEY); or use --planner heuristic"
        )
    if settings.kind == "local" and local is not None:
        # Only a run that plans with the local model reads its server's module.
        from pokedreamer.planner.local import local_model_available

        problem = local_model_available(local)
        if problem is not None:
            raise UserError(f"the local planner cannot start: {problem}")


class Planners:
    def __init__(
        self,
        settings: PlannerSettings,
        game: str,
        local: LocalLLMSettings | None = None,
        graph: MapGraph | None = None,
    ) -> None:
        """``local``: the ``[local_llm]`` settings the local model's server starts with;
        ``graph``: the run's map graph (empty by default), which the facts carry."""
        check_planner(settings, local)
        self.settings = settings
        self.local = local
        self.heuristic = HeuristicPlanner(game)
        self.graph = graph if graph is not None else MapGraph()
        """The maps the run's envs have seen, read from RAM; grown by the driver."""
        self.facts = self.heuristic.facts.with_graph(self.graph)
        self.kind: PlannerKind = settings.kind
        self.ledger = TokenLedger.of(settings)
        """The run's LLM calls and tokens, over every env and episode."""
        self.prompts: PromptLibrary | None = None
        """The LLM's templates, once there is an LLM planner or a watcher handed a folder."""
        self.llm: LLMPlanner | None = None
        self.llm_kind: PlannerKind | None = None
        """Which kind ``llm`` serves: "llm" (an endpoint) or "local" (``server``)."""
        self.server: Any = None
        """The local model's server (a ``LocalModelServer``), while the local kind plans."""

    def open(self) -> None:
        """Makes the LLM planner when the kind in use plans with one (starting the local
        model's server for "local"); at the start of each run of the loop. UserError when it
        cannot be."""
        if self.kind in LLM_KINDS:
            self._ensure_llm(self.kind)

    def service(self, sink: Callable[[PlanRecord], None]) -> PlannerService | None:
        """A planner for one env's episode (None when the kind is "none"); its plans go to
        ``sink``."""
        if self.kind == "none":
            return None
        llm = None
        if self.kind in LLM_KINDS:
            self._ensure_llm(self.kind)
            llm = self.llm
        settings = self.settings.model_copy(update={"kind": self.kind})
        return PlannerService(
            settings, self.facts, self.heuristic, self.prompts, llm, sink=sink, ledger=self.ledger
        )

    def switch(self, kind: PlannerKind) -> str | None:
        """Plans with ``kind`` from the next service on; a message when that cannot be (the
        kind in use then stays)."""
        try:
            if kind in LLM_KINDS:
                self._ensure_llm(kind)
        except UserError as exc:
            return f"planner stays {self.kind}: {exc}"
        if kind not in LLM_KINDS:
            self.close()  # a local model's server holds memory, and its call in flight a core
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
        """Closes the LLM's client and stops the local model's server (at the end of each run
        of the loop; the next run makes them again)."""
        llm, server = self.llm, self.server
        self.llm, self.llm_kind, self.server = None, None, None
        try:
            if llm is not None:
                llm.close()
        finally:
            if server is not None:
                server.close()

    def _ensure_llm(self, kind: PlannerKind) -> None:
        if self.llm is not None and self.llm_kind == kind:
            return
        # openai takes about a second to import: only a run that plans with the LLM pays it.
        from pokedreamer.planner.llm import LLMPlanner

        settings = self.settings.model_copy(update={"kind": kind})
        check_planner(settings, self.local)
        if self.prompts is None:  # a watcher's prompt editor may have handed us its folder
            self.prompts = PromptLibrary(settings.prompts_dir)
        server = None
        response_schema = None
        if kind == "local":
            # The server module is read only by a run that plans with the local model.
            from pokedreamer.planner.local import LocalModelServer, plan_grammar_schema

            server = LocalModelServer.start(self.local)
            response_schema = plan_grammar_schema()
            # Its own server on 127.0.0.1 needs no key: an OpenAI key stays where it is.
            settings = settings.model_copy(
                update={"base_url": server.base_url, "model": server.model, "api_key": None}
            )
        try:
            # llama.cpp's server takes a schema in JSON mode, not structured outputs: asking in
            # that mode first saves the refused request every run would otherwise begin with.
            llm = LLMPlanner(
                settings,
                self.facts,
                mode="schema" if kind == "local" else "structured",
                response_schema=response_schema,
            )
        except BaseException:
            if server is not None:
                server.close()
            raise
        self.close()  # the other kind's client and server, when switching between the two
        self.llm, self.llm_kind, self.server = llm, kind, server

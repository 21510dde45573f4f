"""The prompt editor's planner score (ctrl+t), driven with Textual's Pilot: ``pokedreamer eval
planner`` in a child process on the edited prompts and on the saved ones, the quick subset then
all, against the heuristic planner and against an LLM on a real HTTP server."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clirun import REPO_ROOT
from llm_server import FakeLLMServer, Reply, Request, answer, closed_port_url, slow
from llm_server import llm_server_fixture as llm_server_fixture  # noqa: F401
from textual.app import App
from textual.pilot import Pilot

from pokedreamer.config import Settings
from pokedreamer.dashboard.screens.editor import PromptEditor
from pokedreamer.dashboard.widgets.planner_score import PlannerScore, Score
from pokedreamer.planner.prompts import PromptLibrary, init_prompts_dir
from pokedreamer.planner.scenario import load_scenarios, select

SCENARIOS = load_scenarios()
QUICK = select(SCENARIOS, "quick")
MARKER = "BE BRAVE"
WIN_BATTLE = {"goal": "Win", "subgoals": [{"kind": "win_battle"}], "rationale": ""}
NO_SUCH_MAP = {"goal": "Fly", "subgoals": [{"kind": "go_to_map", "map": "MOON"}], "rationale": ""}


def _accepts_win_battle(scenarios: list[Any]) -> int:
    return sum(any(a.kind == "win_battle" for a in s.accept) for s in scenarios)


@pytest.fixture(autouse=True)
def child_finds_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    # The editor runs `python -m pokedreamer`; as tests/clirun.py does, make it this checkout.
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )


class EditorApp(App[None]):
    def __init__(self, editor: PromptEditor) -> None:
        super().__init__()
        self.editor = editor

    def on_mount(self) -> None:
        self.push_screen(self.editor)


def editor_for(tmp_path: Path, planner: str, settings: Settings | None = None) -> PromptEditor:
    folder = tmp_path / "prompts"
    init_prompts_dir(folder)
    state = SCENARIOS[0].state
    return PromptEditor(PromptLibrary(folder), folder, state, "", planner, settings)


def llm_settings(url: str) -> Settings:
    return Settings(planner={"kind": "llm", "base_url": url, "model": "m", "timeout_s": 60})


async def until(pilot: Pilot[Any], condition: Callable[[], Any], timeout: float = 120.0) -> None:
    """Waits for ``condition``; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the editor")
        await pilot.pause(0.05)


def scored(editor: PromptEditor) -> dict[tuple[str, str], Score]:
    return editor.query_one(PlannerScore).scores


def status(editor: PromptEditor) -> str:
    return str(editor.query_one("#status").render())


def test_edited_prompts_are_scored_beside_the_saved_ones_which_are_cached(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    # An LLM that plans well only when the user prompt carries the edit; otherwise its plans
    # name a map the game lacks, and are rejected.
    def reply(request: Request) -> Reply:
        user = next(m["content"] for m in request.body["messages"] if m["role"] == "user")
        return answer(WIN_BATTLE) if MARKER in user else answer(NO_SUCH_MAP)

    llm_server.default = reply
    editor = editor_for(tmp_path, "llm", llm_settings(llm_server.url))

    async def scenario() -> None:
        app = EditorApp(editor)
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: editor.name_open == "user")
            editor.area.load_text(MARKER + "\n" + editor.area.text)  # an unsaved edit
            await pilot.press("ctrl+t")
            await until(pilot, lambda: editor.scoring is None and len(scored(editor)) == 4)
            scores = scored(editor)
            n, q = len(SCENARIOS), len(QUICK)
            assert scores["edited", "quick"].scenarios == q
            assert scores["edited", "quick"].valid_first == q
            assert scores["edited", "quick"].acceptable == _accepts_win_battle(QUICK)
            assert scores["edited", "all"].valid == n
            assert scores["edited", "all"].acceptable == _accepts_win_battle(SCENARIOS)
            assert scores["saved", "quick"].valid == 0 and scores["saved", "all"].valid == 0
            assert scores["saved", "all"].acceptable == 0
            assert "✓ scored" in status(editor)
            board = str(editor.query_one(PlannerScore).render())
            assert "planner score (llm)" in board and "edited" in board and "saved" in board
            assert f"acceptable {_accepts_win_battle(SCENARIOS)}/{n}" in board
            assert not (tmp_path / "prompts" / "user.txt").read_text().startswith(MARKER)

            # Again: the saved templates' score is kept, only the edited ones are asked.
            asked = len(llm_server.requests)
            plain = sum(MARKER not in str(r.body) for r in llm_server.requests)
            await pilot.press("ctrl+t")
            await until(pilot, lambda: editor.scoring is None and len(scored(editor)) == 4)
            assert sum(MARKER not in str(r.body) for r in llm_server.requests) == plain
            assert len(llm_server.requests) == asked + q + n

            # A save changes the saved templates: their score is computed again next time.
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "saved" in status(editor))
            assert editor.saved_scores == {} and ("saved", "all") not in scored(editor)

    asyncio.run(scenario())


def test_scoring_is_cancelled_and_its_child_process_ends(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    llm_server.default = slow(answer(WIN_BATTLE), 60.0)
    editor = editor_for(tmp_path, "llm", llm_settings(llm_server.url))

    async def scenario() -> None:
        app = EditorApp(editor)
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: editor.name_open == "user")
            await pilot.press("ctrl+t")
            await until(pilot, lambda: llm_server.requests)  # the child is asking
            scoring = editor.scoring
            assert scoring is not None and scoring.process is not None
            await pilot.press("ctrl+t")
            await until(pilot, lambda: editor.scoring is None)
            assert scoring.process.poll() is not None  # ended, not left running
            assert status(editor) == "scoring cancelled" and scored(editor) == {}
            assert len(llm_server.requests) == 1  # nothing started after the cancel

    asyncio.run(scenario())


def test_the_heuristic_planner_scores_and_a_broken_edit_is_not_scored(tmp_path: Path) -> None:
    editor = editor_for(tmp_path, "heuristic")

    async def scenario() -> None:
        app = EditorApp(editor)
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: editor.name_open == "user")
            good = editor.area.text
            editor.area.load_text(good + "{{nope}}")
            await pilot.press("ctrl+t")
            assert editor.scoring is None and "not scored" in status(editor)
            assert "unknown field {{nope}}" in status(editor)

            editor.area.load_text(good)
            await pilot.press("ctrl+t")
            await until(pilot, lambda: editor.scoring is None and len(scored(editor)) == 4)
            for (_, subset), score in scored(editor).items():
                n = len(QUICK) if subset == "quick" else len(SCENARIOS)
                assert score.scenarios == score.acceptable == n
            board = str(editor.query_one(PlannerScore).render())
            assert "planner score (heuristic, which reads no prompts)" in board

    asyncio.run(scenario())


def test_a_planner_that_cannot_be_reached_says_so_in_one_line(tmp_path: Path) -> None:
    editor = editor_for(tmp_path, "llm", llm_settings(closed_port_url()))

    async def scenario() -> None:
        app = EditorApp(editor)
        async with app.run_test(size=(200, 60)) as pilot:
            await until(pilot, lambda: editor.name_open == "user")
            await pilot.press("ctrl+t")
            await until(pilot, lambda: editor.scoring is None and "failed" in status(editor))
            assert status(editor).startswith("✗ scoring failed: cannot reach the planner")
            assert scored(editor) == {}

    asyncio.run(scenario())

"""Fixtures shared by every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dashboard_recording import published_steps, record_run
from local_llm import skip_without_local_model

from pokedreamer.agent.events import StepEvent
from pokedreamer.rundir import RunDir


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment and an empty working directory, whatever the developer's shell holds."""
    for name in list(os.environ):
        if name.upper().startswith("POKEDREAMER_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# A recorded run of the fixture cartridge and the StepEvents it publishes, once per test module
# (the dashboard's widget, replay and live-screen tests read them).
@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return record_run(tmp_path_factory.mktemp("runs") / "demo")


@pytest.fixture(scope="module")
def step_events(recorded_run: RunDir) -> list[StepEvent]:
    return published_steps(recorded_run)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests marked local_llm need the local-llm extra and its model: skipped, with the reason,
    # when they are not installed, whether or not they take the local_server fixture.
    skip_without_local_model(items)

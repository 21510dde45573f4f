"""``pokedreamer eval planner``: the stored scenarios, the subgoal predicates, the scores, and the
command as a user runs it, for the heuristic planner and for an LLM against a real HTTP server."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from clirun import cli
from llm_server import FakeLLMServer, Request, answer, closed_port_url, completion
from llm_server import llm_server_fixture as llm_server_fixture  # noqa: F401
from record_scenarios import record

from pokedreamer.config import Settings
from pokedreamer.errors import UserError
from pokedreamer.planner.answers import public_url
from pokedreamer.planner.evaluate import evaluate_planner, wilson_interval
from pokedreamer.planner.local import plan_grammar_schema
from pokedreamer.planner.prompts import init_prompts_dir
from pokedreamer.planner.scenario import (
    Acceptable,
    ScenarioError,
    load_scenarios,
    select,
    state_from_spec,
    state_to_spec,
)
from pokedreamer.planner.subgoals import (
    EarnBadge,
    GoToMap,
    GoToTile,
    HealParty,
    Plan,
    ReadText,
    SetEvent,
    WinBattle,
)

SCENARIOS = load_scenarios()
BY_ID = {s.id: s for s in SCENARIOS}
# The scenarios that accept "win the battle" first: an LLM that always answers it scores these.
WIN_BATTLE_OK = {s.id for s in SCENARIOS if any(a.kind == "win_battle" for a in s.accept)}
WIN_BATTLE_PLAN = {"goal": "Win", "subgoals": [{"kind": "win_battle"}], "rationale": ""}


def plan(*subgoals: Any) -> Plan:
    return Plan(goal="g", subgoals=list(subgoals))


# --- the predicates ------------------------------------------------------------------------------


def test_a_predicate_accepts_its_kind_and_the_values_listed() -> None:
    to_map = Acceptable(kind="go_to_map", map=("PALLET_TOWN", "ROUTE_1"))
    assert to_map.matches(GoToMap(map="route 1"))  # the subgoal's own spelling rules apply
    assert not to_map.matches(GoToMap(map="PEWTER_GYM"))
    assert not to_map.matches(GoToTile(map="ROUTE_1", x=1, y=1))  # another kind
    assert Acceptable(kind="go_to_map").matches(GoToMap(map="PEWTER_GYM"))  # no list: any map

    box = Acceptable(kind="go_to_tile", map=("OAKS_LAB",), x=(6, 8), y=(4, 4))
    assert box.matches(GoToTile(map="OAKS_LAB", x=7, y=4))
    assert box.matches(GoToTile(map="OAKS_LAB", x=6, y=4)) and box.matches(
        GoToTile(map="OAKS_LAB", x=8, y=4)
    )
    assert not box.matches(GoToTile(map="OAKS_LAB", x=7, y=3))
    assert not box.matches(GoToTile(map="PALLET_TOWN", x=7, y=4))
    assert Acceptable(kind="go_to_tile", y=(3, 5)).matches(GoToTile(map="ROUTE_1", x=9, y=5))

    words = Acceptable(kind="read_text", contains=("SQUIRTLE", "Oak"))
    assert words.matches(ReadText(contains="take squirtle"))  # case-insensitive, inside
    assert words.matches(ReadText(contains="OAK"))
    assert not words.matches(ReadText(contains="MOM"))
    assert not words.matches(ReadText())  # "any text box" is not accepted unless "" is listed
    assert Acceptable(kind="read_text", contains=("OAK", "")).matches(ReadText())
    assert Acceptable(kind="read_text").matches(ReadText(contains="anything"))

    assert Acceptable(kind="win_battle").matches(WinBattle())
    assert Acceptable(kind="heal_party").matches(HealParty())
    assert not Acceptable(kind="heal_party").matches(WinBattle())
    badge = Acceptable(kind="earn_badge", badge=("BOULDER",))
    assert badge.matches(EarnBadge(badge="BOULDER"))
    assert not badge.matches(EarnBadge(badge="CASCADE"))
    event = Acceptable(kind="set_event", event=("EVENT_GOT_STARTER",))
    assert event.matches(SetEvent(event="EVENT_GOT_STARTER"))
    assert not event.matches(SetEvent(event="EVENT_BEAT_BROCK"))


def test_a_predicate_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="no subgoal kind 'talk'"):
        Acceptable(kind="talk")


def test_a_plan_is_judged_by_the_subgoal_the_agent_would_pursue_first() -> None:
    start = BY_ID["fixture-start"]  # in REDS_HOUSE_1F
    # Already in the house: the plan starts at its next subgoal, as the planner service does.
    walk = plan(GoToMap(map="REDS_HOUSE_1F"), GoToMap(map="PALLET_TOWN"), WinBattle())
    assert start.pursued(walk) == GoToMap(map="PALLET_TOWN") and start.accepts(walk)
    # The last subgoal stays even when it is done.
    assert start.pursued(plan(GoToMap(map="REDS_HOUSE_1F"))) == GoToMap(map="REDS_HOUSE_1F")
    assert not start.accepts(plan(GoToMap(map="REDS_HOUSE_1F")))
    assert not start.accepts(plan(WinBattle(), GoToMap(map="PALLET_TOWN")))


# --- the scenarios -------------------------------------------------------------------------------


def test_the_stored_scenarios_cover_both_games_with_a_quick_subset() -> None:
    games = {s.game for s in SCENARIOS}
    assert len(SCENARIOS) >= 16 and games == {"fixture", "red"}
    quick = select(SCENARIOS, "quick")
    assert 3 <= len(quick) < len(SCENARIOS) and {s.game for s in quick} == games
    red = [s for s in SCENARIOS if s.game == "red"]
    assert {s.state.map_name for s in red} >= {
        "REDS_HOUSE_2F", "OAKS_LAB", "VIRIDIAN_MART", "VIRIDIAN_FOREST", "PEWTER_GYM",
    }  # fmt: skip
    assert any(s.state.battle == "trainer" for s in red)


def test_a_state_round_trips_through_its_file_form() -> None:
    for scenario in SCENARIOS:
        spec = state_to_spec(scenario.state)
        assert state_from_spec(json.loads(json.dumps(spec))) == scenario.state
    assert "EVENT_GOT_STARTER" in state_to_spec(BY_ID["red-rival-battle"].state)["events"]
    assert BY_ID["red-rival-battle"].state.has_event("EVENT_GOT_STARTER")


def test_the_fixture_scenarios_are_moments_the_cartridge_reaches() -> None:
    # tests/record_scenarios.py made them by playing the quest; playing it again reaches each
    # moment in the same place and stage (positions may drift if the demonstrator changes).
    played = record()
    for scenario in SCENARIOS:
        if scenario.game != "fixture":
            continue
        stored, now = scenario.state, played[scenario.id]
        assert (now.map_name, now.battle, now.badges, now.text_shown) == (
            stored.map_name, stored.battle, stored.badges, stored.text_shown,
        ), scenario.id  # fmt: skip
        assert [m.level for m in now.party] == [m.level for m in stored.party], scenario.id


def _write(folder: Path, scenarios: list[dict[str, Any]], game: str = "fixture") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{game}.json").write_text(
        json.dumps({"game": game, "scenarios": scenarios}), encoding="utf-8"
    )
    return folder


def _entry(**changes: Any) -> dict[str, Any]:
    state = state_to_spec(BY_ID["fixture-start"].state)
    entry = {
        "id": "mine",
        "about": "a test",
        "state": state,
        "accept": [{"kind": "go_to_map", "map": ["PALLET_TOWN"]}],
    }
    entry.update(changes)
    return entry


def test_a_scenario_file_with_a_mistake_is_one_line_naming_it(tmp_path: Path) -> None:
    assert [s.id for s in load_scenarios(_write(tmp_path / "ok", [_entry()]))] == ["mine"]
    cases = {
        "no map 'VIRIDIAN_CITY' in fixture": _entry(
            accept=[{"kind": "go_to_map", "map": ["VIRIDIAN_CITY"]}]
        ),
        "'contains' does not apply to go_to_map": _entry(
            accept=[{"kind": "go_to_map", "contains": ["x"]}]
        ),
        "no event flag named EVENT_NOPE": _entry(
            state={**_entry()["state"], "events": ["EVENT_NOPE"]}
        ),
        "is not map $25": _entry(state={**_entry()["state"], "map_name": "PALLET_TOWN"}),
        "mine: accept: Tuple should have at least 1 item": _entry(accept=[]),
    }
    for number, (message, entry) in enumerate(cases.items()):
        folder = _write(tmp_path / str(number), [entry])
        with pytest.raises(ScenarioError, match=re.escape(message)) as caught:
            load_scenarios(folder)
        assert "fixture.json" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ScenarioError, match="two scenarios are named mine"):
        load_scenarios(_write(tmp_path / "twice", [_entry(), _entry()]))


def test_scenarios_are_chosen_by_name_pattern() -> None:
    assert select(SCENARIOS, "all") == SCENARIOS
    assert [s.id for s in select(SCENARIOS, "red-bedroom, fixture-start")] == [
        "fixture-start",
        "red-bedroom",
    ]
    assert all(s.game == "red" for s in select(SCENARIOS, "red-*"))
    with pytest.raises(UserError, match="no scenario matches 'nothing'"):
        select(SCENARIOS, "nothing")


# --- the scores ----------------------------------------------------------------------------------


def test_the_wilson_interval() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


def test_the_heuristic_planner_through_the_cli_answers_every_scenario_acceptably() -> None:
    result = cli("eval", "planner", "--planner", "heuristic", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["planner"] == "heuristic" and report["prompts"] is None
    assert report["scenarios"] == len(SCENARIOS) == len(report["results"])
    # Both the scenarios and the heuristic's knowledge are the game's story: a scenario it fails
    # is a wrong scenario or a broken knowledge file.
    failed = [r["id"] for r in report["results"] if not r["acceptable"]]
    assert failed == [] and report["accept_rate"] == 1.0
    assert report["valid_first"] == report["valid"] == len(SCENARIOS)
    assert report["tokens"] == {"prompt": 0, "completion": 0}
    assert report["accept_ci95"][0] > 0.8 and report["accept_ci95"][1] == 1.0


def test_the_cli_prints_a_table_and_writes_the_report_files(tmp_path: Path) -> None:
    result = cli("eval", "planner", "--scenarios", "quick", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    quick = select(SCENARIOS, "quick")
    assert "| scenario | valid first |" in result.stdout
    assert all(f"| {s.id} |" in result.stdout for s in quick)
    assert f"acceptable first subgoal: {len(quick)}/{len(quick)}" in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["scenarios"] == len(quick) and report["selection"] == "quick"
    assert (tmp_path / "r" / "report.md").read_text(encoding="utf-8").startswith("# Planner")
    progress = cli("eval", "planner", "--scenarios", "red-bedroom", "--progress")
    assert "[1/1] red-bedroom: acceptable" in progress.stderr


def _llm_env(server: FakeLLMServer) -> tuple[str, ...]:
    return ("--config", str(_config(server.url)))


def _config(url: str) -> Path:
    path = Path("llm.toml")
    path.write_text(
        f'[planner]\nbase_url = "{url}"\nmodel = "bench-model"\ntimeout_s = 10\n', encoding="utf-8"
    )
    return path


def test_an_llm_through_the_cli_is_scored_on_its_plans_with_the_prompts_given(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    init_prompts_dir(prompts)
    user = prompts / "user.txt"
    user.write_text("MARKER-7\n" + user.read_text(encoding="utf-8"), encoding="utf-8")
    llm_server.default = answer(WIN_BATTLE_PLAN, prompt_tokens=300, completion_tokens=30)
    result = cli(*_llm_env(llm_server), "eval", "planner", "--planner", "llm", "--json",
                 "--prompts", str(prompts))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    n = len(SCENARIOS)
    assert (report["planner"], report["model"]) == ("llm", "bench-model")
    assert report["endpoint"] == llm_server.url and report["prompts"] == str(prompts.resolve())
    assert report["valid_first"] == report["valid"] == n
    assert {r["id"] for r in report["results"] if r["acceptable"]} == WIN_BATTLE_OK
    assert report["acceptable"] == len(WIN_BATTLE_OK)
    assert report["tokens_per_plan"] == {"prompt": 300.0, "completion": 30.0}
    # Every scenario was asked once, with the folder's templates and its own state.
    assert len(llm_server.requests) == n
    users = [_message(r, "user") for r in llm_server.requests]
    assert all(text.startswith("MARKER-7") for text in users)
    assert sum("OAKS_LAB" in text for text in users) == sum(
        s.state.map_name == "OAKS_LAB" for s in SCENARIOS
    )


def _message(request: Request, role: str) -> str:
    return next(m["content"] for m in request.body["messages"] if m["role"] == role)


def test_garbage_answers_count_as_invalid_plans(llm_server: FakeLLMServer) -> None:
    # The first answer is prose; the repair turn brings a valid plan in the first scenario only.
    llm_server.script(completion("Go north, young one!"), answer(WIN_BATTLE_PLAN))
    llm_server.default = completion("Go north, young one!")
    result = cli(*_llm_env(llm_server), "eval", "planner", "--planner", "llm", "--json",
                 "--scenarios", "quick")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    n = len(select(SCENARIOS, "quick"))
    assert report["scenarios"] == n and report["valid_first"] == 0
    assert report["valid"] == 1 and report["errors"] == n - 1
    first, *rest = report["results"]
    assert first["valid"] and not first["valid_first"]
    assert all(not r["valid"] and not r["acceptable"] for r in rest)
    assert all("invalid plan after a repair turn" in r["error"] for r in rest)
    assert rest[0]["raw_response"] == "Go north, young one!"


def test_a_plan_the_game_lacks_is_rejected(llm_server: FakeLLMServer) -> None:
    llm_server.default = answer({"goal": "g", "subgoals": [{"kind": "go_to_map", "map": "MOON"}]})
    result = cli(*_llm_env(llm_server), "eval", "planner", "--planner", "llm", "--json",
                 "--scenarios", "red-bedroom")  # fmt: skip
    report = json.loads(result.stdout)
    assert report["valid"] == 0 and "plan rejected" in report["results"][0]["error"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--planner", "llm"), "needs planner.base_url"),
        (("--planner", "heuristic", "--prompts", "missing"), "prompts folder not found: missing"),
        (("--scenarios", "nothing"), "no scenario matches 'nothing'"),
        (("--planner", "none"), "cannot score planner 'none': choose --planner heuristic"),
        (("--prompts", "broken"), "user.txt:1: unknown field {{nope}}"),
    ],
)
def test_bad_input_is_one_line(args: tuple[str, ...], says: str) -> None:
    Path("broken").mkdir()
    Path("broken", "user.txt").write_text("{{nope}}", encoding="utf-8")
    result = cli("eval", "planner", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and says in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_report_names_the_endpoint_without_credentials() -> None:
    assert public_url("") == "https://api.openai.com/v1"
    assert public_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    assert public_url("http://me:sk-secret@host.example:8080/v1") == "http://host.example:8080/v1"


def test_an_llm_that_is_down_is_one_line() -> None:
    result = cli("--config", str(_config(closed_port_url())), "eval", "planner", "--planner", "llm")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: cannot reach the planner endpoint http://127.0.0.1:")
    assert result.stderr.count("\n") == 1


def test_the_local_model_missing_is_one_line() -> None:
    try:
        from pokedreamer.planner.local import local_model_available
    except ImportError:
        pass
    else:
        if local_model_available(Settings().local_llm) is None:
            pytest.skip("the local model is installed: this test is about its absence")
    result = cli("eval", "planner", "--planner", "local")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


class _FakeLocalServer:
    started: list[Any] = []
    closed = 0

    def __init__(self, url: str) -> None:
        self.base_url, self.model = url, "tiny-local"

    @classmethod
    def start(cls, section: Any) -> _FakeLocalServer:
        cls.started.append(section)
        return cls(_FakeLocalServer.url)

    def close(self) -> None:
        type(self).closed += 1

    url = ""


def _fake_local(monkeypatch: pytest.MonkeyPatch, url: str, missing: str | None) -> None:
    module = types.ModuleType("pokedreamer.planner.local")
    _FakeLocalServer.url, _FakeLocalServer.started, _FakeLocalServer.closed = url, [], 0
    module.LocalModelServer = _FakeLocalServer  # type: ignore[attr-defined]
    module.local_model_available = lambda settings: missing  # type: ignore[attr-defined]
    module.plan_grammar_schema = plan_grammar_schema  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pokedreamer.planner.local", module)


def test_the_local_model_is_started_scored_and_stopped(
    llm_server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm_server.default = answer(WIN_BATTLE_PLAN)
    _fake_local(monkeypatch, llm_server.url, missing=None)
    settings = types.SimpleNamespace(planner=Settings().planner, local_llm="the local section")
    report = evaluate_planner(settings, "local", which="quick")  # type: ignore[arg-type]
    assert (report["planner"], report["model"], report["endpoint"]) == (
        "local", "tiny-local", llm_server.url,
    )  # fmt: skip
    assert report["valid"] == report["scenarios"] == len(llm_server.requests)
    assert {r.body["response_format"]["type"] for r in llm_server.requests} == {"json_object"}
    assert _FakeLocalServer.started == ["the local section"] and _FakeLocalServer.closed == 1

    _fake_local(monkeypatch, llm_server.url, missing="install the local-llm extra: make local-llm")
    with pytest.raises(UserError, match="install the local-llm extra: make local-llm"):
        evaluate_planner(settings, "local", which="quick")  # type: ignore[arg-type]
    assert _FakeLocalServer.started == []

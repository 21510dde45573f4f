"""The planner bench at tiny sizes, and the fake server's replayed latencies it relies on."""

from __future__ import annotations

import threading
from pathlib import Path

import openai
import pytest
from llm_server import (
    FakeLLMServer,
    Request,
    answer,
    llm_server_fixture,  # noqa: F401 (the llm_server fixture: pytest finds it in this module)
    replaying,
)

from pokedreamer.bench.planner import bench_planner, parse_latencies
from pokedreamer.config import LocalLLMSettings, Settings
from pokedreamer.errors import UserError

KEYS = [
    "machine", "steps_per_round", "rounds", "llm_server", "llm_latency_s", "no_planner_steps_per_s",
    "llm_planner_steps_per_s", "with_over_without", "llm_plans_adopted", "mean_llm_latency_s",
    "llm_latencies_s", "heuristic_planner_steps_per_s", "llm_over_heuristic", "llm_requests",
]  # fmt: skip


def test_bench_planner_compares_the_llm_with_the_heuristic_planner() -> None:
    # A replayed latency far past the round: the round must still end at once (the server lets
    # the call in flight go), and the LLM was asked at the start whatever happened after.
    report = bench_planner(Settings(), steps=100, rounds=2, latency_s=[60.0, 50.0])
    assert list(report) == KEYS
    assert (report["steps_per_round"], report["rounds"]) == (100, 2)
    assert report["llm_latencies_s"] == [60.0, 50.0] and report["llm_latency_s"] == 55.0
    assert report["llm_requests"] >= 2  # one round, one request at least
    assert report["llm_plans_adopted"] == 0 and report["mean_llm_latency_s"] is None
    for key in ("no_planner", "heuristic_planner", "llm_planner"):
        assert report[f"{key}_steps_per_s"] > 0
    assert report["llm_over_heuristic"] > 0 and report["with_over_without"] > 0


def test_bench_planner_takes_one_latency() -> None:
    report = bench_planner(Settings(), steps=100, rounds=1, latency_s=0.0)
    assert report["llm_latencies_s"] == [0.0] and report["llm_latency_s"] == 0.0
    assert report["llm_requests"] >= 1


def test_bench_planner_refuses_a_missing_local_model_in_one_line(tmp_path: Path) -> None:
    local = LocalLLMSettings(python=str(tmp_path / "no-python"))
    with pytest.raises(UserError) as caught:
        bench_planner(Settings(), steps=100, rounds=1, local=local)
    assert "\n" not in str(caught.value) and "no-python" in str(caught.value)


@pytest.mark.local_llm
def test_bench_planner_plans_with_the_real_local_model() -> None:
    report = bench_planner(Settings(), steps=200, rounds=1, local=LocalLLMSettings())
    assert report["llm_server"].startswith("local model ") and report["llm_latency_s"] is None
    # The call in flight at the end of the round was waited out: it was answered (adopted or
    # rejected), and the loop stepped meanwhile.
    assert report["llm_requests"] >= 1 and report["llm_planner_steps_per_s"] > 0


def test_latencies_are_replayed_in_turn() -> None:
    step = replaying(answer({}), [40.0, 38.5, 45.0])
    request = Request(time=0.0, method="POST", path="/v1/chat/completions", headers={}, body={})
    delays = [step(request).delay_s for _ in range(5)]
    assert delays == [40.0, 38.5, 45.0, 40.0, 38.5]
    with pytest.raises(ValueError):
        replaying(answer({}), [])


def test_release_sends_a_slow_reply_at_once(llm_server: FakeLLMServer) -> None:
    llm_server.default = replaying(answer({"ok": 1}), [600.0])
    client = openai.OpenAI(base_url=llm_server.url, api_key="x", max_retries=0, timeout=900)
    result: list[str | None] = []

    def ask() -> None:
        reply = client.chat.completions.create(model="m", messages=[])
        result.append(reply.choices[0].message.content)

    asking = threading.Thread(target=ask)
    asking.start()
    while not llm_server.requests and asking.is_alive():
        asking.join(0.01)
    llm_server.release()
    asking.join(30)  # a guard against a hang; the answer comes at once
    assert result == ['{"ok": 1}']
    client.close()


@pytest.mark.parametrize(
    ("text", "seconds"), [("40", [40.0]), ("38.5, 41,44", [38.5, 41.0, 44.0]), ("0", [0.0])]
)
def test_latency_flag_values(text: str, seconds: list[float]) -> None:
    assert parse_latencies(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "-1", "40,nan", "inf"])
def test_bad_latency_flag_values_are_one_line(text: str) -> None:
    with pytest.raises(UserError, match="--latency-s") as caught:
        parse_latencies(text)
    assert "\n" not in str(caught.value)

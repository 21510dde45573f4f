"""Records the game states of the fixture's planner scenarios by playing the cartridge's quest.

PYTHONPATH=. .venv/bin/python tests/record_scenarios.py rewrites the ``state`` of every scenario in
``pokedreamer/planner/scenarios/fixture.json``; the descriptions and the accepted subgoals stay as
the file has them. The scripted demonstrator plays the quest with the heuristic planner on the map
graph it reads as it goes (episode seed 3, one on which it blacks out once), and each scenario's
state is the first one that shows its moment (``MOMENTS``). After the party is first hurt on the
route, the player is kept looking for battles until it blacks out, which no plan asks for. One
moment needs a detour the quest never takes (the town's north exit before the GUIDE), so it is
played apart, walking straight for ROUTE_1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from pokedreamer.agent.demonstrator import Demonstrator
from pokedreamer.config import EnvSettings, PlannerSettings
from pokedreamer.env.graph import MapGraph
from pokedreamer.env.gym_env import PokemonRedEnv
from pokedreamer.env.state import GameState
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.scenario import state_to_spec
from pokedreamer.planner.service import PlannerService
from pokedreamer.planner.subgoals import GoToMap, WinBattle

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_FILE = REPO_ROOT / "pokedreamer" / "planner" / "scenarios" / "fixture.json"
MAX_STEPS = 1500
SEED = 3


def _says(state: GameState, words: str) -> bool:
    return any(words in line for line in state.text)


def _level(state: GameState) -> int:
    return state.party[0].level if state.party else 0


MOMENTS: dict[str, Callable[[GameState], bool]] = {
    "fixture-start": lambda s: True,
    "fixture-guide-gives-starter": lambda s: _says(s, "GUIDE") and bool(s.party),
    "fixture-route-1-grass": lambda s: (
        s.map_name == "ROUTE_1" and s.battle == "none" and _level(s) == 5 and s.hp_fraction == 1
    ),
    "fixture-wild-battle": lambda s: s.battle == "wild" and _says(s, "appeared"),
    "fixture-hurt-after-battle": lambda s: (
        s.map_name == "ROUTE_1" and s.battle == "none" and not s.text_shown
        and bool(s.party) and s.hp_fraction < 0.5
    ),
    "fixture-blacked-out": lambda s: s.battle == "lost" and _says(s, "out of"),
    "fixture-home-healed": lambda s: (
        s.map_name == "REDS_HOUSE_1F" and _level(s) >= 6 and s.hp_fraction == 1
    ),
    "fixture-gym-leader-talk": lambda s: _says(s, "LEADER") and s.battle == "none",
    "fixture-badge-won": lambda s: s.badges > 0 and s.battle == "none",
}  # fmt: skip
BLOCKED_EXIT = "fixture-north-exit-blocked"


def _seen(graph: MapGraph, info: dict[str, object]) -> GameState:
    """The step's state, after the map the env read on entering it (if any) joins the graph,
    as the loop's driver does."""
    if "map" in info:
        graph.add(info["map"])  # type: ignore[arg-type]
    return info["state"]  # type: ignore[return-value]


def _blocked_exit(env: PokemonRedEnv, facts: GameFacts) -> GameState:
    """Walks for ROUTE_1 with no POKéMON until the town says no."""
    graph = MapGraph()
    player = Demonstrator(facts.with_graph(graph), env.buttons, seed=SEED)
    _, info = env.reset(seed=SEED)
    state = _seen(graph, info)
    for _ in range(MAX_STEPS):
        if state.map_name == "PALLET_TOWN" and state.text_shown and not state.party:
            return state
        button = player.act(state, GoToMap(map="ROUTE_1"))
        _, _, _, _, info = env.step(button)
        state = _seen(graph, info)
    raise RuntimeError(f"{BLOCKED_EXIT}: the north exit never refused RED")


def record() -> dict[str, GameState]:
    """Each scenario's state, by id, as the cartridge shows it."""
    env = PokemonRedEnv(EnvSettings())
    try:
        heuristic = HeuristicPlanner("fixture")
        graph = MapGraph()
        facts = heuristic.facts.with_graph(graph)
        service = PlannerService(PlannerSettings(), facts, heuristic)
        player = Demonstrator(facts, env.buttons, seed=SEED)
        _, info = env.reset(seed=SEED)
        state = _seen(graph, info)
        found: dict[str, GameState] = {}
        for step in range(MAX_STEPS):
            for name, moment in MOMENTS.items():
                if name not in found and moment(state):
                    found[name] = state
            if len(found) == len(MOMENTS):
                break
            service.observe(step, state)
            subgoal = service.subgoal
            if "fixture-hurt-after-battle" in found and "fixture-blacked-out" not in found:
                # No plan fights on while hurt (the end of each battle asks for a new one, and
                # the hurt party goes home): the player is sent into the grass to black out.
                subgoal = WinBattle()
            button = player.act(state, subgoal)
            _, _, _, _, info = env.step(button)
            state = _seen(graph, info)
        missing = [name for name in MOMENTS if name not in found]
        if missing:
            raise RuntimeError(f"not reached in {MAX_STEPS} steps: {', '.join(missing)}")
        found[BLOCKED_EXIT] = _blocked_exit(env, heuristic.facts)
        return found
    finally:
        env.close()


def main() -> None:
    data = json.loads(FIXTURE_FILE.read_text(encoding="utf-8"))
    states = record()
    for scenario in data["scenarios"]:
        if scenario["id"] not in states:
            sys.exit(f"{FIXTURE_FILE}: no moment for scenario {scenario['id']} in MOMENTS")
        scenario["state"] = state_to_spec(states[scenario["id"]])
    FIXTURE_FILE.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(data['scenarios'])} states to {FIXTURE_FILE}")


if __name__ == "__main__":
    main()

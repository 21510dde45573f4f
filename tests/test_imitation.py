"""The scripted demonstrator and the actor's imitation of it (DAgger): walls learnt by bumping,
people found by facing them, the quest played on the cartridge, the actor fitted to labels, and
``pokedreamer train imitation`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from clirun import cli
from torch_setup import one_thread, seeded  # noqa: F401 (autouse fixtures)

from pokedreamer.agent.behavior import Behavior
from pokedreamer.agent.demonstrator import MOVES, Demonstrator
from pokedreamer.agent.evaluate import evaluate_agent
from pokedreamer.agent.imitation import Imitation
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.play import SHIPPED_CHECKPOINT
from pokedreamer.config import AgentSettings, ImitationSettings, load_settings
from pokedreamer.env.graph import Exit, MapGraph, MapNode
from pokedreamer.env.maps import MAP_IDS
from pokedreamer.env.state import GameState, PartyMon
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE, GoToMap, GoToTile, ReadText, WinBattle
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.checkpoint import load_checkpoint
from pokedreamer.world_model.presets import PRESETS

FACTS = GameFacts.fixture()
BUTTONS = ["a", "b", "start", "select", "up", "down", "left", "right"]
GYM = MAP_IDS["PEWTER_GYM"]


class Room:
    """A 10x9 map with walls and one person, moving the player as the cartridge does: a
    direction turns the player and walks one cell unless a wall or the person is in the way; A
    facing the person opens a text box."""

    def __init__(self, walls: set[tuple[int, int]], person: tuple[int, int] | None = None) -> None:
        self.walls, self.person = walls, person
        self.x, self.y, self.facing, self.text = 4, 7, "up", False

    def state(self) -> GameState:
        return GameState(
            map_id=GYM, map_name="PEWTER_GYM", x=self.x, y=self.y, facing=self.facing,
            battle="none", enemy_hp=0, enemy_max_hp=0, text_shown=self.text, text=(),
            party=(PartyMon(0xB1, 6, 22, 22),), badges=0, money=3000,
            event_flags=bytes(320), pokedex_owned=1, pokedex_seen=1, bag=(),
        )  # fmt: skip

    def press(self, button: str) -> None:
        if button == "a":
            dx, dy = MOVES[self.facing]
            self.text = (self.x + dx, self.y + dy) == self.person
            return
        self.facing = button  # type: ignore[assignment]
        dx, dy = MOVES[button]
        x, y = self.x + dx, self.y + dy
        if 0 <= x < 10 and 0 <= y < 9 and (x, y) not in self.walls and (x, y) != self.person:
            self.x, self.y = x, y


def test_demonstrator_learns_walls_by_bumping_and_walks_around_them() -> None:
    # A wall across the room with one gap at x=8: the straight way up is blocked.
    wall = {(x, 4) for x in range(10) if x != 8}
    room = Room(wall)
    teacher = Demonstrator(FACTS, BUTTONS)
    target = GoToTile(map="PEWTER_GYM", x=4, y=1)
    for _ in range(60):
        if (room.x, room.y) == (4, 1):
            break
        room.press(BUTTONS[teacher.act(room.state(), target)])
    assert (room.x, room.y) == (4, 1)
    learnt = {(x + MOVES[d][0], y + MOVES[d][1]) for _, x, y, d in teacher.walls}
    assert learnt and learnt <= wall  # every wall it believes in is a real one

    # Walls are kept across episodes: the second trip bumps into nothing.
    room.x, room.y, room.facing = 4, 7, "up"
    teacher.reset()
    known = set(teacher.walls)
    for steps in range(1, 40):  # noqa: B007
        room.press(BUTTONS[teacher.act(room.state(), target)])
        if (room.x, room.y) == (4, 1):
            break
    assert (room.x, room.y) == (4, 1) and teacher.walls == known
    assert steps == 4 + 6 + 4  # the shortest way: 4 across to the gap, 6 up, 4 back


def test_demonstrator_faces_each_neighbour_until_someone_answers() -> None:
    # Standing at (4,2) facing down, the person to the right: A finds nobody, so it turns.
    room = Room(set(), person=(5, 2))
    room.x, room.y, room.facing = 4, 2, "down"
    teacher = Demonstrator(FACTS, BUTTONS)
    stand = GoToTile(map="PEWTER_GYM", x=4, y=2)  # the plan's go_to_tile, already reached
    room.press(BUTTONS[teacher.act(room.state(), stand)])
    for _ in range(12):
        if room.text:
            break
        room.press(BUTTONS[teacher.act(room.state(), ReadText())])
    assert room.text and (room.x, room.y) == (4, 2)  # a turn may walk off; it comes back


def test_demonstrator_needs_the_buttons_it_presses() -> None:
    with pytest.raises(ValueError, match="needs the buttons a"):
        Demonstrator(FACTS, ["up", "down", "left", "right"])


# The gym as RAM gives it: exit mats at (4,8) and (5,8) to ROUTE_1, a map not seen yet.
GYM_NODE = MapNode(
    GYM, 10, 10, (Exit(4, 8, MAP_IDS["ROUTE_1"]), Exit(5, 8, MAP_IDS["ROUTE_1"])), ()
)


def test_demonstrator_explores_to_an_unseen_exit_and_presses_off_its_mat() -> None:
    """With no known route, the demonstrator heads for an exit whose destination it has not
    seen; standing on it (an exit mat that has not warped) it presses towards the map's edge."""
    facts = GameFacts.pokemon_red().with_graph(MapGraph([GYM_NODE]))
    for seed in range(3):
        room = Room({(x, 8) for x in range(10)} - {(4, 8), (5, 8)})
        room.x, room.y = 2 + seed, 3
        teacher = Demonstrator(facts, BUTTONS, seed=seed)
        goal = GoToMap(map="VIRIDIAN_CITY")
        for _ in range(20):
            if (room.x, room.y) in {(4, 8), (5, 8)}:
                break
            room.press(BUTTONS[teacher.act(room.state(), goal)])
        assert (room.x, room.y) in {(4, 8), (5, 8)}
        assert BUTTONS[teacher.act(room.state(), goal)] == "down"


def test_demonstrator_roams_around_warps() -> None:
    facts = GameFacts.pokemon_red().with_graph(MapGraph([GYM_NODE]))
    room = Room(set())
    teacher = Demonstrator(facts, BUTTONS, seed=1)
    visited = set()
    for _ in range(400):
        room.press(BUTTONS[teacher.act(room.state(), WinBattle())])
        visited.add((room.x, room.y))
    assert len(visited) > 40 and not visited & {(4, 8), (5, 8)}


def test_demonstrator_stops_roaming_to_a_cell_once_it_led_off_the_map() -> None:
    """A cell of the gym that leads to ROUTE_1 (the graph has not seen it): once a step onto it
    has left the map, roaming never goes back to it, even when it was the cell being roamed to
    or when a corridor leaves nowhere else to go."""
    corridor = {(x, y) for x in range(10) for y in range(9) if x != 4 or y < 5}
    for seed, walls in [*((seed, set()) for seed in range(20)), (0, corridor)]:
        room = Room(walls)
        teacher = Demonstrator(FACTS, BUTTONS, seed=seed)
        crossings = 0
        for _ in range(300):
            state = room.state()
            if (room.x, room.y) == (4, 8):  # off the map, and back in at once
                crossings += 1
                state = state.model_copy(
                    update={"map_id": MAP_IDS["ROUTE_1"], "map_name": "ROUTE_1"}
                )
                teacher.act(state, ReadText())  # the other map's subgoal: no roaming there
                room.y = 7
                continue
            room.press(BUTTONS[teacher.act(state, WinBattle())])
        assert crossings <= 1, seed


class GrassRoom(Room):
    """A Room whose row y=2 is tall grass: every third step onto it starts a wild battle, which
    one A ends."""

    GRASS = frozenset((x, 2) for x in range(1, 9))

    def __init__(self) -> None:
        super().__init__(set())
        self.battle, self.grass_steps = False, 0

    def state(self) -> GameState:
        return super().state().model_copy(update={"battle": "wild" if self.battle else "none"})

    def press(self, button: str) -> None:
        if self.battle:
            self.battle = button != "a"
            return
        before = (self.x, self.y)
        super().press(button)
        if (self.x, self.y) != before and (self.x, self.y) in self.GRASS:
            self.grass_steps += 1
            self.battle = self.grass_steps % 3 == 0


def test_the_floor_player_paces_the_grass_it_has_found() -> None:
    """With pace_grass the demonstrator learns where wild battles begin and, wanting a battle,
    walks back to that grass and stays in it; without, it roams the map as before."""
    battles = {}
    for pace in (False, True):
        room = GrassRoom()
        teacher = Demonstrator(FACTS, BUTTONS, seed=3, pace_grass=pace)
        found_at, outside, count = None, 0, 0
        for step in range(400):
            state = room.state()
            was = room.battle
            room.press(BUTTONS[teacher.act(state, WinBattle())])
            count += room.battle and not was
            if found_at is None and room.battle:
                found_at = step
            elif found_at is not None and not room.battle and (room.x, room.y) not in room.GRASS:
                outside += 1
        assert found_at is not None, pace
        if pace:
            assert teacher.grass[GYM] <= GrassRoom.GRASS and teacher.grass[GYM]
            assert outside <= 1  # at most the one step back onto the grass it had found
        else:
            assert not teacher.grass.get(GYM) or outside > 50  # it roams off the grass
        battles[pace] = count
    assert battles[True] > 2 * battles[False]


def test_demonstrator_plays_the_cartridge_quest_to_the_badge(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {"world_model.preset": "tiny", "env.max_steps": 1500, "agent.end_at_badges": 1,
         "agent.record": False},
    )  # fmt: skip
    loop = AgentLoop(settings, RunDir.make(tmp_path / "demo"), train=False, policy="demonstrator")
    assert len(loop.map_graph) == 0  # it finds its way on the maps it reads as it goes
    loop.run(None, episodes=1)
    assert set(loop.map_graph.nodes) == {MAP_IDS[m] for m in FACTS.maps}
    stages = loop.finished[0]["stages"]
    assert list(stages) == [
        "left_house", "starter", "route_1", "level_6", "pewter_gym", "badge"
    ], loop.finished  # fmt: skip
    assert stages["badge"] < 1500


def test_demonstrator_and_imitation_refuse_a_run_without_a_planner(tmp_path: Path) -> None:
    settings = load_settings(None, {"world_model.preset": "tiny", "planner.kind": "none"})
    with pytest.raises(Exception, match="needs a planner"):
        AgentLoop(settings, RunDir.make(tmp_path / "x"), train=False, policy="demonstrator")
    with pytest.raises(Exception, match="needs a planner"):
        AgentLoop(settings, RunDir.make(tmp_path / "y"), train=False, imitation=ImitationSettings())


def test_imitation_fits_the_actor_to_the_labels_and_leaves_the_critic() -> None:
    preset = PRESETS["tiny"]
    behavior = Behavior(preset, len(BUTTONS), AgentSettings())
    imitation = Imitation(ImitationSettings(batch_size=128, train_after=0), behavior)
    critic = [p.detach().clone() for p in behavior.critic.parameters()]
    # Labels that depend on both the state and the goal, as the demonstrator's do.
    teacher = torch.randn(preset.feat_size + GOAL_ENCODING_SIZE, len(BUTTONS))
    feats = torch.randn(2048, preset.feat_size)
    goals = torch.zeros(2048, GOAL_ENCODING_SIZE)
    goals[torch.arange(2048), torch.randint(0, GOAL_ENCODING_SIZE, (2048,))] = 1.0
    labels = (torch.cat([feats, 4 * goals], -1) @ teacher).argmax(-1)
    imitation.add(feats, goals, labels)
    first = imitation.update()
    for _ in range(300):
        last = imitation.update()
    assert first["imitation/accuracy"] < 0.4 < 0.8 < last["imitation/accuracy"]
    assert last["imitation/loss"] < first["imitation/loss"]
    assert all(torch.equal(a, b) for a, b in zip(critic, behavior.critic.parameters(), strict=True))


def test_imitation_keeps_the_newest_labels_and_owes_updates_by_ratio() -> None:
    behavior = Behavior(PRESETS["tiny"], len(BUTTONS), AgentSettings())
    settings = ImitationSettings(capacity=10, batch_size=4, ratio=8.0, train_after=6)
    imitation = Imitation(settings, behavior)
    feat = behavior.preset.feat_size
    for i in range(3):
        labels = torch.full((4,), i, dtype=torch.int64)
        imitation.add(torch.zeros(4, feat), torch.zeros(4, GOAL_ENCODING_SIZE), labels)
    assert imitation.size == 10 and imitation.seen == 12
    assert sorted(imitation.labels.tolist()) == [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]  # oldest two gone
    assert imitation.owed() == (12 - 6) * 8 // 4
    assert imitation.beta(0) == 1.0 and imitation.beta(10_000) == pytest.approx(0.5)
    assert imitation.beta(20_000) == imitation.beta(99_999) == 0.0


@pytest.mark.skipif(not SHIPPED_CHECKPOINT.with_suffix(".json").is_file(), reason="no checkpoint")
def test_train_imitation_end_to_end_continues_and_evaluates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POKEDREAMER_IMITATION__TRAIN_AFTER", "32")
    monkeypatch.setenv("POKEDREAMER_AGENT__RECORD", "false")
    first = cli("train", "imitation", "--run", "im", "--steps", "150", "--envs", "1")
    assert first.returncode == 0, first.stderr
    assert "done: 150 steps" in first.stdout and "imitation updates" in first.stdout
    saved = Path("runs/im/checkpoints/agent-000000150")
    tensors, meta = load_checkpoint(saved)
    shipped, _ = load_checkpoint(SHIPPED_CHECKPOINT)
    actor = [k for k in tensors if k.startswith("behavior/module/actor.")]
    critic = [k for k in tensors if k.startswith("behavior/module/critic.")]
    assert actor and critic
    assert any(not torch.equal(tensors[k], shipped[k]) for k in actor)  # the actor learnt
    assert all(torch.equal(tensors[k], shipped[k]) for k in critic)  # nothing else did
    # The world model is held fixed; only its state heads may differ, re-sized to the game
    # when the shipped checkpoint's predate them (they start untrained and nothing trains them).
    model = [k for k in tensors if k.startswith("model/") and "state_heads." not in k]
    assert model and all(torch.equal(tensors[k], shipped[k]) for k in model)

    again = cli("train", "imitation", "--run", "im", "--steps", "50", "--envs", "1")
    assert again.returncode == 0, again.stderr
    assert (
        json.loads(Path("runs/im/checkpoints/agent-000000200.json").read_text())["meta"]["steps"]
        == 200
    )

    report = evaluate_agent(
        load_settings(None, {}), saved, tmp_path / "eval", episodes=1, max_steps=60,
        variants=("agent", "demonstrator"),
    )  # fmt: skip
    assert set(report["variants"]) == {"agent", "demonstrator"}
    assert report["variants"]["demonstrator"]["stages"]["starter"]["reached"] == 1.0


def test_train_imitation_refuses_what_it_cannot_use_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POKEDREAMER_PLANNER__KIND", "none")
    result = cli("train", "imitation", "--run", "np", "--steps", "10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: the demonstrator plays the planner's subgoals: set a planner, not none"
    ]
    assert not Path("runs/np").exists()


@pytest.mark.skipif(not SHIPPED_CHECKPOINT.with_suffix(".json").is_file(), reason="no checkpoint")
@pytest.mark.slow  # half a minute or more of CLI runs: make test-slow
def test_a_fresh_blind_actor_learns_without_subgoals_and_is_only_run_that_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fair no-planner ablation's path: DAgger from the shipped world model alone with
    agent.goal_input = false; the checkpoint then refuses to act with subgoals as input."""
    monkeypatch.setenv("POKEDREAMER_IMITATION__TRAIN_AFTER", "32")
    monkeypatch.setenv("POKEDREAMER_AGENT__RECORD", "false")
    monkeypatch.setenv("POKEDREAMER_AGENT__GOAL_INPUT", "false")
    refused = cli("train", "imitation", "--run", "blind0", "--steps", "20", "--envs", "1")
    assert refused.returncode == 2  # the shipped actor saw subgoals: not continued blind
    assert refused.stderr.strip().splitlines() == [
        f"error: {SHIPPED_CHECKPOINT}: its actor was trained with the planner's subgoal as "
        "input; set agent.goal_input = true (POKEDREAMER_AGENT__GOAL_INPUT=true) to use it, or "
        "start an actor afresh with train imitation --fresh-actor"
    ]
    blind = cli(
        "train", "imitation", "--run", "blind", "--steps", "100", "--envs", "1", "--fresh-actor"
    )
    assert blind.returncode == 0, blind.stderr
    saved = Path("runs/blind/checkpoints/agent-000000100")
    tensors, meta = load_checkpoint(saved)
    shipped, _ = load_checkpoint(SHIPPED_CHECKPOINT)
    assert meta["behavior"]["settings"]["goal_input"] is False
    # Its critic is a fresh one (nothing trains it during DAgger), not the shipped critic.
    critic = [k for k in tensors if k.startswith("behavior/module/critic.")]
    assert any(not torch.equal(tensors[k], shipped[k]) for k in critic)

    acting = cli("eval", "agent", "--checkpoint", str(saved), "--variants", "no-planner",
                 "--episodes", "1", "--max-steps", "20")  # fmt: skip
    assert acting.returncode == 0, acting.stderr
    monkeypatch.setenv("POKEDREAMER_AGENT__GOAL_INPUT", "true")
    seeing = cli("eval", "agent", "--checkpoint", str(saved), "--episodes", "1")
    assert seeing.returncode == 2
    assert "its actor was trained without the planner's subgoal as input" in seeing.stderr
    assert len(seeing.stderr.strip().splitlines()) == 1


def test_a_blind_actor_gives_the_same_buttons_whatever_the_goal() -> None:
    settings = AgentSettings(goal_input=False)
    behavior = Behavior(PRESETS["tiny"], 8, settings)
    feat = torch.randn(4, PRESETS["tiny"].feat_size)
    goals = torch.randn(2, 4, GOAL_ENCODING_SIZE)
    assert torch.equal(behavior.actor(feat, goals[0]), behavior.actor(feat, goals[1]))
    assert torch.equal(behavior.critic(feat, goals[0]), behavior.critic(feat, goals[1]))
    seeing = Behavior(PRESETS["tiny"], 8, AgentSettings())
    assert not torch.equal(seeing.actor(feat, goals[0]), seeing.actor(feat, goals[1]))

"""The offline planner: the fixture's quest played through, stage by stage; Pokémon Red's opening
on made-up states; every plan either knowledge file can emit checked against the game's facts;
and knowledge files that are wrong, refused with the file and the stage named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cartridge_driver import GUIDE_TO_ROUTE, Game, find_wild_battle, get_starter

from pokedreamer.env.events import EVENT_FLAGS
from pokedreamer.env.maps import map_id
from pokedreamer.env.state import BADGES, GameState, PartyMon
from pokedreamer.errors import UserError
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.heuristic import KNOWLEDGE_FILES, HeuristicPlanner, KnowledgeError
from pokedreamer.planner.subgoals import (
    EarnBadge,
    GoToMap,
    GoToTile,
    HealParty,
    Plan,
    ReadText,
    SetEvent,
    WinBattle,
    done,
)
from pokedreamer.planner.validate import check

FIXTURE = GameFacts.fixture()
RED = GameFacts.pokemon_red()


@pytest.fixture
def game() -> Iterator[Game]:
    g = Game()
    yield g
    g.close()


# --- every plan is one the game can carry out ---------------------------------------------------


@pytest.mark.parametrize("game_name", sorted(KNOWLEDGE_FILES))
def test_every_plan_of_every_stage_passes_the_facts(game_name: str) -> None:
    planner = HeuristicPlanner(game_name)
    facts = GameFacts.fixture() if game_name == "fixture" else GameFacts.pokemon_red()
    assert planner.stages and not planner.stages[-1].when.model_dump(exclude_defaults=True)
    for stage in planner.stages:
        for plan in stage.plans():  # as written and from each waypoint
            assert check(plan, facts) == [], (stage.name, plan)
            # The same JSON shape the LLM answers in, and it round-trips.
            assert Plan.model_validate_json(plan.model_dump_json()) == plan


def test_red_and_blue_share_the_story() -> None:
    red, blue = HeuristicPlanner("red"), HeuristicPlanner("blue")
    assert [s.name for s in red.stages] == [s.name for s in blue.stages]
    assert red.source.endswith("pokemon_red.toml")


# --- the fixture's quest, played ----------------------------------------------------------------


def test_the_fixture_quest_goes_through_the_stages_in_order(game: Game) -> None:
    """The scripted walkthrough of test_cartridge, asking the planner at every beat."""
    planner = HeuristicPlanner("fixture")
    trace: list[str] = []

    def ask(expected: str) -> Plan:
        state = game.state
        stage = planner.stage(state)
        assert stage.name == expected, (expected, state.summary())
        plan = planner.plan(state)
        assert check(plan, FIXTURE) == []
        if not trace or trace[-1] != stage.name:
            trace.append(stage.name)
        return plan

    # The start: no POKéMON. The whole plan, since the house is not on its route.
    plan = ask("get_starter")
    assert plan.subgoals == [
        GoToMap(map="PALLET_TOWN"),
        GoToTile(map="PALLET_TOWN", x=6, y=2),
        ReadText(contains="Hello"),
        SetEvent(event="EVENT_GOT_STARTER"),
    ]
    texts = get_starter(game)
    assert all(done(s, game.state, FIXTURE) for s in plan.subgoals[1:] if s.kind != "read_text")
    # His greeting is what the plan asks to read; the words that stop RED at the north exit,
    # the GUIDE's too, are not.
    said = {
        "greeting": texts[0],
        "guard": "GUIDE: Wait, RED! Don't go yet!",
    }
    read = {
        k: done(
            plan.subgoals[2],
            game.state.model_copy(update={"text_shown": True, "text": (t,)}),
            FIXTURE,
        )
        for k, t in said.items()
    }
    assert read == {"greeting": True, "guard": False}, said

    # A level-5 SQUIRTLE at full HP: train.
    plan = ask("train")
    assert plan.subgoals == [GoToMap(map="ROUTE_1"), WinBattle()]
    game.walk(*GUIDE_TO_ROUTE, "right", "right", "up")
    assert ask("train").subgoals == [WinBattle()]  # on ROUTE_1 already: the waypoint is dropped

    # Battles until level 6; in each, the battle comes first; after each, heal when hurt.
    while game["wPartyMon1Level"] < 6:
        find_wild_battle(game)
        ask("battle")
        game.battle()
        state = game.state
        assert state.map_name == "ROUTE_1", "lost a wild battle"
        if state.party[0].level < 6:
            ask("heal" if state.hp_fraction < 0.5 else "train")

    # Level 6 but hurt: heal at home before the gym.
    assert game.state.hp_fraction < 0.5
    plan = ask("heal")
    assert plan.subgoals == [
        GoToMap(map="REDS_HOUSE_1F"),
        GoToTile(map="REDS_HOUSE_1F", x=5, y=2),
        HealParty(),
    ]
    x, y = game.pos[1:]
    game.walk(*(["left"] * (x - 4)), *(["down"] * (10 - y)), flee=True)
    game.walk(*["down"] * 4, "left", "left", "up", *["up"] * 7, "right")
    assert done(plan.subgoals[1], game.state, FIXTURE)  # at (5,2) in the house
    game.press("right")
    game.press("a")
    game.read_all()
    assert done(HealParty(), game.state, FIXTURE)

    # Healed at level 6: the gym.
    assert ask("gym").subgoals == [
        GoToMap(map="PEWTER_GYM"),
        GoToTile(map="PEWTER_GYM", x=4, y=2),
        EarnBadge(badge="BOULDER"),
    ]
    game.walk(*["down"] * 7, "right", "right")
    game.walk(*["up"] * 13, flee=True)
    assert ask("gym").subgoals == [GoToTile(map="PEWTER_GYM", x=4, y=2), EarnBadge(badge="BOULDER")]
    # The CAMPER on the way: a trainer battle.
    game.walk(*["up"] * 5, "right", "right")
    game.press("a")
    game.press("a")
    ask("battle")
    game.battle()
    assert game.state.map_name == "PEWTER_GYM", "lost to the CAMPER"
    ask("heal" if game.state.hp_fraction < 0.5 else "gym")
    # Heal again (as the walkthrough does), then the leader.
    game.walk("left", *["down"] * 5, *(["down"] * 8), flee=True)
    game.walk(*["down"] * 4, "left", "left", "up", *["up"] * 7, "right")
    game.press("right")
    game.press("a")
    game.read_all()
    ask("gym")
    game.walk(*["down"] * 7, "right", "right")
    game.walk(*["up"] * 13, flee=True)
    game.walk(*["up"] * 7)
    assert done(GoToTile(map="PEWTER_GYM", x=4, y=2), game.state, FIXTURE)
    for _ in range(3):
        game.press("a")
    ask("battle")
    game.battle()
    assert done(EarnBadge(badge="BOULDER"), game.state, FIXTURE), "lost to the leader"

    # The badge: the quest is complete.
    plan = ask("quest_complete")
    assert plan.subgoals[-1] == ReadText(contains="Well done")
    assert trace[0] == "get_starter" and trace[-1] == "quest_complete"
    # The quest order, once each battle and each return home is folded away.
    quest = [s for s in trace if s not in ("battle", "heal")]
    assert [s for i, s in enumerate(quest) if i == 0 or quest[i - 1] != s] == [
        "get_starter", "train", "gym", "quest_complete",
    ]  # fmt: skip
    assert "heal" in trace and trace.index("heal") < trace.index("gym")


def test_the_guide_congratulates_a_badge_holder(game: Game) -> None:
    """The quest_complete plan's text is what the GUIDE says: checked on the cartridge itself by
    setting the badge bit, which the GUIDE reads."""
    get_starter(game)
    game.pyboy.memory[0xD356] = 0b1  # wObtainedBadges: the BOULDERBADGE
    plan = HeuristicPlanner("fixture").plan(game.state)
    assert plan.subgoals[0] == GoToTile(map="PALLET_TOWN", x=6, y=2)
    assert done(plan.subgoals[0], game.state, FIXTURE)
    game.press("right")
    game.press("a")
    assert done(plan.subgoals[-1], game.state, FIXTURE), game.text


# --- Pokémon Red's opening, on made-up states ---------------------------------------------------


def red_state(
    map_name: str,
    x: int = 5,
    y: int = 5,
    events: tuple[str, ...] = (),
    party: tuple[tuple[int, int, int], ...] = (),  # (level, hp, max hp)
    badges: tuple[str, ...] = (),
    battle: str = "none",
) -> GameState:
    flags = bytearray(320)
    for name in events:
        index = EVENT_FLAGS[name]
        flags[index >> 3] |= 1 << (index & 7)
    return GameState(
        map_id=map_id(map_name), map_name=map_name, x=x, y=y, facing="down", battle=battle,
        enemy_hp=10 if battle != "none" else 0, enemy_max_hp=20 if battle != "none" else 0,
        text_shown=False, text=(),
        party=tuple(PartyMon(0xB1, level, hp, max_hp) for level, hp, max_hp in party),
        badges=sum(1 << BADGES.index(b) for b in badges), money=3000, event_flags=bytes(flags),
        pokedex_owned=0, pokedex_seen=0, bag=(),
    )  # fmt: skip


OAK = ("EVENT_FOLLOWED_OAK_INTO_LAB",)
STARTER = (*OAK, "EVENT_GOT_STARTER")
RIVAL = (*STARTER, "EVENT_BATTLED_RIVAL_IN_OAKS_LAB")
PARCEL = (*RIVAL, "EVENT_GOT_OAKS_PARCEL")
POKEDEX = (*PARCEL, "EVENT_OAK_GOT_PARCEL", "EVENT_GOT_POKEDEX")
L5, L12, HURT = ((5, 20, 20),), ((12, 35, 35),), ((12, 8, 35),)

RED_STORY = [
    # (state, stage, first subgoal of the plan emitted there)
    (red_state("REDS_HOUSE_2F"), "leave_house", GoToMap(map="REDS_HOUSE_1F")),
    (red_state("REDS_HOUSE_1F"), "leave_house", GoToMap(map="PALLET_TOWN")),
    (red_state("PALLET_TOWN"), "meet_oak", GoToTile(map="PALLET_TOWN", x=10, y=1)),
    (red_state("BLUES_HOUSE"), "meet_oak", GoToMap(map="PALLET_TOWN")),
    (red_state("OAKS_LAB", events=OAK), "choose_starter", GoToTile(map="OAKS_LAB", x=7, y=4)),
    (red_state("OAKS_LAB", events=STARTER, party=L5), "rival_battle",
     GoToTile(map="OAKS_LAB", x=5, y=6)),
    (red_state("OAKS_LAB", events=STARTER, party=L5, battle="trainer"), "battle", WinBattle()),
    (red_state("OAKS_LAB", events=RIVAL, party=L5), "get_parcel", GoToMap(map="VIRIDIAN_CITY")),
    (red_state("VIRIDIAN_CITY", events=RIVAL, party=L5), "get_parcel",
     GoToMap(map="VIRIDIAN_MART")),
    (red_state("ROUTE_1", events=RIVAL, party=((5, 5, 20),)), "heal_at_home",
     GoToMap(map="REDS_HOUSE_1F")),
    (red_state("VIRIDIAN_MART", events=PARCEL, party=L5), "deliver_parcel",
     GoToMap(map="PALLET_TOWN")),
    (red_state("OAKS_LAB", events=PARCEL, party=L5), "deliver_parcel",
     GoToTile(map="OAKS_LAB", x=5, y=3)),
    (red_state("OAKS_LAB", events=POKEDEX, party=L5), "train_for_brock",
     GoToMap(map="VIRIDIAN_FOREST")),
    (red_state("PALLET_TOWN", events=POKEDEX, party=L12), "to_pewter",
     GoToMap(map="VIRIDIAN_CITY")),
    (red_state("ROUTE_2", y=60, events=POKEDEX, party=L12), "to_pewter",
     GoToMap(map="VIRIDIAN_FOREST_SOUTH_GATE")),
    (red_state("VIRIDIAN_FOREST", events=POKEDEX, party=L12), "to_pewter",
     GoToMap(map="VIRIDIAN_FOREST_NORTH_GATE")),
    (red_state("VIRIDIAN_FOREST", events=POKEDEX, party=HURT), "heal_in_viridian",
     GoToMap(map="VIRIDIAN_POKECENTER")),
    (red_state("ROUTE_2", y=12, events=POKEDEX, party=L12), "route_2_north",
     GoToMap(map="PEWTER_CITY")),
    (red_state("PEWTER_CITY", events=POKEDEX, party=((12, 30, 35),)), "heal_before_brock",
     GoToMap(map="PEWTER_POKECENTER")),
    (red_state("PEWTER_POKECENTER", events=POKEDEX, party=L12), "beat_brock",
     GoToMap(map="PEWTER_GYM")),
    (red_state("PEWTER_GYM", events=POKEDEX, party=L12), "beat_brock",
     GoToTile(map="PEWTER_GYM", x=4, y=2)),
    (red_state("PEWTER_GYM", events=(*POKEDEX, "EVENT_BEAT_BROCK"), party=L12,
               badges=("BOULDER",)), "onward_to_cerulean", GoToMap(map="CERULEAN_CITY")),
    (red_state("PEWTER_GYM", events=POKEDEX, party=HURT, badges=("BOULDER",)), "heal_in_pewter",
     GoToMap(map="PEWTER_POKECENTER")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "stage", "first"),
    RED_STORY,
    ids=[f"{stage}-on-{state.map_name}" for state, stage, _ in RED_STORY],
)
def test_red_opening_stages(state: GameState, stage: str, first: object) -> None:
    planner = HeuristicPlanner("red")
    assert planner.stage(state).name == stage
    plan = planner.plan(state)
    assert plan.subgoals[0] == first
    assert check(plan, RED) == []


def test_every_red_stage_is_reached_by_some_state() -> None:
    reached = {stage for _, stage, _ in RED_STORY}
    assert reached == {s.name for s in HeuristicPlanner("red").stages}


def test_a_plan_from_its_last_waypoint_keeps_its_last_subgoal() -> None:
    # to_pewter ends with go_to_map PEWTER_CITY; from there the plan would be empty.
    stage = next(s for s in HeuristicPlanner("red").stages if s.name == "to_pewter")
    plan = stage.plan_for(red_state("PEWTER_CITY"))
    assert plan.subgoals == [GoToMap(map="PEWTER_CITY")]


# --- knowledge files that are wrong -------------------------------------------------------------

GOOD_TAIL = """
[[stage]]
name = "gym"

[stage.plan]
goal = "Earn the badge"
subgoals = [{ kind = "earn_badge", badge = "BOULDER" }]
"""


def knowledge(tmp_path: Path, stages: str, games: str = '["fixture"]') -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(f"games = {games}\n{stages}\n{GOOD_TAIL}", encoding="utf-8")
    return path


def stage(when: str, subgoals: str = '[{ kind = "heal_party" }]', name: str = "heal") -> str:
    return f"""
[[stage]]
name = "{name}"
{when}

[stage.plan]
goal = "A goal"
subgoals = {subgoals}
"""


def refused(path: Path, game: str = "fixture") -> str:
    with pytest.raises(KnowledgeError) as info:
        HeuristicPlanner(game, path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert isinstance(info.value, UserError)  # the CLI shows it as one line
    return message


def test_a_good_custom_file_loads(tmp_path: Path) -> None:
    planner = HeuristicPlanner("fixture", knowledge(tmp_path, stage("when.hp_below = 0.5")))
    assert [s.name for s in planner.stages] == ["heal", "gym"]
    assert planner.source == str(tmp_path / "mine.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (stage("when.hp_belw = 0.5"), "stage 1 (heal): when.hp_belw: unknown key"),
        (stage("when.hp_below = 2.0"), "stage 1 (heal): when.hp_below: Input should be less"),
        (stage("colour = 'red'"), "stage 1 (heal): colour: unknown key"),
        (stage("", '[{ kind = "fly_to", map = "PALLET_TOWN" }]'),
         "stage 1 (heal): plan.subgoals[1]: Input tag 'fly_to'"),
        (stage("", "[" + ", ".join(['{ kind = "heal_party" }'] * 9) + "]"),
         "stage 1 (heal): plan.subgoals: List should have at most 8 items"),
        (stage("when.max_party = 0",
               '[{ kind = "go_to_tile", map = "PALLET_TOWN", x = 12, y = 2 }]'),
         "stage 1 (heal): plan: subgoal 1 (go_to_tile): (12, 2) lies outside PALLET_TOWN"),
        (stage("when.max_party = 0", '[{ kind = "set_event", event = "EVENT_BEAT_MISTY" }]'),
         "stage 1 (heal): plan: subgoal 1 (set_event): no fixture event named 'EVENT_BEAT_MISTY'"),
        (stage("when.requires_events = ['EVENT_GOT_STARTR']"),
         "stage 1 (heal): no fixture event named 'EVENT_GOT_STARTR'; "
         "did you mean EVENT_GOT_STARTER"),
        (stage("when.on_maps = ['ROUTE_2']"), "stage 1 (heal): no map named 'ROUTE_2'"),
        (stage("when.on_maps = ['pallet town']"),
         "stage 1 (heal): write map 'pallet town' as pret does: PALLET_TOWN"),
        (stage("when.lacks_badges = ['CASCADE']"),
         "stage 1 (heal): no badge 'CASCADE' in this game"),
        (stage("when.min_level = 7\nwhen.max_level = 6"),
         "stage 1 (heal): min_level 7 is above max_level 6"),
        (stage(""), "stage 1 (heal): has no `when`, so the stages after it could never be chosen"),
        (stage("when.max_party = 0") + stage("when.min_party = 1"),
         "stage 2 (heal): a stage of this name comes earlier"),
        (stage("when.max_party = 0", name="Heal Me"),
         "stage 1 (Heal Me): name: String should match"),
        ("this is = not toml", "Expected"),
    ],
)  # fmt: skip
def test_bad_knowledge_is_refused_naming_file_and_stage(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in refused(knowledge(tmp_path, text))


def test_the_last_stage_must_catch_every_state(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('games = ["fixture"]\n' + stage("when.max_party = 0"), encoding="utf-8")
    assert "stage 1 (heal): the last stage must have no `when`" in refused(path)


def test_a_file_for_another_game_or_no_file(tmp_path: Path) -> None:
    assert "is for red, blue, not for 'fixture'" in refused(
        knowledge(tmp_path, "", games='["red", "blue"]')
    )
    assert "cannot read" in refused(tmp_path / "missing.toml")
    with pytest.raises(KnowledgeError, match="no knowledge file for game 'yellow'"):
        HeuristicPlanner("yellow")

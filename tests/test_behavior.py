"""The actor-critic on the tiny preset: gradients, lambda-returns, return scale, shaping that
stops at done, a toy learning check, batched acting and checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_setup import one_thread, seeded  # noqa: F401 (autouse fixtures)

from pokedreamer.agent.actor_critic import ReturnNorm, goal_width, lambda_return
from pokedreamer.agent.behavior import (
    RECORDED_SETTINGS,
    RETURNS,
    Behavior,
    Imagination,
    goal_tensor,
)
from pokedreamer.agent.subgoal_pool import SubgoalPool, live, views_of
from pokedreamer.config import AgentSettings, Settings
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_SIZE, GameState, PartyMon
from pokedreamer.errors import UserError
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import (
    GOAL_ENCODING_SIZE,
    EarnBadge,
    GoToMap,
    GoToTile,
    HealParty,
    ReadText,
    SetEvent,
    StateView,
    Subgoal,
    WinBattle,
    describe,
    done,
    phi,
)
from pokedreamer.world_model.checkpoint import load_checkpoint, save_checkpoint
from pokedreamer.world_model.heads import STATE_HEADS
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.presets import PRESETS
from pokedreamer.world_model.rssm import RSSMState

TINY = PRESETS["tiny"]
ACTIONS = 9
FACTS = GameFacts.fixture()
# Without a map graph go_to_map's potential is arrival alone (0 or 1), which keeps the shaping
# figures below easy to check by hand; the route potential is tested in test_subgoals.
ARRIVAL_ONLY = dataclasses.replace(FACTS, graph=None)
SUBGOAL = GoToMap(map="PALLET_TOWN")
# DreamerV3's discount, entropy weight and learning rates, which these tests were tuned with.
DREAMERV3 = {"gamma": 0.997, "entropy": 3e-4, "actor_lr": 3e-5, "critic_lr": 3e-5}
SHIPPED = Path(__file__).resolve().parent.parent / "pokedreamer/agent/shipped/fixture-agent.json"


def config(**changes: object) -> AgentSettings:
    """The agent settings with DREAMERV3's values, then ``changes``."""
    return AgentSettings.model_validate({**DREAMERV3, **changes})


def starts(wm: WorldModel, b: int) -> RSSMState:
    """Imagination starts that differ per row: one prior step from the initial state under
    random buttons."""
    with torch.no_grad():
        actions = F.one_hot(torch.randint(0, ACTIONS, (b,)), ACTIONS).float()
        return wm.rssm.img_step(wm.rssm.initial(b), actions)


def fake_predict(
    map_ids: Tensor,
    reward: Tensor | None = None,
    x: Tensor | None = None,
    cont: Tensor | None = None,
) -> dict[str, Tensor]:
    """A predict() output with the given map ids (H+1, B) (and x, reward and cont when given),
    every other head neutral."""
    shape = map_ids.shape
    preds = {
        "map_id": map_ids,
        "x": torch.zeros(shape, dtype=torch.int64) if x is None else x,
        "y": torch.zeros(shape, dtype=torch.int64),
        "battle": torch.zeros(shape, dtype=torch.int64),
        "text_shown": torch.zeros(shape),
        "hp_fraction": torch.zeros(shape),
        "enemy_hp_fraction": torch.ones(shape),
        "badges": torch.zeros(*shape, 8),
        "reward": torch.zeros(shape) if reward is None else reward,
        "cont": torch.ones(shape) if cont is None else cont,
    }
    assert set(preds) == set(STATE_HEADS) | {"reward", "cont"}
    return preds


# ----------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("subgoal", [SUBGOAL, None], ids=["subgoal", "no_subgoal"])
def test_gradients_reach_the_actor_and_not_the_world_model(subgoal: GoToMap | None) -> None:
    wm = WorldModel(TINY, ACTIONS)
    # A fresh reward head predicts exactly 0 (zero output layer), which leaves the actor no
    # advantage to follow; random output weights give every imagined step a reward.
    torch.nn.init.normal_(wm.reward_head[-1].weight, std=0.5)
    wm_before = {k: v.clone() for k, v in wm.state_dict().items()}
    behavior = Behavior(TINY, ACTIONS, config(horizon=6))
    actor_before = [p.detach().clone() for p in behavior.actor.parameters()]
    critic_before = [p.detach().clone() for p in behavior.critic.parameters()]
    slow_before = [p.detach().clone() for p in behavior.slow_critic.parameters()]

    b = 8
    goal = goal_tensor(subgoal, FACTS, b, "cpu")
    metrics = behavior.imagine_and_train(wm, starts(wm, b), goal, subgoal, FACTS)

    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    first = behavior.actor.net[0]
    assert isinstance(first, torch.nn.Linear)
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert metrics["actor_grad_norm"] > 0

    def moved(before: list[Tensor], module: torch.nn.Module) -> list[bool]:
        return [not torch.equal(a, p) for a, p in zip(before, module.parameters(), strict=True)]

    assert all(moved(actor_before, behavior.actor))
    assert any(moved(critic_before, behavior.critic))
    # The slow critic moved toward the critic by its EMA, and got no gradient of its own.
    assert any(moved(slow_before, behavior.slow_critic))
    assert all(p.grad is None for p in behavior.slow_critic.parameters())

    for name, tensor in wm.state_dict().items():
        assert torch.equal(tensor, wm_before[name]), f"world model {name} changed"
    assert all(p.grad is None for p in wm.parameters()), "a gradient leaked into the world model"
    if subgoal is None:
        assert metrics["shaping_mean"] == 0.0 and metrics["done_rate"] == 0.0


# ----------------------------------------------------------------------------------------------
# Returns and their scale


@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_lambda_return_matches_the_weighted_n_step_returns(lam: float) -> None:
    """The recursion against its definition: R^lam_t = (1-lam) sum_n lam^(n-1) G^(n)_t, the
    weight left over going to the longest return, G^(n)_t the n-step return bootstrapped from v."""
    h, b, gamma = 5, 3, 0.9
    rewards, conts = torch.randn(h, b), torch.rand(h, b)
    values = torch.randn(h + 1, b)
    got = lambda_return(rewards, conts, values, gamma, lam)
    assert got.shape == (h, b)

    def n_step(i: int, t: int, n: int) -> float:
        total, discount = 0.0, 1.0
        for k in range(n):
            total += discount * rewards[t + k, i].item()
            discount *= gamma * conts[t + k, i].item()
        return total + discount * values[t + n, i].item()

    for i in range(b):
        for t in range(h):
            longest = h - t
            expected = sum((1 - lam) * lam ** (n - 1) * n_step(i, t, n) for n in range(1, longest))
            expected += lam ** (longest - 1) * n_step(i, t, longest)
            assert got[t, i].item() == pytest.approx(expected, abs=1e-5), (t, i)


def test_return_norm_counts_only_returns_with_weight() -> None:
    """Half the batch weighs 0 (starts already done, steps after completion): the percentiles
    are those of the weighted half alone, and a batch with no weight changes nothing."""
    weighted = torch.linspace(0.0, 10.0, 101)
    ignored = torch.full((101,), 1000.0)
    returns = torch.stack([weighted, ignored], dim=1)  # (101, 2) like (H, B)
    weights = torch.stack([torch.rand(101) + 0.01, torch.zeros(101)], dim=1)
    norm = ReturnNorm((5.0, 95.0), decay=0.99)
    norm.update(returns, weights)
    assert norm.low.item() == pytest.approx(0.5) and norm.high.item() == pytest.approx(9.5)
    assert norm.scale().item() == pytest.approx(9.0)
    norm.update(torch.full((4, 2), 500.0), torch.zeros(4, 2))
    assert norm.scale().item() == pytest.approx(9.0) and norm.count.item() == 1

    # The same through an update: a fresh critic values everything 0, so with one imagined
    # step the returns are the rewards, and the weightless half must not size the advantages.
    behavior = Behavior(TINY, ACTIONS, config(horizon=1))
    b = 202
    imag = Imagination(
        feats=torch.randn(2, b, TINY.feat_size),
        goal=torch.zeros(b, GOAL_ENCODING_SIZE),
        actions=torch.zeros(1, b, dtype=torch.int64),
        rewards=torch.cat([weighted, ignored]).unsqueeze(0),
        shaping=torch.zeros(1, b),
        conts=torch.ones(1, b),
        weights=torch.cat([torch.ones(101), torch.zeros(101)]).unsqueeze(0),
        alive=torch.ones(2, b),
    )
    metrics = behavior.train_on(imag)
    assert behavior.return_norm.low.item() == pytest.approx(0.5, abs=1e-3)
    assert behavior.return_norm.high.item() == pytest.approx(9.5, abs=1e-3)
    assert metrics["return_scale"] == pytest.approx(9.0, abs=1e-3)


def test_return_norm_leaves_small_returns_unscaled_and_tracks_large_ones() -> None:
    norm = ReturnNorm((5.0, 95.0), decay=0.99)
    norm.update(torch.linspace(0.0, 0.5, 101))
    assert norm.scale().item() == 1.0  # a range of 0.45: advantages stay as they are

    norm = ReturnNorm((5.0, 95.0), decay=0.99)
    norm.update(torch.linspace(0.0, 100.0, 101))
    assert norm.scale().item() == pytest.approx(90.0)  # the first batch sets it outright
    norm.update(torch.linspace(0.0, 200.0, 101))
    assert norm.scale().item() == pytest.approx(0.99 * 90.0 + 0.01 * 180.0)


# ----------------------------------------------------------------------------------------------
# Shaping


def test_shaping_bonus_is_paid_at_most_once_and_the_return_stops_at_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wm = WorldModel(TINY, ACTIONS)
    on, off = FACTS.map_id("PALLET_TOWN"), FACTS.map_id("ROUTE_1")
    paths = [
        [on, on, on, on, on, on, on],  # done at the start, stays
        [off, off, on, off, on, off, on],  # done at s_2, then wanders out and back in
        [off] * 7,  # never
        [on, off, on, off, on, off, on],  # done at the start, then in and out
    ]
    maps = torch.tensor(paths).T  # (H+1, B)
    monkeypatch.setattr(wm, "predict", lambda feat, state=True: fake_predict(maps))
    cfg = config(horizon=6, gamma=0.9, shaping_bonus=5.0)
    behavior = Behavior(TINY, ACTIONS, cfg)
    imag = behavior.imagine(
        wm, starts(wm, 4), goal_tensor(SUBGOAL, FACTS, 4, "cpu"), SUBGOAL, ARRIVAL_ONLY
    )

    assert isinstance(imag, Imagination)
    bonuses = (imag.shaping > cfg.shaping_bonus / 2).sum(0)
    assert bonuses.tolist() == [0, 1, 0, 0]
    # Trajectory 1: the bonus less phi(s_1) on its second step (no gamma*phi(s_2): the
    # subgoal's end is absorbing, potential 0), then nothing.
    assert imag.shaping[:, 1].tolist() == pytest.approx([0.0, 5.0, 0, 0, 0, 0])
    assert imag.conts[:, 1].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert imag.weights[:, 1].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    # Starts already done teach nothing about the subgoal.
    for i in (0, 3):
        assert imag.shaping[:, i].abs().sum() == 0 and imag.weights[:, i].sum() == 0
    assert imag.shaping[:, 2].abs().sum() == 0 and imag.weights[:, 2].tolist() == [1.0] * 6

    # The return of trajectory 1 ends with the bonus: no later reward or value leaks in.
    metrics = behavior.train_on(imag)
    assert metrics["done_rate"] == 0.25 and metrics["start_done_rate"] == 0.5
    values = torch.zeros(7, 4)
    returns = lambda_return(imag.rewards, imag.conts, values, cfg.gamma, cfg.lam)
    assert returns[1, 1].item() == pytest.approx(5.0)


def test_shaping_telescopes_under_the_returns_discount(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand-built trajectories on PALLET_TOWN under go_to_tile (6, 2), whose potential is
    0.5 + 0.5 * (1 - |x - 6| / 20) at y 2: the shaped return less the unshaped one is
    D_H * phi(s_H) - phi(s_0), D_H the returns' discount to the horizon; a loop back to its
    start leaves the return as it was when nothing discounts; a step into done or into a
    predicted end pays no gamma * phi."""
    wm = WorldModel(TINY, ACTIONS)
    town = FACTS.map_id("PALLET_TOWN")
    tile = GoToTile(map="PALLET_TOWN", x=6, y=2)
    xs = torch.tensor(
        [
            [0, 1, 2, 1, 0],  # leaves and comes back
            [0, 1, 2, 1, 0],  # the same, the world model predicting the game may end
            [4, 5, 6, 5, 4],  # reaches the tile at s_2
            [0, 1, 2, 3, 4],  # the game ends at s_2 (cont 0)
        ]
    ).T  # (H+1, B)
    cont = torch.ones(5, 4)
    cont[:, 1] = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6])
    cont[2, 3] = 0.0
    reward = torch.zeros(5, 4)
    reward[1:, :] = torch.tensor([0.25, -0.5, 1.0, 0.125]).unsqueeze(1)
    maps = torch.full((5, 4), town)
    preds = fake_predict(maps, reward=reward, x=xs, cont=cont)
    preds["y"] = torch.full((5, 4), 2)
    monkeypatch.setattr(wm, "predict", lambda feat, state=True: preds)

    def phi(x: float) -> float:
        return 0.5 + 0.5 * (1 - abs(x - 6) / 20)

    for gamma in (1.0, 0.9):
        cfg = config(horizon=4, gamma=gamma, shaping_bonus=3.0, lam=1.0)
        behavior = Behavior(TINY, ACTIONS, cfg)
        imag = behavior.imagine(wm, starts(wm, 4), goal_tensor(tile, FACTS, 4, "cpu"), tile, FACTS)
        zero = torch.zeros(5, 4)
        shaped = lambda_return(imag.rewards, imag.conts, zero, gamma, 1.0)[0]
        plain = lambda_return(imag.rewards - imag.shaping, imag.conts, zero, gamma, 1.0)[0]
        discount = torch.cat([torch.ones(1, 4), gamma * imag.conts]).cumprod(0)[-1]
        for i in (0, 1, 3):
            end = discount[i].item() * phi(xs[-1, i].item())
            assert shaped[i].item() - plain[i].item() == pytest.approx(
                end - phi(xs[0, i].item()), abs=1e-5
            )
        if gamma == 1.0:  # out and back, nothing discounting: the same return
            assert shaped[0].item() == pytest.approx(plain[0].item(), abs=1e-6)
            assert plain[0].item() == pytest.approx(0.875)
        # Reaching the tile: gamma*phi(s_1) - phi(s_0), then the bonus less phi(s_1), and the
        # return ends there.
        assert imag.shaping[:2, 2].tolist() == pytest.approx(
            [gamma * phi(5) - phi(4), 3.0 - phi(5)], abs=1e-6
        )
        assert imag.shaping[2:, 2].abs().sum() == 0 and imag.conts[1, 2] == 0
        assert shaped[2].item() == pytest.approx(
            0.25 - 0.5 * gamma + gamma * 3.0 - phi(4), abs=1e-5
        )
        # A predicted end (cont 0 at s_2): its step pays -phi(s_1) and no gamma * phi(s_2).
        assert imag.shaping[1, 3].item() == pytest.approx(-phi(1), abs=1e-6)
        assert imag.weights[2:, 3].abs().sum() == 0


@pytest.mark.parametrize(
    "subgoal",
    [
        GoToMap(map="PALLET_TOWN"),
        GoToTile(map="PALLET_TOWN", x=3, y=4),
        ReadText(contains="OAK"),
        WinBattle(),
        HealParty(),
        EarnBadge(badge="BOULDER"),
        SetEvent(event="EVENT_GOT_STARTER"),
    ],
    ids=lambda subgoal: subgoal.kind,
)
def test_every_subgoal_kind_shapes_predicted_states(subgoal: Subgoal) -> None:
    """Each kind's done/phi run on the real world model's predicted state, batched over
    (time, trajectory); kinds that cannot judge a prediction (events) give 0, not an error."""
    wm = WorldModel(TINY, ACTIONS)
    behavior = Behavior(TINY, ACTIONS, config(horizon=3))
    imag = behavior.imagine(
        wm, starts(wm, 4), goal_tensor(subgoal, FACTS, 4, "cpu"), subgoal, FACTS
    )
    for field in (imag.rewards, imag.shaping, imag.conts, imag.weights):
        assert field.shape == (3, 4) and field.dtype == torch.float32
        assert torch.isfinite(field).all()
    assert imag.alive.shape == (4, 4)
    metrics = behavior.train_on(imag)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics


# ----------------------------------------------------------------------------------------------
# Pairing starts with live subgoals


def game_state(map_name: str, x: int, y: int, **changes: object) -> GameState:
    base = dict(
        map_id=FACTS.map_id(map_name), map_name=map_name, x=x, y=y, facing="down",
        battle="none", enemy_hp=0, enemy_max_hp=0, text_shown=False, text=(),
        party=(PartyMon(7, 5, 12, 20),), badges=0, money=0, event_flags=bytes(320),
        pokedex_owned=0, pokedex_seen=0, bag=(),
    )  # fmt: skip
    return GameState(**{**base, **changes})


def test_views_of_vectors_read_what_the_subgoals_read() -> None:
    battle = game_state("ROUTE_1", 7, 8, battle="wild", enemy_hp=6, enemy_max_hp=10, badges=5)
    states = [game_state("PALLET_TOWN", 3, 4, text_shown=True), battle]
    views = views_of(np.stack([s.vector() for s in states]))
    for i, state in enumerate(states):
        want = StateView.from_game_state(state)
        for name in ("map_id", "x", "y", "battle", "text_shown", "hp_fraction"):
            assert getattr(views, name)[i] == pytest.approx(getattr(want, name)), name
        assert views.enemy_hp_fraction[i] == pytest.approx(want.enemy_hp_fraction, abs=1e-3)
        assert views.badges[i].tolist() == list(want.badges)


TILE_TOWN = GoToTile(map="PALLET_TOWN", x=6, y=2)
TILE_ROUTE = GoToTile(map="ROUTE_1", x=7, y=4)
LIVE_STARTS = [
    game_state("PALLET_TOWN", 0, 2),  # only the town's tile moves with a step
    game_state("ROUTE_1", 7, 8),  # only the route's tile
    game_state("REDS_HOUSE_1F", 3, 4, battle="wild", enemy_hp=6, enemy_max_hp=10),  # the battle
    game_state("PALLET_TOWN", 6, 2),  # on the town's tile (done): none is live
]


def test_each_start_is_paired_with_a_subgoal_live_there() -> None:
    pool = SubgoalPool(ARRIVAL_ONLY)
    everything = [TILE_TOWN, TILE_ROUTE, WinBattle(), EarnBadge(badge="BOULDER"), HealParty()]
    pool.add(everything)
    vectors = np.stack([s.vector() for s in LIVE_STARTS])
    views = views_of(vectors)
    assert [live(sg, views, ARRIVAL_ONLY).tolist() for sg in everything] == [
        [True, False, False, False],
        [False, True, False, False],
        [False, False, True, False],
        [False, False, False, False],  # a badge is all or nothing
        [False, False, False, False],  # no step nearby heals
    ]
    rng = np.random.default_rng(0)
    fallback = []
    for _ in range(50):
        subgoals, paired = pool.pair(rng, vectors, [])
        assert subgoals[:3] == [TILE_TOWN, TILE_ROUTE, WinBattle()]
        assert paired.tolist() == [True, True, True, False]
        fallback.append(describe(subgoals[3]))
    assert len(set(fallback)) == len(everything)  # no live one: any of the pool
    # A pursued subgoal is the fallback; where it is live among others it is favoured.
    for _ in range(20):
        assert pool.pair(rng, vectors, [HealParty()])[0][3] == HealParty()
    battle_on_route = game_state("ROUTE_1", 7, 8, battle="wild", enemy_hp=6, enemy_max_hp=10)
    both = np.stack([battle_on_route.vector()] * 400)
    picks = [describe(s) for s in pool.pair(rng, both, [WinBattle()])[0]]
    assert set(picks) == {describe(WinBattle()), describe(TILE_ROUTE)}
    assert 0.65 < picks.count(describe(WinBattle())) / len(picks) < 0.85  # 1/2 + 1/2 * 1/2


def test_drawn_by_subgoal_a_leg_live_at_one_start_is_rehearsed_as_often_as_the_rest() -> None:
    """agent.pairing = "subgoal": 99 starts on the route and one in a battle. Drawn by start,
    winning the battle gets about 1 row in 100; drawn by subgoal, half of them, all from the
    battle's start, and every row's subgoal is live at its start."""
    pool = SubgoalPool(ARRIVAL_ONLY)
    pool.add([TILE_TOWN, TILE_ROUTE, WinBattle(), HealParty()])
    battle = game_state("REDS_HOUSE_1F", 3, 4, battle="wild", enemy_hp=6, enemy_max_hp=10)
    vectors = np.stack([game_state("ROUTE_1", 7, 8).vector()] * 99 + [battle.vector()])
    rng = np.random.default_rng(0)
    by_start = [describe(s) for s in pool.pair(rng, vectors, [])[0]]
    assert by_start.count(describe(WinBattle())) == 1
    found = pool.liveness(vectors, [])
    starts, subgoals, paired = SubgoalPool.draw(rng, found, 2000)
    assert paired.all() and len(subgoals) == len(starts) == 2000
    names = [describe(s) for s in subgoals]
    assert set(names) == {describe(TILE_ROUTE), describe(WinBattle())}  # the live ones only
    assert 0.45 < names.count(describe(WinBattle())) / len(names) < 0.55
    assert {int(i) for i, s in zip(starts, subgoals, strict=True) if s == WinBattle()} == {99}
    assert all(found.alive[i, found.pool.index(s)] for i, s in zip(starts, subgoals, strict=True))
    # Half of the rows go to a pursued subgoal live somewhere: here the battle's.
    found = pool.liveness(vectors, [WinBattle()])
    names = [describe(s) for s in SubgoalPool.draw(rng, found, 2000)[1]]
    assert 0.7 < names.count(describe(WinBattle())) / len(names) < 0.8  # 1/2 + 1/2 * 1/2
    # Live nowhere: the starts are drawn as by start, each with a pursued subgoal.
    done_here = np.stack([game_state("PALLET_TOWN", 6, 2).vector()] * 8)
    starts, subgoals, paired = SubgoalPool.draw(rng, pool.liveness(done_here, [HealParty()]), 4)
    assert not paired.any() and len(set(starts.tolist())) == 4
    assert subgoals == [HealParty()] * 4


GYM_STATES = [
    game_state("PEWTER_GYM", 4, 2),  # before the leader: nothing yet
    game_state("PEWTER_GYM", 4, 2, battle="trainer", enemy_hp=20, enemy_max_hp=20),
    game_state("PEWTER_GYM", 4, 2, battle="trainer", enemy_hp=10, enemy_max_hp=20),
    game_state("PEWTER_GYM", 4, 2, battle="trainer", enemy_hp=0, enemy_max_hp=20),
    game_state("PEWTER_GYM", 4, 2, battle="lost"),
    game_state("ROUTE_1", 4, 2, battle="trainer", enemy_hp=10, enemy_max_hp=20),  # not the gym
    game_state("PEWTER_GYM", 4, 2, battle="wild", enemy_hp=10, enemy_max_hp=20),
    game_state("PEWTER_GYM", 4, 2, badges=1),  # the BOULDERBADGE: bit 0
]


def test_earn_badge_rises_through_a_trainer_battle_in_its_gym() -> None:
    badge = EarnBadge(badge="BOULDER")
    want = [0, 0.25, 0.375, 0.5, 0, 0, 0, 1]
    assert [phi(badge, s, FACTS) for s in GYM_STATES] == pytest.approx(want)
    assert [bool(done(badge, s, FACTS)) for s in GYM_STATES] == [False] * 7 + [True]
    # Imagination reads the same from the state vector, numpy or torch.
    views = views_of(np.stack([s.vector() for s in GYM_STATES]))
    assert np.asarray(phi(badge, views, FACTS)).tolist() == pytest.approx(want, abs=1e-3)
    batch = StateView.from_arrays(
        **{n: torch.as_tensor(np.asarray(getattr(views, n))) for n in STATE_HEADS}
    )
    assert phi(badge, batch, FACTS).tolist() == pytest.approx(want, abs=1e-3)
    assert done(badge, batch, FACTS).tolist() == [False] * 7 + [True]
    # Only the badge's own gym: CASCADE is earned in CERULEAN_GYM, which the fixture lacks.
    red = GameFacts.pokemon_red()
    assert red.gym_map_id("CASCADE") == red.map_id("CERULEAN_GYM")
    assert FACTS.gym_map_id("CASCADE") is None
    assert FACTS.gym_map_ids().tolist() == [FACTS.map_id("PEWTER_GYM")]
    assert len(red.gym_map_ids()) == 8
    in_cerulean = GYM_STATES[2].model_copy(update={"map_id": red.map_id("CERULEAN_GYM")})
    assert phi(EarnBadge(badge="CASCADE"), in_cerulean, red) == pytest.approx(0.375)
    assert phi(EarnBadge(badge="BOULDER"), in_cerulean, red) == 0


def test_a_badge_is_live_in_its_gym_where_a_trainer_battle_can_start() -> None:
    badge = EarnBadge(badge="BOULDER")
    starts = [GYM_STATES[0], GYM_STATES[2], game_state("ROUTE_1", 4, 2), GYM_STATES[-1]]
    views = views_of(np.stack([s.vector() for s in starts]))
    assert live(badge, views, ARRIVAL_ONLY).tolist() == [True, True, False, False]
    assert live(WinBattle(), views, ARRIVAL_ONLY).tolist() == [True, True, False, True]


def test_a_battle_to_win_is_live_outside_a_battle_only_where_battles_start() -> None:
    route, town = FACTS.map_id("ROUTE_1"), FACTS.map_id("PALLET_TOWN")
    calm = [game_state("ROUTE_1", 7, 8), game_state("PALLET_TOWN", 3, 4)]
    vectors = np.stack([s.vector() for s in calm])
    views = views_of(vectors)
    assert live(WinBattle(), views, ARRIVAL_ONLY).tolist() == [False, False]
    assert live(WinBattle(), views, ARRIVAL_ONLY, np.array([route])).tolist() == [True, False]
    assert live(WinBattle(), views, ARRIVAL_ONLY, np.array([town, route])).tolist() == [True] * 2
    # A battle map makes nothing else live: a badge is still all or nothing.
    assert not live(EarnBadge(badge="BOULDER"), views, ARRIVAL_ONLY, np.array([route])).any()
    pool = SubgoalPool(ARRIVAL_ONLY)
    pool.add([TILE_ROUTE, WinBattle()])
    rng = np.random.default_rng(0)
    on_route = np.stack([calm[0].vector()] * 400)
    assert {describe(s) for s in pool.pair(rng, on_route, [WinBattle()])[0]} == {
        describe(TILE_ROUTE)
    }
    pool.battle_maps = np.array([route])
    picks = [describe(s) for s in pool.pair(rng, on_route, [WinBattle()])[0]]
    assert 0.65 < picks.count(describe(WinBattle())) / len(picks) < 0.85  # 1/2 + 1/2 * 1/2


def test_per_start_subgoals_shape_each_column_as_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    wm = WorldModel(TINY, ACTIONS)
    town, route = FACTS.map_id("PALLET_TOWN"), FACTS.map_id("ROUTE_1")
    maps = torch.tensor([[route, town, town, route]] * 3 + [[town, route, town, route]] * 2)
    xs = torch.tensor([[0, 7, 2, 5], [1, 7, 3, 6], [2, 6, 4, 7], [3, 6, 5, 7], [4, 6, 6, 7]])
    preds = fake_predict(maps, x=xs)
    preds["y"] = torch.tensor([[2, 4, 2, 4]] * 5)
    monkeypatch.setattr(wm, "predict", lambda feat, state=True: preds)
    behavior = Behavior(TINY, ACTIONS, config(horizon=4, gamma=0.9, shaping_bonus=2.0))
    start = starts(wm, 4)
    pairs = [TILE_TOWN, TILE_ROUTE, TILE_TOWN, TILE_ROUTE]
    goal = torch.stack([goal_tensor(sg, FACTS, 1, "cpu")[0] for sg in pairs])
    mixed = behavior.imagine(wm, start, goal, pairs, FACTS)
    for subgoal in (TILE_TOWN, TILE_ROUTE):
        alone = behavior.imagine(wm, start, goal_tensor(subgoal, FACTS, 4, "cpu"), subgoal, FACTS)
        cols = [i for i, sg in enumerate(pairs) if sg == subgoal]
        for field in ("shaping", "conts", "weights", "alive"):
            torch.testing.assert_close(
                getattr(mixed, field)[:, cols], getattr(alone, field)[:, cols]
            )
    assert mixed.shaping[:, 2].tolist() == pytest.approx(
        [0.9 * 0.925 - 0.9, 0.9 * 0.95 - 0.925, 0.9 * 0.975 - 0.95, 2.0 - 0.975]
    )
    assert mixed.shaping.abs().sum(0)[1] > 0 and mixed.conts[2, 3] == 0


# ----------------------------------------------------------------------------------------------
# Learning


TARGET = 3


def test_actor_learns_the_button_the_reward_pays_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A toy world in which the state is the last button pressed and the reward pays 1 for
    TARGET: a few dozen updates must make TARGET clearly the likeliest button."""
    wm = WorldModel(TINY, ACTIONS)

    def img_step(state: RSSMState, action: Tensor, sample: bool = True) -> RSSMState:
        deter = F.pad(action, (0, TINY.deter - ACTIONS))
        return RSSMState(deter, state.stoch, state.logits)

    def predict(feat: Tensor, state: bool = True) -> dict[str, Tensor]:
        maps = torch.zeros(feat.shape[:-1], dtype=torch.int64)
        return fake_predict(maps, reward=feat[..., TARGET].clone())

    monkeypatch.setattr(wm.rssm, "img_step", img_step)
    monkeypatch.setattr(wm, "predict", predict)
    cfg = config(horizon=5, actor_lr=1e-3, critic_lr=1e-3)
    behavior = Behavior(TINY, ACTIONS, cfg)
    b = 64
    start = starts(wm, b)
    goal = goal_tensor(None, None, b, "cpu")

    def target_prob() -> float:
        with torch.no_grad():
            return behavior.actor(wm.rssm.feat(start), goal)[:, TARGET].exp().mean().item()

    before = target_prob()
    # ~0.14, 0.19, 0.28, 0.42, 0.62, 0.79 every 10 updates over seeds 0-4: 60 updates leave
    # a wide margin over the bar below.
    for _ in range(60):
        metrics = behavior.imagine_and_train(wm, start, goal, None, None)
    after = target_prob()
    assert before == pytest.approx(1 / ACTIONS, abs=0.02)
    assert after > 0.6, (before, after, metrics)


# ----------------------------------------------------------------------------------------------
# Acting


def test_policy_step_batches_envs_and_resets_on_is_first() -> None:
    wm = WorldModel(TINY, ACTIONS)
    behavior = Behavior(TINY, ACTIONS, config())
    b = 3
    frames = torch.randint(0, 4, (b, *FRAME_SHAPE), dtype=torch.uint8)
    vectors = torch.rand(b, VECTOR_SIZE)
    goal = goal_tensor(SUBGOAL, FACTS, b, "cpu")
    action = torch.zeros(b, dtype=torch.int64)
    first = torch.ones(b, dtype=torch.bool)

    state = wm.rssm.initial(b)
    actions, state = behavior.policy_step(wm, state, action, frames, vectors, first, goal)
    assert actions.shape == (b,) and actions.dtype == torch.int64
    assert ((actions >= 0) & (actions < ACTIONS)).all()
    assert state.deter.shape == (b, TINY.deter)
    assert state.stoch.shape == (b, TINY.stoch, TINY.classes)
    assert not state.deter.requires_grad

    # A reset ignores whatever state came in: from a garbage state and from the initial one,
    # with the same noise, the reset rows come out the same and the kept row differs.
    garbage = state.map(lambda x: torch.randn_like(x) * 5)
    mixed = torch.tensor([True, False, True])
    torch.manual_seed(1)
    a1, s1 = behavior.policy_step(wm, garbage, actions, frames, vectors, mixed, goal)
    torch.manual_seed(1)
    a2, s2 = behavior.policy_step(wm, wm.rssm.initial(b), actions, frames, vectors, mixed, goal)
    assert torch.equal(s1.deter[mixed], s2.deter[mixed])
    assert torch.equal(a1[mixed], a2[mixed])
    assert not torch.equal(s1.deter[1], s2.deter[1])

    # sample=False takes the policy's mode: only the filter's latent sample is random.
    torch.manual_seed(2)
    m1, p1 = behavior.policy_step(wm, state, actions, frames, vectors, first, goal, sample=False)
    torch.manual_seed(2)
    m2, p2 = behavior.policy_step(wm, state, actions, frames, vectors, first, goal, sample=False)
    assert torch.equal(p1.stoch, p2.stoch) and torch.equal(m1, m2)
    modes = behavior.actor(wm.rssm.feat(p1), goal).argmax(-1)
    assert torch.equal(m1, modes)


def test_goal_tensor_is_the_subgoal_encoding() -> None:
    zeros = goal_tensor(None, None, 2, "cpu")
    assert zeros.shape == (2, GOAL_ENCODING_SIZE) and not zeros.any()
    goal = goal_tensor(SUBGOAL, FACTS, 2, "cpu")
    assert goal.shape == (2, GOAL_ENCODING_SIZE) and torch.equal(goal[0], goal[1])
    assert goal.any()


# ----------------------------------------------------------------------------------------------
# Checkpoints and settings


def test_checkpoint_round_trip_resumes_exactly(tmp_path: Path) -> None:
    wm = WorldModel(TINY, ACTIONS)
    torch.nn.init.normal_(wm.reward_head[-1].weight, std=0.5)
    cfg = config(horizon=4)
    behavior = Behavior(TINY, ACTIONS, cfg)
    start = starts(wm, 4)
    goal = goal_tensor(SUBGOAL, FACTS, 4, "cpu")
    behavior.imagine_and_train(wm, start, goal, SUBGOAL, FACTS)

    tensors, meta = behavior.state_tensors()
    save_checkpoint(tmp_path / "ac-1", tensors, meta)
    loaded, loaded_meta = load_checkpoint(tmp_path / "ac-1")
    resumed = Behavior(TINY, ACTIONS, cfg)
    resumed.load_state_tensors(loaded, loaded_meta)
    assert resumed.updates == 1

    imag = behavior.imagine(wm, start, goal, SUBGOAL, FACTS)
    behavior.train_on(imag)
    resumed.train_on(imag)
    pairs = zip(behavior.state_dict().items(), resumed.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        assert torch.equal(a, b), name


def test_a_behaviour_checkpoint_records_its_returns() -> None:
    """A checkpoint says which imagined returns its critic learnt; the checkpointer tells a run
    that trains from an older one (tests/test_checkpoint.py, through the CLI)."""
    _, meta = Behavior(TINY, ACTIONS, config()).state_tensors()
    assert meta["returns"] == RETURNS == 2
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))["meta"]["behavior"]
    assert "returns" not in shipped  # trained before: shaping paid gamma*phi at done


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="horizon"):
        config(horizon=0)
    with pytest.raises(ValueError, match="critic_bins"):
        config(critic_bins=254)
    with pytest.raises(ValueError, match="return_norm_percentiles"):
        config(return_norm_percentiles=(95.0, 5.0))


def test_the_goal_in_bits_tells_maps_and_tiles_apart_by_whole_inputs() -> None:
    gym, home = GoToMap(map="PEWTER_GYM"), GoToMap(map="REDS_HOUSE_1F")  # ids 54 and 37
    tile = GoToTile(map="PEWTER_GYM", x=4, y=2)
    rows = [goal_tensor(g, FACTS, 1, "cpu") for g in (gym, home, tile)]
    rows.append(torch.zeros(1, GOAL_ENCODING_SIZE))  # no subgoal
    behavior = Behavior(TINY, 8, AgentSettings(goal_code="bits"))
    assert goal_width("bits") == GOAL_ENCODING_SIZE + 24 and goal_width("scalar") == 28
    first = behavior.actor.net[0]
    assert isinstance(first, torch.nn.Linear)
    assert first.in_features == TINY.feat_size + GOAL_ENCODING_SIZE + 24
    seen = []
    first.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0][0, TINY.feat_size :]))
    for row in rows:
        behavior.actor(torch.zeros(1, TINY.feat_size), row)
    bits = [s[GOAL_ENCODING_SIZE:].tolist() for s in seen]
    assert bits[0] == [0, 1, 1, 0, 1, 1, 0, 0] + [0] * 16  # 54, lowest digit first
    assert bits[1] == [1, 0, 1, 0, 0, 1, 0, 0] + [0] * 16  # 37
    assert bits[2] == bits[0][:8] + [0, 0, 1, 0, 0, 0, 0, 0] + [0, 1, 0, 0, 0, 0, 0, 0]
    assert bits[3] == [0] * 24
    assert all(torch.equal(s[:GOAL_ENCODING_SIZE], r[0]) for s, r in zip(seen, rows, strict=True))
    # Saved with the code it reads, refused by a behaviour of the other.
    tensors, meta = behavior.state_tensors()
    assert meta["settings"]["goal_code"] == "bits"
    with pytest.raises(UserError, match="goal_code 'bits', not 'scalar'"):
        Behavior(TINY, 8, AgentSettings()).load_state_tensors(tensors, meta, source="saved")
    Behavior(TINY, 8, AgentSettings(goal_code="bits")).load_state_tensors(tensors, meta)


def test_the_shipped_checkpoint_was_trained_with_the_settings_it_saved() -> None:
    """The behaviour's hyper-parameters are the agent settings alone: the settings saved in
    the shipped checkpoint, read back, give exactly the behaviour settings it recorded."""
    meta = json.loads(SHIPPED.read_text(encoding="utf-8"))["meta"]
    settings = Settings.model_validate(meta["settings"])
    behavior = Behavior(TINY, settings.env.num_actions, settings.agent)
    _, recorded = behavior.state_tensors()
    saved = meta["behavior"]["settings"]
    # goal_input, goal_code and cut_leaps are recorded since the settings exist; a checkpoint
    # without them saw subgoals, as bytes / 255, and its imagination ran past leaps (the
    # default now cuts them: a resumed shipped run would learn so).
    assert set(recorded["settings"]) - set(saved) == {"goal_input", "goal_code", "cut_leaps"}
    assert recorded["settings"] == {
        **saved,
        "goal_input": True,
        "goal_code": "scalar",
        "cut_leaps": True,
    }
    assert list(recorded["settings"]) == list(RECORDED_SETTINGS)

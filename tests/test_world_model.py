"""The world model on the tiny preset: shapes, resets, distributions, gradients, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_setup import one_thread, seeded  # noqa: F401 (autouse fixtures)

from pokedreamer.agent.behavior import Behavior, goal_tensor
from pokedreamer.config import AgentSettings, WorldModelSettings
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE, GameState, PartyMon
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GoToTile
from pokedreamer.world_model.dist import (
    categorical_st_sample,
    free_bits,
    kl_categorical,
    symexp,
    symlog,
    twohot,
    twohot_loss,
    twohot_mean,
    unimix_logits,
)
from pokedreamer.world_model.heads import (
    ANY_BYTE,
    BATTLE_ORDER,
    ENEMY_HP_BINS,
    STATE_HEADS,
    StateHeads,
    StateRanges,
)
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.nets import downsample
from pokedreamer.world_model.presets import PRESETS, Preset
from pokedreamer.world_model.rssm import RSSM, RSSMState

TINY = PRESETS["tiny"]
ACTIONS = 9


def structured_batch(b: int = 4, t: int = 8, seed: int = 0) -> dict[str, Tensor]:
    """Sequences of a small world the model can learn: a dark 16x20 block on a light screen
    moves on a 9x8 grid by the action (0 up, 1 down, 2 left, 3 right, others stay); the
    GameState vector carries its tile, a text line shows every third step, moving right earns
    1. Row 0 restarts at t = 4 (episode boundary) after a terminal step."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((b, t, 144, 160), np.uint8)
    states = np.zeros((b, t, VECTOR_SIZE), np.float32)
    actions = rng.integers(0, ACTIONS, (b, t))
    rewards = np.zeros((b, t), np.float32)
    is_first = np.zeros((b, t), bool)
    is_terminal = np.zeros((b, t), bool)
    is_first[:, 0] = True
    if t > 4:
        is_first[0, 4] = is_terminal[0, 3] = True
    col = {name: VECTOR_FIELDS.index(name) for name in VECTOR_FIELDS}
    moves = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
    for i in range(b):
        y = x = 0
        for s in range(t):
            if is_first[i, s]:
                y, x = int(rng.integers(0, 9)), int(rng.integers(0, 8))
                actions[i, s] = 0
            else:
                dy, dx = moves.get(int(actions[i, s]), (0, 0))
                rewards[i, s] = float(dx > 0 and x < 7)
                y, x = min(max(y + dy, 0), 8), min(max(x + dx, 0), 7)
            frames[i, s, y * 16 : y * 16 + 16, x * 20 : x * 20 + 20] = 3
            text = s % 3 == 0
            if text:
                frames[i, s, 138, 8:152:2] = 3  # a 1-px stroke, like text
            v = states[i, s]
            v[col["map_id"]], v[col["x"]], v[col["y"]] = 37 / 255, x / 255, y / 255
            v[col["battle_none"]] = 1.0
            v[col["text_shown"]] = float(text)
            v[col["hp_fraction"]] = 0.75
            v[col["badge_boulder"]] = 1.0
    batch = {
        "frames": frames,
        "states": states,
        "actions": actions,
        "rewards": rewards,
        "is_first": is_first,
        "is_terminal": is_terminal,
    }
    return {k: torch.from_numpy(v) for k, v in batch.items()}


def random_state(rssm: RSSM, b: int) -> RSSMState:
    p = rssm.preset
    stoch = F.one_hot(torch.randint(0, p.classes, (b, p.stoch)), p.classes).float()
    return RSSMState(torch.randn(b, p.deter), stoch, torch.randn(b, p.stoch, p.classes))


def random_policy(feat: Tensor) -> Tensor:
    return F.one_hot(torch.randint(0, ACTIONS, feat.shape[:1]), ACTIONS).float()


def assert_states_close(a: RSSMState, b: RSSMState) -> None:
    for name, x, y in zip(RSSMState._fields, a, b, strict=True):
        torch.testing.assert_close(x, y, msg=lambda m, name=name: f"{name}: {m}")


# -- presets and screens ------------------------------------------------------------------------


def test_presets() -> None:
    assert list(PRESETS) == ["tiny", "mini", "small", "base", "large"]
    assert [p.stages for p in PRESETS.values()] == [2, 2, 3, 4, 4]
    assert [p.pool for p in PRESETS.values()] == [4, 4, 2, 1, 1]
    base = PRESETS["base"]
    assert (base.deter, base.stoch, base.classes, base.feat_size) == (512, 32, 32, 1536)
    for hw in [(48, 40), (100, 100), (9, 10)]:
        with pytest.raises(ValueError, match="144x160"):
            Preset("bad", hw, 8, 64, 8, 8, 64, 1, 63)
    with pytest.raises(ValueError, match="odd"):
        Preset("bad", (36, 40), 8, 64, 8, 8, 64, 1, 64)


def test_downsample_keeps_thin_dark_strokes() -> None:
    frames = torch.zeros(2, 3, 144, 160, dtype=torch.uint8)
    frames[..., 137, :] = 3  # one 1-px row
    frames[..., :, 5] = 2  # one 1-px column, lighter
    small = downsample(frames, TINY.image_hw)
    assert small.dtype == torch.uint8 and small.shape == (2, 3, 36, 40)
    assert (small[..., 137 // 4, :] == 3).all()
    assert (small[..., :, 5 // 4].tolist()[0][0][:3]) == [2, 2, 2]
    assert small.max() == 3 and set(small.unique().tolist()) == {0, 2, 3}
    native = torch.randint(0, 4, (144, 160), dtype=torch.uint8)
    assert downsample(native, (144, 160)) is native


# -- distributions ------------------------------------------------------------------------------


def test_symlog_symexp_are_inverse() -> None:
    x = torch.tensor([-1e6, -50.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 7.0, 1e6])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-5, atol=1e-6)
    assert symlog(torch.tensor(0.0)) == 0.0


def test_twohot_round_trip() -> None:
    x = torch.tensor([-1000.0, -3.5, -0.2, 0.0, 0.7, 1.0, 12.0, 5000.0])
    for bins in (63, 255):
        code = twohot(x, bins)
        assert code.shape == (len(x), bins)
        torch.testing.assert_close(code.sum(-1), torch.ones(len(x)))
        assert ((code > 0).sum(-1) <= 2).all()
        # The encoding's own distribution (log of it as logits) has mean x.
        torch.testing.assert_close(twohot_mean(code.log()), x, rtol=1e-4, atol=1e-5)
    # Zero is a bin of its own, so a zero reward is one-hot.
    assert twohot(torch.tensor(0.0), 255).max() == 1.0
    # Beyond the range values clip to the end bins.
    assert twohot(torch.tensor(1e30), 63)[-1] == 1.0
    # The loss is smallest for the logits of the target itself.
    logits = twohot(torch.tensor([3.0]), 63).clamp_min(1e-6).log()
    assert twohot_loss(logits, torch.tensor([3.0])) < twohot_loss(logits, torch.tensor([-3.0]))


def test_free_bits_clip_small_kl_to_a_constant() -> None:
    kl = torch.tensor([0.3, 0.99, 1.5, 4.0], requires_grad=True)
    clipped = free_bits(kl, 1.0)
    assert clipped.tolist() == [1.0, 1.0, 1.5, 4.0]
    clipped.sum().backward()
    assert kl.grad is not None and kl.grad.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_kl_categorical_matches_torch() -> None:
    post, prior = torch.randn(5, 8, 8), torch.randn(5, 8, 8)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=post), torch.distributions.Categorical(logits=prior)
    ).sum(-1)
    torch.testing.assert_close(kl_categorical(post, prior), ref)
    torch.testing.assert_close(kl_categorical(post, post + 3.0), torch.zeros(5), atol=1e-6, rtol=0)


@pytest.mark.parametrize("unimix", [0.0, 0.3])
def test_gumbel_max_frequencies_match_probs(unimix: float) -> None:
    probs = torch.tensor([0.6, 0.3, 0.08, 0.02])
    n = 40_000
    with torch.no_grad():
        samples = categorical_st_sample(probs.log().expand(n, 4), unimix)
    assert samples.shape == (n, 4) and (samples.sum(-1) == 1).all()
    assert set(samples.unique().tolist()) == {0.0, 1.0}
    expected = (1 - unimix) * probs + unimix / 4
    # Four standard errors of a frequency with n draws is < 0.01.
    torch.testing.assert_close(samples.mean(0), expected, atol=0.01, rtol=0)
    torch.testing.assert_close(unimix_logits(probs.log(), unimix).exp(), expected)
    mode = categorical_st_sample(probs.log().expand(3, 4), unimix, sample=False)
    assert mode.argmax(-1).tolist() == [0, 0, 0]


def test_straight_through_sample_is_one_hot_with_gradient() -> None:
    logits = torch.randn(16, 4, 5, requires_grad=True)
    sample = categorical_st_sample(logits, 0.01)
    torch.testing.assert_close(sample.detach(), F.one_hot(sample.argmax(-1), 5).float())
    (sample * torch.randn(16, 4, 5)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


# -- RSSM ---------------------------------------------------------------------------------------


def test_observe_imagine_decode_shapes() -> None:
    wm = WorldModel(TINY, ACTIONS)
    batch = structured_batch(b=3, t=5)
    p = TINY
    embeds = wm.embed(batch["frames"], batch["states"])
    assert embeds.shape == (3, 5, p.embed_size)
    posts, priors = wm.rssm.observe(embeds, batch["actions"], batch["is_first"])
    for states in (posts, priors):
        assert states.deter.shape == (3, 5, p.deter)
        assert states.stoch.shape == states.logits.shape == (3, 5, p.stoch, p.classes)
    assert (posts.stoch.sum(-1) == 1).all()
    feat = wm.rssm.feat(posts)
    assert feat.shape == (3, 5, p.feat_size)
    assert wm.decode(feat).shape == (3, 5, 4, *p.image_hw)

    starts = posts.flatten()
    assert starts.deter.shape == (15, p.deter)
    with torch.no_grad():
        imagined, actions = wm.rssm.imagine(starts, random_policy, horizon=6)
    assert imagined.deter.shape == (6, 15, p.deter)
    assert imagined.stoch.shape == (6, 15, p.stoch, p.classes)
    assert actions.shape == (6, 15, ACTIONS)
    preds = wm.predict(wm.rssm.feat(imagined))
    assert set(preds) == {"reward", "cont", *STATE_HEADS}
    for name in set(preds) - {"badges"}:
        assert preds[name].shape == (6, 15), name
    assert preds["badges"].shape == (6, 15, 8)
    assert preds["map_id"].dtype == torch.int64
    assert (preds["reward"] == 0).all()  # zero-initialised output layer


def test_imagine_follows_the_policy() -> None:
    rssm = RSSM(TINY, ACTIONS)
    start = random_state(rssm, 4)
    seen: list[Tensor] = []

    def policy(feat: Tensor) -> Tensor:
        seen.append(feat)
        return F.one_hot(torch.full((4,), 2), ACTIONS).float()

    with torch.no_grad():
        states, actions = rssm.imagine(start, policy, horizon=3, sample=False)
        expected = rssm.img_step(start, actions[0], sample=False)
    assert len(seen) == 3
    torch.testing.assert_close(seen[0], rssm.feat(start))  # the first action is chosen at start
    torch.testing.assert_close(seen[1], rssm.feat(states.map(lambda x: x[0])))
    assert (actions.argmax(-1) == 2).all()
    assert_states_close(states.map(lambda x: x[0]), expected)


def test_state_resets_at_episode_start() -> None:
    rssm = RSSM(TINY, ACTIONS)
    b, t, cut = 2, 7, 3
    embeds = torch.randn(b, t, TINY.embed_size)
    actions = torch.randint(0, ACTIONS, (b, t))
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[0, cut] = True  # row 0 starts a new episode mid-sequence; row 1 goes on

    with torch.no_grad():
        posts, priors = rssm.observe(embeds, actions, is_first, sample=False)
        fresh_first = torch.zeros(b, t - cut, dtype=torch.bool)
        fresh_first[:, 0] = True
        fresh_posts, fresh_priors = rssm.observe(
            embeds[:, cut:], actions[:, cut:], fresh_first, sample=False
        )
        # Neither a carried-in state nor the action at an episode's first step matters.
        other_actions = actions.clone()
        other_actions[:, 0] = (actions[:, 0] + 1) % ACTIONS
        start = random_state(rssm, b)
        carried, _ = rssm.observe(embeds, other_actions, is_first, start=start, sample=False)
        diverged = start.map(lambda x: torch.full_like(x, float("nan")))
        after_nan, _ = rssm.observe(embeds, actions, is_first, start=diverged, sample=False)

    def after_cut(s: RSSMState, row: int) -> RSSMState:
        return s.map(lambda x: x[row, cut:])

    def fresh(s: RSSMState, row: int) -> RSSMState:
        return s.map(lambda x: x[row])

    assert_states_close(after_cut(posts, 0), fresh(fresh_posts, 0))
    assert_states_close(after_cut(priors, 0), fresh(fresh_priors, 0))
    assert_states_close(carried, posts)
    assert_states_close(after_nan, posts)
    # Row 1 was not reset, so its history still shows.
    assert not torch.allclose(posts.deter[1, cut:], fresh_posts.deter[1])


def test_reset_with_sampling_starts_from_the_same_state() -> None:
    rssm = RSSM(TINY, ACTIONS)
    embeds = torch.randn(2, 1, TINY.embed_size)
    actions = torch.randint(0, ACTIONS, (2, 1))
    is_first = torch.ones(2, 1, dtype=torch.bool)
    with torch.no_grad():
        a, _ = rssm.observe(embeds, actions, is_first, start=random_state(rssm, 2))
        b, _ = rssm.observe(embeds, actions, is_first)
    # deter and the distributions are deterministic; only the drawn latents differ.
    torch.testing.assert_close(a.deter, b.deter)
    torch.testing.assert_close(a.logits, b.logits)


# -- heads --------------------------------------------------------------------------------------


def game_state(**changes: object) -> GameState:
    fields: dict[str, object] = dict(
        map_id=0x28, map_name="OAKS_LAB", x=5, y=11, facing="up", battle="trainer",
        enemy_hp=10, enemy_max_hp=20, text_shown=True, text=("HI",),
        party=(PartyMon(0xB1, 5, 15, 20), PartyMon(0x99, 3, 0, 10)),
        badges=0b1000_0101, money=3000, event_flags=bytes(320), pokedex_owned=1,
        pokedex_seen=2, bag=(),
    )  # fmt: skip
    fields.update(changes)
    return GameState(**fields)  # type: ignore[arg-type]


FIXTURE_RANGES = StateRanges.of_maps(GameFacts.fixture().maps.values())


def test_state_targets_read_the_game_state_vector() -> None:
    state = game_state()
    heads = StateHeads(8, 8, 1)
    targets = heads.targets(torch.from_numpy(state.vector()))
    assert targets["map_id"].item() == 0x28  # under ANY_BYTE every byte is its own class
    assert (targets["x"].item(), targets["y"].item()) == (5, 11)
    assert BATTLE_ORDER[targets["battle"].item()] == "trainer"
    assert targets["text_shown"].tolist() == [1.0]
    assert targets["hp_fraction"].tolist() == pytest.approx([15 / 30])
    assert targets["badges"].tolist() == [1, 0, 1, 0, 0, 0, 0, 1]
    assert targets["enemy_hp_fraction"].item() == ENEMY_HP_BINS // 2  # 10 / 20: (0.45, 0.5]
    for name in STATE_HEADS:
        if heads.kinds[name] == "categorical":
            assert targets[name].dtype == torch.int64 and targets[name].shape == ()
        else:
            assert targets[name].shape == (heads.sizes[name],)


def confident(heads: StateHeads, targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """Logits that put all their mass on the targets."""
    outputs = {}
    for name in STATE_HEADS:
        if heads.kinds[name] == "categorical":
            outputs[name] = F.one_hot(targets[name], heads.sizes[name]).float() * 50
        else:
            outputs[name] = (targets[name] - 0.5) * 100
    return outputs


def test_predicted_state_gives_game_state_values() -> None:
    state = game_state(map_id=0xF7, x=255, y=0, battle="none", text_shown=False, text=())
    heads = StateHeads(8, 8, 1)
    targets = heads.targets(torch.from_numpy(np.stack([state.vector()] * 3)))
    preds = heads.predicted(confident(heads, targets))
    assert preds["map_id"].tolist() == [state.map_id] * 3
    assert preds["x"].tolist() == [255] * 3 and preds["y"].tolist() == [0] * 3
    assert [BATTLE_ORDER[i] for i in preds["battle"].tolist()] == [state.battle] * 3
    assert preds["text_shown"].tolist() == pytest.approx([0.0] * 3, abs=1e-6)
    assert preds["badges"].shape == (3, 8)
    assert (preds["badges"].round() == targets["badges"]).all()


def test_state_heads_are_sized_to_the_game() -> None:
    """The fixture's four 10x10 maps: 5 map classes (one for "elsewhere"), 11 for x and y (one
    for "off every map"), not a class per byte."""
    assert StateRanges((0x00, 0x0C, 0x25, 0x36), 10, 10) == FIXTURE_RANGES
    heads = StateHeads(TINY.feat_size, TINY.hidden, TINY.mlp_layers, FIXTURE_RANGES)
    assert {n: heads.sizes[n] for n in ("map_id", "x", "y")} == {"map_id": 5, "x": 11, "y": 11}
    outputs = sum(heads.sizes.values())
    assert outputs == 5 + 11 + 11 + 4 + 1 + 1 + 8 + ENEMY_HP_BINS + 1
    assert heads.mlp[-1].out_features == outputs
    byte_heads = StateHeads(TINY.feat_size, TINY.hidden, TINY.mlp_layers, ANY_BYTE)
    assert byte_heads.mlp[-1].out_features == outputs + 252 + 2 * 246  # 257 each, not 5/11/11
    wm = WorldModel(TINY, ACTIONS, ranges=FIXTURE_RANGES)
    assert wm.state_heads.state_ranges == FIXTURE_RANGES


@pytest.mark.parametrize(
    ("map_id", "x", "y", "expected"),
    [
        (0x25, 3, 9, (0x25, 3, 9)),  # REDS_HOUSE_1F: the game's own values come back
        (0x36, 0, 0, (0x36, 0, 0)),
        (0x33, 3, 4, (-1, 3, 4)),  # a map the game lacks reads as unknown
        (0x0C, 10, 255, (0x0C, -1, -1)),  # past every map's edge, likewise
    ],
)
def test_sized_heads_round_trip_the_game_values(
    map_id: int, x: int, y: int, expected: tuple[int, int, int]
) -> None:
    heads = StateHeads(8, 8, 1, FIXTURE_RANGES)
    vector = torch.from_numpy(game_state(map_id=map_id, x=x, y=y).vector())
    preds = heads.predicted(confident(heads, heads.targets(vector)))
    assert (preds["map_id"].item(), preds["x"].item(), preds["y"].item()) == expected


@pytest.mark.parametrize("enemy_hp", [0, 1, 7, 10, 13, 20])
def test_enemy_hp_head_gives_the_fraction_to_its_resolution(enemy_hp: int) -> None:
    """A head trusted to its mode gives the enemy's HP fraction within 1/20, and a fainted
    enemy exactly 0 (what win_battle's done reads)."""
    heads = StateHeads(8, 8, 1, FIXTURE_RANGES)
    state = game_state(battle="wild", enemy_hp=enemy_hp, enemy_max_hp=20)
    preds = heads.predicted(confident(heads, heads.targets(torch.from_numpy(state.vector()))))
    fraction = preds["enemy_hp_fraction"].item()
    assert fraction == pytest.approx(enemy_hp / 20, abs=1 / ENEMY_HP_BINS)
    assert (fraction == 0.0) == (enemy_hp == 0)


def train_enemy_head(
    heads: StateHeads, feat: Tensor, targets: dict[str, Tensor], updates: int
) -> None:
    """Adam on the enemy-HP head's loss alone."""
    opt = torch.optim.Adam(heads.parameters(), lr=1e-2)
    for _ in range(updates):
        loss = heads.losses(heads(feat), targets)["enemy_hp_fraction"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_enemy_hp_head_learns_from_the_state_vector() -> None:
    """Trained on feat that encodes the enemy's HP, the head's prediction follows it."""
    torch.manual_seed(0)
    heads = StateHeads(5, 32, 1, FIXTURE_RANGES)
    hp = torch.tensor([0, 4, 10, 16, 20])
    vectors = torch.stack(
        [torch.from_numpy(game_state(battle="wild", enemy_hp=int(h)).vector()) for h in hp]
    )
    feat = torch.eye(5)
    targets = heads.targets(vectors)
    train_enemy_head(heads, feat, targets, 300)
    preds = heads.predicted(heads(feat))["enemy_hp_fraction"]
    assert preds.tolist() == pytest.approx((hp / 20).tolist(), abs=1 / ENEMY_HP_BINS)


@pytest.mark.parametrize(("fainted", "expected"), [(0.3, 0.975), (0.49, 0.975), (0.6, 0.0)])
def test_a_predicted_faint_must_be_likelier_than_not(fainted: float, expected: float) -> None:
    """The fainted class as the mode of a spread head (here 30% or 49%, the rest over the
    other bins, most on full HP) is not a faint: win_battle would be done without a blow."""
    heads = StateHeads(8, 8, 1, FIXTURE_RANGES)
    outputs = confident(heads, heads.targets(torch.from_numpy(game_state(battle="wild").vector())))
    probs = torch.full((ENEMY_HP_BINS + 1,), (1 - fainted - 0.2) / (ENEMY_HP_BINS - 1))
    probs[0], probs[ENEMY_HP_BINS] = fainted, 0.2
    outputs["enemy_hp_fraction"] = probs.log()
    assert heads.predicted(outputs)["enemy_hp_fraction"].item() == pytest.approx(expected)


def test_enemy_hp_head_is_not_taught_fainted_by_a_battle_ending() -> None:
    """Where one latent is a wild battle at full HP as often as it is the overworld after it
    (a battle the model doubts will go on), the head reads full HP, not a fainted enemy: its
    loss counts only steps in a battle."""
    torch.manual_seed(0)
    heads = StateHeads(1, 16, 1, FIXTURE_RANGES)
    fighting = game_state(battle="wild", enemy_hp=20, enemy_max_hp=20).vector()
    after = game_state(battle="none").vector()
    targets = heads.targets(torch.from_numpy(np.stack([fighting, after, after])))
    feat = torch.ones(3, 1)
    assert heads.losses(heads(feat), targets)["enemy_hp_fraction"][1:].eq(0).all()
    train_enemy_head(heads, feat, targets, 200)
    assert heads.predicted(heads(feat[:1]))["enemy_hp_fraction"].item() > 0.9


# -- training -----------------------------------------------------------------------------------


def test_loss_metrics_and_last_posterior() -> None:
    wm = WorldModel(TINY, ACTIONS)
    batch = structured_batch()
    loss, metrics, posts = wm.loss(batch)
    last = posts.map(lambda x: x[:, -1])
    assert loss.shape == () and math.isfinite(loss.item())
    for key in ("image_loss", "image_acc", "reward_loss", "cont_loss", "state_loss", "kl_loss",
                "kl", "post_entropy", "prior_entropy", "map_id_loss", "badges_loss"):  # fmt: skip
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    assert 0.0 <= metrics["image_acc"] <= 1.0
    # Free bits: at init every step's KL is clipped, so the KL term is dyn + rep scale.
    assert metrics["kl_loss"] >= 0.5 + 0.1 - 1e-6
    assert last.deter.shape == (4, TINY.deter) and not last.deter.requires_grad
    # The last posterior carries on into the next chunk.
    loss2, _, _ = wm.loss(structured_batch(seed=1), start=last)
    assert math.isfinite(loss2.item())

    balanced = WorldModel(TINY, ACTIONS, WorldModelSettings(kl_balance=0.8))
    balanced.load_state_dict(wm.state_dict())
    _, b_metrics, _ = balanced.loss(batch)
    assert b_metrics["kl_loss"] >= 1.0 - 1e-6  # 0.8 * max(1, dyn) + 0.2 * max(1, rep)


def test_straight_through_gradients_reach_the_encoder() -> None:
    wm = WorldModel(TINY, ACTIONS)
    batch = structured_batch(b=2, t=4)
    # Only the image loss: the encoder's sole path to it is through the sampled latents.
    embeds = wm.embed(batch["frames"], batch["states"])
    posts, _ = wm.rssm.observe(embeds, batch["actions"], batch["is_first"])
    logits = wm.decode(wm.rssm.feat(posts))
    target = wm.shades(batch["frames"]).long()
    F.cross_entropy(logits.flatten(0, 1), target.flatten(0, 1)).backward()
    first_conv = wm.encoder.convs[0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0

    wm.zero_grad()
    loss, _, _ = wm.loss(batch)
    loss.backward()
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    missing = [n for n, p in wm.named_parameters() if p.grad is None]
    assert missing == []


def test_a_few_steps_overfit_a_fixed_batch() -> None:
    wm = WorldModel(TINY, ACTIONS)
    batch = structured_batch()
    opt = torch.optim.Adam(wm.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        loss, metrics, _ = wm.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(metrics)
    first, last = history[0], history[-1]
    assert last["loss"] < 0.5 * first["loss"], (first["loss"], last["loss"])
    assert last["image_acc"] > 0.95 > first["image_acc"]
    assert last["state_loss"] < 0.5 * first["state_loss"]
    assert last["reward_loss"] < first["reward_loss"]


def test_observe_step_filters_like_observe() -> None:
    wm = WorldModel(TINY, ACTIONS)
    batch = structured_batch(b=2, t=6)
    with torch.no_grad():
        embeds = wm.embed(batch["frames"], batch["states"])
        posts, _ = wm.rssm.observe(embeds, batch["actions"], batch["is_first"], sample=False)
        state = wm.rssm.initial(2)
        for t in range(6):
            state = wm.observe_step(
                state,
                batch["actions"][:, t],
                batch["frames"][:, t],
                batch["states"][:, t],
                batch["is_first"][:, t],
                sample=False,
            )
    assert_states_close(state, posts.map(lambda x: x[:, -1]))


def test_runs_under_bf16_autocast() -> None:
    wm = WorldModel(TINY, ACTIONS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, metrics, posts = wm.loss(structured_batch(b=2, t=4))
        last = posts.map(lambda x: x[:, -1])
        loss.backward()
        with torch.no_grad():
            states, _ = wm.rssm.imagine(last, random_policy, horizon=3)
            preds = wm.predict(wm.rssm.feat(states))
    assert math.isfinite(loss.item()) and math.isfinite(metrics["kl"])
    assert preds["reward"].dtype == torch.float32
    assert wm.encoder.convs[0].weight.grad is not None


def test_imagination_without_a_subgoal_skips_the_state_heads() -> None:
    facts = GameFacts.fixture()
    wm = WorldModel(TINY, ACTIONS, ranges=FIXTURE_RANGES)
    calls: list[int] = []
    wm.state_heads.register_forward_hook(lambda *_: calls.append(1))
    behavior = Behavior(TINY, ACTIONS, AgentSettings(horizon=3))
    start = wm.rssm.initial(4)
    imag = behavior.imagine(wm, start, goal_tensor(None, None, 4, "cpu"), None, None)
    assert calls == [] and imag.rewards.shape == (3, 4)
    assert wm.predict(wm.rssm.feat(start), state=False).keys() == {"reward", "cont"}
    subgoal = GoToTile(map="PALLET_TOWN", x=3, y=4)
    behavior.imagine(wm, start, goal_tensor(subgoal, facts, 4, "cpu"), subgoal, facts)
    assert calls == [1]

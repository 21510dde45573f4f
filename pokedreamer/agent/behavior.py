"""System 1's behaviour: a subgoal-conditioned actor-critic trained inside the world model's
imagination (DreamerV3), with System 2's subgoal shaping the imagined rewards.

One update: from replayed posteriors, roll the world model's prior forward `horizon` steps under
the actor; read each imagined step's reward, continuation and GameState from the model's heads;
add each start's subgoal's potential shaping (and its completion bonus, once) on the predicted
states; form lambda-returns bootstrapped from the slow critic; train the actor by REINFORCE on
percentile-normalised advantages, the critic by twohot regression on the returns.

Gradients: the rollout runs under no_grad, so the world model gets none; the actor's only
gradient is log pi(a_t | sg(s_t)) times a stop-gradient advantage (buttons are discrete: no
reparameterised path worth the world model's gradients). Hyper-parameters: the agent settings
(pokedreamer.config.AgentSettings); networks, lambda-returns, return scale: agent.actor_critic.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

from pokedreamer.agent.actor_critic import (
    Actor,
    Critic,
    ReturnNorm,
    check_goal_code,
    check_goal_input,
    lambda_return,
)
from pokedreamer.agent.leaps import leaps
from pokedreamer.agent.shaping import subgoal_shaping
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.env.tiles import GRID_HW
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import (
    GOAL_ENCODING_SIZE,
    Subgoal,
    encode,
)
from pokedreamer.world_model import distributed as ddp
from pokedreamer.world_model.checkpoint import (
    module_tensors,
    optimizer_tensors,
    restore_module,
    restore_optimizer,
)
from pokedreamer.world_model.dist import categorical_st_sample, twohot_loss, twohot_mean
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.presets import Preset
from pokedreamer.world_model.rssm import RSSMState

if TYPE_CHECKING:
    from pokedreamer.config import AgentSettings


RETURNS = 2
"""The imagined returns' version a behaviour checkpoint records: 2 is shaping under the returns'
discount with phi(done) = 0 and a return scale of weighted returns only."""

# The agent settings a behaviour checkpoint records, in the order it records them: those that
# decide the actor-critic's updates (the loop's own settings are saved beside them).
RECORDED_SETTINGS = (
    "horizon", "gamma", "lam", "entropy", "actor_lr", "critic_lr", "adam_eps",
    "slow_critic_decay", "slow_critic_reg", "return_norm_percentiles", "return_norm_decay",
    "shaping_bonus", "shaping_scale", "grad_clip", "critic_bins", "unimix", "actor_out_scale",
    "goal_input", "goal_code", "cut_leaps",
)  # fmt: skip


def goal_tensor(
    subgoal: Subgoal | None, facts: GameFacts | None, batch: int, device: torch.device | str
) -> Tensor:
    """encode(subgoal) repeated over a batch: float32 (batch, GOAL_ENCODING_SIZE), zeros for no
    subgoal."""
    if subgoal is None:
        return torch.zeros(batch, GOAL_ENCODING_SIZE, device=device)
    assert facts is not None, "a subgoal needs the game's facts to be encoded"
    row = torch.tensor(encode(subgoal, facts), dtype=torch.float32, device=device)
    return row.expand(batch, GOAL_ENCODING_SIZE).clone()


# ----------------------------------------------------------------------------------------------
# Imagination


class Imagination(NamedTuple):
    """One batch of imagined trajectories, all detached: t indexes s_0 (the start) .. s_H, and
    the transition s_t -> s_{t+1} taken by actions[t]."""

    feats: Tensor
    """(H+1, B, F) features of s_0 .. s_H."""
    goal: Tensor
    """(B, G) the subgoal encoding the actor was conditioned on."""
    actions: Tensor
    """(H, B) int64: actions[t] was chosen in s_t."""
    rewards: Tensor
    """(H, B) predicted game reward + scaled shaping of s_t -> s_{t+1} (0 shaping once done)."""
    shaping: Tensor
    """(H, B) the shaping part alone, scaled, masked after the subgoal is done."""
    conts: Tensor
    """(H, B) continuation of s_t -> s_{t+1}: cont(s_{t+1}) * (1 - done(s_{t+1}))."""
    weights: Tensor
    """(H, B) how much s_t counts in the losses and the return scale: the product of earlier
    continuations, 0 throughout when the start already has its subgoal done."""
    alive: Tensor
    """(H+1, B) 1 while the subgoal is not done in any of s_0 .. s_t."""
    leapt: Tensor | None = None
    """(B,) 1 where the trajectory was cut at a leap (agent/leaps.py), 0 where it was not or
    nothing was judged; None in a batch built without it."""


class Behavior(nn.Module):
    """The actor, the critic and its slow copy, the return scale, and their two optimisers;
    ``ranks``: under torchrun, the processes that share each imagined batch."""

    def __init__(
        self,
        preset: Preset,
        num_actions: int,
        settings: AgentSettings,
        ranks: ddp.Ranks = ddp.SINGLE,
    ) -> None:
        super().__init__()
        self.ranks = ranks
        self.preset = preset
        self.num_actions = num_actions
        self.settings = cfg = settings
        self.actor = Actor(
            preset, num_actions, cfg.unimix, cfg.actor_out_scale, cfg.goal_input, cfg.goal_code
        )
        self.critic = Critic(preset, cfg.critic_bins, cfg.goal_input, cfg.goal_code)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.return_norm = ReturnNorm(cfg.return_norm_percentiles, cfg.return_norm_decay)
        self.actor_opt = torch.optim.Adam(
            self.actor.parameters(), lr=cfg.actor_lr, eps=cfg.adam_eps
        )
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps
        )
        self.updates = 0

    # -- acting -----------------------------------------------------------------------------

    def act(self, feat: Tensor, goal: Tensor, sample: bool = True) -> Tensor:
        """One-hot actions (B, A) in states feat (B, F) under goal (B, G): a Gumbel-max sample of
        the mixed policy, or its mode with sample=False (straight-through under gradients)."""
        b = feat.shape[0]
        assert feat.shape == (b, self.preset.feat_size), feat.shape
        assert goal.shape == (b, GOAL_ENCODING_SIZE), goal.shape
        action = categorical_st_sample(self.actor(feat, goal), 0.0, sample)
        assert action.shape == (b, self.num_actions), action.shape
        return action

    @torch.no_grad()
    def policy_step(
        self,
        world_model: WorldModel,
        state: RSSMState,
        action_prev: Tensor,
        frame: Tensor,
        vector: Tensor,
        is_first: Tensor,
        goal: Tensor,
        sample: bool = True,
    ) -> tuple[Tensor, RSSMState]:
        """The agent loop's step for B envs at once: filter the posterior with the new
        observation, then pick each env's button.

        state: the previous posterior (world_model.rssm.initial(B) before the first step);
        action_prev (B,) int64, the button that led to `frame` (B, 144, 160) uint8 (a tiles
        model: its tokens (B, 18, 20)) with GameState
        `vector` (B, 30); is_first (B,) bool resets those envs' state; goal (B, G). Latents are
        always sampled (the filter is stochastic); sample=False takes the policy's mode.
        Returns (actions (B,) int64, new posterior state).
        """
        b = action_prev.shape[0]
        assert action_prev.shape == (b,) and action_prev.dtype == torch.int64, action_prev
        # A tiles model observes the screen's cell tokens (B, 18, 20) instead (env/tiles.py).
        assert frame.shape[:1] == (b,) and frame.shape[1:] in (FRAME_SHAPE, GRID_HW), frame.shape
        assert vector.shape == (b, VECTOR_SIZE), vector.shape
        assert is_first.shape == (b,) and is_first.dtype == torch.bool, is_first
        assert goal.shape == (b, GOAL_ENCODING_SIZE), goal.shape
        post = world_model.observe_step(state, action_prev, frame, vector, is_first)
        action = self.act(world_model.rssm.feat(post), goal, sample).argmax(-1)
        assert action.shape == (b,), action.shape
        return action, post

    # -- imagination --------------------------------------------------------------------------

    @torch.no_grad()
    def imagine(
        self,
        world_model: WorldModel,
        starts: RSSMState,
        goal: Tensor,
        subgoal: Subgoal | Sequence[Subgoal | None] | None,
        facts: GameFacts | None,
    ) -> Imagination:
        """Rolls `horizon` steps from starts (B, ...) under the current policy and scores them.
        `subgoal` shapes every start alike, or is a sequence of B, start i's subgoal at i
        (goal's row i its encoding). Under no_grad: the world model gets no gradient, and the
        actor is trained on log-probabilities recomputed on the detached features."""
        cfg = self.settings
        b = starts.deter.shape[0]
        h = cfg.horizon
        assert goal.shape == (b, GOAL_ENCODING_SIZE), goal.shape
        starts = starts.map(Tensor.detach)
        goal = goal.detach().float()
        rssm = world_model.rssm
        states, one_hots = rssm.imagine(starts, lambda feat: self.act(feat, goal), h)
        feats = torch.cat([rssm.feat(starts).unsqueeze(0), rssm.feat(states)], dim=0)
        assert feats.shape == (h + 1, b, self.preset.feat_size), feats.shape
        actions = one_hots.argmax(-1)
        assert actions.shape == (h, b), actions.shape

        preds = world_model.predict(feats, state=subgoal is not None)
        # Step t's reward and continuation are those of the transition into s_{t+1}, read from
        # s_{t+1} (as the world model is trained: reward[t] belongs to observation t).
        game_reward = preds["reward"][1:].float()
        cont = preds["cont"][1:].float()
        assert game_reward.shape == cont.shape == (h, b), (game_reward.shape, cont.shape)

        shaped, not_done = subgoal_shaping(
            preds, subgoal, facts, cfg.gamma * cont, cfg.shaping_bonus
        )
        # sane[t]: s_0..s_t came without a leap to a map no way leads to (agent/leaps.py). The
        # step into a leap ends the trajectory with nothing: no reward, no bonus, no value.
        sane = torch.ones_like(not_done)
        if subgoal is not None and cfg.cut_leaps and facts is not None:
            leapt = leaps(preds, facts.graph).float()
            sane[1:] = torch.cumprod(1.0 - leapt, dim=0)
            not_done = torch.where(sane > 0, not_done, torch.ones_like(not_done))
            game_reward = game_reward * sane[1:]
        # alive[t]: the subgoal is done in none of s_0..s_t. Done is sticky: a predicted state
        # that wanders out of the subgoal and back in does not earn its bonus again.
        alive = torch.cumprod(not_done, dim=0)
        shaped = cfg.shaping_scale * shaped * alive[:-1] * sane[1:]
        # Completion ends the trajectory's return: the bonus is its last reward, so it cannot
        # be farmed by lingering at the edge of done.
        conts = cont * not_done[1:] * sane[1:]
        # A start that already has the subgoal done has nothing to teach about it (the agent
        # loop would have moved on): weight 0 from the first step.
        weights = alive[0] * torch.cat([torch.ones_like(conts[:1]), conts[:-1]]).cumprod(0)
        return Imagination(
            feats=feats,
            goal=goal,
            actions=actions,
            rewards=game_reward + shaped,
            shaping=shaped,
            conts=conts,
            weights=weights,
            alive=alive,
            leapt=1.0 - sane[-1],
        )

    # -- learning -----------------------------------------------------------------------------

    def train_on(self, imag: Imagination) -> dict[str, float]:
        """One actor and one critic update on an imagined batch; returns metrics."""
        cfg = self.settings
        h, b = imag.actions.shape
        feats, goal = imag.feats, imag.goal

        with torch.no_grad():
            # The slow critic is "the target": returns and baselines come from it, so they move
            # only as fast as its EMA.
            values = twohot_mean(self.slow_critic(feats, goal))
            assert values.shape == (h + 1, b), values.shape
            returns = lambda_return(imag.rewards, imag.conts, values, cfg.gamma, cfg.lam)
            # Percentiles are not means of shares: they are taken over every rank's returns.
            self.return_norm.update(*ddp.gather_rows(self.ranks, returns, imag.weights))
            scale = self.return_norm.scale()
            advantage = (returns - values[:-1]) / scale

        log_probs = self.actor(feats[:-1], goal)
        assert log_probs.shape == (h, b, self.num_actions), log_probs.shape
        taken = log_probs.gather(-1, imag.actions.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        # REINFORCE: the gradient is d log pi(a_t) times a constant advantage.
        actor_loss = -(imag.weights * (taken * advantage + cfg.entropy * entropy)).mean()

        critic_logits = self.critic(feats[:-1], goal)
        critic_loss = (
            imag.weights
            * (
                twohot_loss(critic_logits, returns)
                + cfg.slow_critic_reg * twohot_loss(critic_logits, values[:-1])
            )
        ).mean()

        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        ddp.average_gradients(list(self.actor.parameters()), self.ranks)
        actor_norm = nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_opt.step()

        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        ddp.average_gradients(list(self.critic.parameters()), self.ranks)
        critic_norm = nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()

        self._update_slow_critic()
        self.updates += 1

        with torch.no_grad():
            alive = imag.alive
            named = {
                "actor_loss": actor_loss,
                "critic_loss": critic_loss,
                "entropy": entropy.mean(),
                "return_mean": returns.mean(),
                "value_mean": values[:-1].mean(),
                "advantage_std": advantage.std(),
                "reward_mean": imag.rewards.mean(),
                "shaping_mean": imag.shaping.mean(),
                "done_rate": (alive[0] * (1.0 - alive[-1])).mean(),
                "start_done_rate": (1.0 - alive[0]).mean(),
                "leap_rate": imag.leapt.mean() if imag.leapt is not None else alive.new_zeros(()),
                "return_scale": scale,
                "actor_grad_norm": actor_norm,
                "critic_grad_norm": critic_norm,
            }
            # One device-to-host transfer rather than a sync per metric.
            values_out = torch.stack([v.float() for v in named.values()]).tolist()
        return ddp.mean_over_ranks(dict(zip(named, values_out, strict=True)), self.ranks)

    def imagine_and_train(
        self,
        world_model: WorldModel,
        starts: RSSMState,
        goal: Tensor,
        subgoal: Subgoal | Sequence[Subgoal | None] | None,
        facts: GameFacts | None,
    ) -> dict[str, float]:
        """imagine from starts (B, ...) under goal (B, G) and subgoal (one, or one per start),
        then train_on it."""
        return self.train_on(self.imagine(world_model, starts, goal, subgoal, facts))

    @torch.no_grad()
    def _update_slow_critic(self) -> None:
        mix = 1.0 - self.settings.slow_critic_decay
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
            slow.lerp_(fast, mix)

    # -- checkpoints --------------------------------------------------------------------------

    def state_tensors(self, prefix: str = "behavior") -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything that decides the next update: (tensors for the safetensors file, JSON
        meta). Networks, slow critic and return scale under `<prefix>/module`, the optimisers'
        moments under `<prefix>/actor_opt` and `<prefix>/critic_opt`."""
        tensors = module_tensors(f"{prefix}/module", self)
        actor_t, actor_meta = optimizer_tensors(f"{prefix}/actor_opt", self.actor_opt)
        critic_t, critic_meta = optimizer_tensors(f"{prefix}/critic_opt", self.critic_opt)
        settings = self.settings.model_dump(mode="json", include=set(RECORDED_SETTINGS))
        meta = {
            "num_actions": self.num_actions,
            "updates": self.updates,
            "returns": RETURNS,
            "settings": {name: settings[name] for name in RECORDED_SETTINGS},
            "actor_opt": actor_meta,
            "critic_opt": critic_meta,
        }
        return {**tensors, **actor_t, **critic_t}, meta

    def load_state_tensors(
        self,
        tensors: dict[str, Tensor],
        meta: dict[str, Any],
        prefix: str = "behavior",
        source: object = "the checkpoint",
    ) -> None:
        """Inverse of state_tensors; refuses tensors of another preset or button count
        (UserError), and an actor trained with the other ``goal_input`` (check_goal_input) or
        ``goal_code`` (check_goal_code).
        The optimisers come back as saved, learning rates included, so a resumed run takes
        exactly the update it would have taken."""
        check_goal_input(meta, self.settings.goal_input, source)
        check_goal_code(meta, self.settings.goal_code, source)
        restore_module(f"{prefix}/module", self, tensors, source)
        restore_optimizer(f"{prefix}/actor_opt", self.actor_opt, tensors, meta["actor_opt"], source)
        restore_optimizer(
            f"{prefix}/critic_opt", self.critic_opt, tensors, meta["critic_opt"], source
        )
        self.updates = int(meta["updates"])

"""The discrete RSSM: a GRU deterministic state and categorical stochastic latents (DreamerV3).

img_step predicts the next state from the previous one and an action (the prior); obs_step also
sees the encoder's embedding of the new observation (the posterior). observe runs obs_step over
recorded sequences; imagine runs img_step under a policy, the actor-critic's hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokedreamer.world_model.dist import categorical_st_sample, unimix_logits
from pokedreamer.world_model.nets import MLP
from pokedreamer.world_model.presets import Preset


class RSSMState(NamedTuple):
    """One model state, or a stack of them (leading dims (B,), (B, T) or (H, B))."""

    deter: Tensor
    """GRU state (..., deter)."""
    stoch: Tensor
    """One-hot latents (..., stoch, classes); straight-through when sampled with grad."""
    logits: Tensor
    """Log-probabilities (..., stoch, classes) of the distribution stoch was drawn from,
    uniform mix included."""

    def map(self, fn: Callable[[Tensor], Tensor]) -> RSSMState:
        """Applies fn to every field: state.map(Tensor.detach), state.map(lambda x: x[:, -1])."""
        return RSSMState(fn(self.deter), fn(self.stoch), fn(self.logits))

    def flatten(self) -> RSSMState:
        """Merges the two leading dims, e.g. (B, T) posteriors into B*T imagination starts."""
        return self.map(lambda x: x.flatten(0, 1))


def stack_states(states: Sequence[RSSMState], dim: int) -> RSSMState:
    """Stacks states field by field along a new dim."""
    return RSSMState(*(torch.stack(field, dim) for field in zip(*states, strict=True)))


class RSSM(nn.Module):
    """The recurrent state-space model for `num_actions` discrete actions."""

    def __init__(self, preset: Preset, num_actions: int, unimix: float = 0.01) -> None:
        super().__init__()
        self.preset = preset
        self.num_actions = num_actions
        self.unimix = unimix
        p = preset
        self.img_in = nn.Sequential(
            nn.Linear(p.stoch_size + num_actions, p.hidden, bias=False),
            nn.LayerNorm(p.hidden),
            nn.SiLU(),
        )
        self.gru = nn.GRUCell(p.hidden, p.deter)
        with torch.no_grad():
            # Gates are (reset, update, new); h' = z*h + (1-z)*n. A +1 bias on z makes a fresh
            # model keep ~73% of its state per step (DreamerV3's update bias of -1 in its
            # convention), so information survives long enough for gradients to find it.
            self.gru.bias_ih[p.deter : 2 * p.deter] += 1.0
        self.prior_net = MLP(p.deter, p.stoch_size, p.hidden, 1)
        self.post_net = MLP(p.deter + p.embed_size, p.stoch_size, p.hidden, 1)

    def initial(self, batch: int) -> RSSMState:
        """The state before an episode's first step: all zeros, not the prior's sample of a zero
        deter. A constant start costs nothing, draws no noise (so a reset is exactly
        reproducible), makes a reset a select against zero, and a zero stoch (no class set)
        is a signal the GRU can learn to read as "no past"; logits zero mean uniform."""
        p = self.preset
        device = self.gru.weight_hh.device
        deter = torch.zeros(batch, p.deter, device=device)
        stoch = torch.zeros(batch, p.stoch, p.classes, device=device)
        return RSSMState(deter, stoch, torch.zeros_like(stoch))

    def feat(self, state: RSSMState) -> Tensor:
        """concat(deter, flattened stoch) (..., feat_size): what every head and the actor read."""
        return torch.cat([state.deter, state.stoch.flatten(-2)], dim=-1)

    def _latent(self, raw: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        logits = unimix_logits(
            raw.unflatten(-1, (self.preset.stoch, self.preset.classes)), self.unimix
        )
        return categorical_st_sample(logits, 0.0, sample), logits

    def img_step(self, state: RSSMState, action: Tensor, sample: bool = True) -> RSSMState:
        """The prior of the next state after `action` (B, num_actions) one-hot (or a
        straight-through sample) is taken in `state`. sample=False takes the latents' mode."""
        x = self.img_in(torch.cat([state.stoch.flatten(1), action], dim=-1))
        deter = self.gru(x, state.deter)
        stoch, logits = self._latent(self.prior_net(deter), sample)
        return RSSMState(deter, stoch, logits)

    def obs_step(
        self,
        state: RSSMState,
        action: Tensor,
        embed: Tensor,
        is_first: Tensor,
        sample: bool = True,
    ) -> tuple[RSSMState, RSSMState]:
        """(posterior, prior) of the step that took `action` (B, A) from `state` and observed
        `embed` (B, E). Where is_first (B,) bool, state and action are first reset to initial
        (zeros), so an episode's first step never sees the previous episode."""
        b = embed.shape[0]
        p = self.preset
        assert state.deter.shape == (b, p.deter), state.deter.shape
        assert action.shape == (b, self.num_actions), action.shape
        assert embed.shape == (b, p.embed_size), embed.shape
        assert is_first.shape == (b,) and is_first.dtype == torch.bool, is_first
        keep = (~is_first).unsqueeze(-1)
        # A select rather than a multiplication by the mask: a carried-in state that went
        # inf/NaN cannot leak into a new episode. Gradients still flow where the state is kept.
        state = RSSMState(
            torch.where(keep, state.deter, 0.0),
            torch.where(keep.unsqueeze(-1), state.stoch, 0.0),
            torch.where(keep.unsqueeze(-1), state.logits, 0.0),
        )
        prior = self.img_step(state, torch.where(keep, action, 0.0), sample)
        stoch, logits = self._latent(self.post_net(torch.cat([prior.deter, embed], -1)), sample)
        return RSSMState(prior.deter, stoch, logits), prior

    def observe(
        self,
        embeds: Tensor,
        actions: Tensor,
        is_first: Tensor,
        start: RSSMState | None = None,
        sample: bool = True,
    ) -> tuple[RSSMState, RSSMState]:
        """(posteriors, priors), each field (B, T, ...), of recorded sequences.

        embeds (B, T, E); actions (B, T) int64, where actions[:, t] is the action that led to
        observation t (ignored where is_first); is_first (B, T) bool. start is the state before
        the first step (a previous chunk's last posterior), zeros when None.
        """
        b, t = actions.shape
        assert embeds.shape == (b, t, self.preset.embed_size), embeds.shape
        assert actions.dtype == torch.int64, actions.dtype
        assert is_first.shape == (b, t) and is_first.dtype == torch.bool, is_first
        one_hot = F.one_hot(actions, self.num_actions).to(self.gru.weight_hh.dtype)
        state = self.initial(b) if start is None else start
        posts, priors = [], []
        for i in range(t):
            state, prior = self.obs_step(state, one_hot[:, i], embeds[:, i], is_first[:, i], sample)
            posts.append(state)
            priors.append(prior)
        return stack_states(posts, 1), stack_states(priors, 1)

    def imagine(
        self,
        start: RSSMState,
        policy: Callable[[Tensor], Tensor],
        horizon: int,
        sample: bool = True,
    ) -> tuple[RSSMState, Tensor]:
        """Rolls the prior forward `horizon` steps from `start` (B, ...) under
        policy(feat (B, F)) -> one-hot action (B, A).

        Returns (states, actions): states (horizon, B, ...) are the imagined s_1..s_H (start
        not included), actions (horizon, B, A) with actions[t] the action that led to states[t]
        (chosen in the state before it: start for t = 0), as in observe.
        """
        b = start.deter.shape[0]
        assert start.deter.shape == (b, self.preset.deter), start.deter.shape
        state = start
        states: list[RSSMState] = []
        actions: list[Tensor] = []
        for _ in range(horizon):
            action = policy(self.feat(state))
            state = self.img_step(state, action, sample)
            states.append(state)
            actions.append(action)
        return stack_states(states, 0), torch.stack(actions)

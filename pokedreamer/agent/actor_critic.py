"""The actor-critic's networks and the pure parts of its update (DreamerV3): the actor
pi(a | feat, goal), the twohot critic v(feat, goal), lambda-returns and the return scale."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pokedreamer.config import GoalCode
from pokedreamer.errors import UserError
from pokedreamer.planner.subgoals import GOAL_ENCODING_SIZE, GOAL_ID_SLOTS
from pokedreamer.world_model.dist import unimix_logits
from pokedreamer.world_model.nets import MLP
from pokedreamer.world_model.presets import Preset


def lambda_return(
    rewards: Tensor, conts: Tensor, values: Tensor, gamma: float, lam: float
) -> Tensor:
    """DreamerV3's lambda-returns (H, ...): R_t = r_t + gamma c_t ((1-lam) v_{t+1} + lam R_{t+1}),
    R_H = v_H. rewards and conts (H, ...) are those of the transition s_t -> s_{t+1}; values
    (H+1, ...) are v(s_0) .. v(s_H)."""
    h = rewards.shape[0]
    assert conts.shape == rewards.shape, (conts.shape, rewards.shape)
    assert values.shape == (h + 1, *rewards.shape[1:]), (values.shape, rewards.shape)
    ret = values[-1]
    out = []
    for t in reversed(range(h)):
        ret = rewards[t] + gamma * conts[t] * ((1.0 - lam) * values[t + 1] + lam * ret)
        out.append(ret)
    return torch.stack(out[::-1])


class ReturnNorm(nn.Module):
    """DreamerV3's return scale: an EMA of the low..high percentile range of the returns, used
    as max(1, range). Dividing by the range makes the entropy weight mean the same for any
    reward scale; the floor of 1 keeps small (sparse, near-zero) returns from being amplified
    into noise."""

    def __init__(self, percentiles: tuple[float, float], decay: float) -> None:
        super().__init__()
        self.decay = decay
        # Not persistent: the percentiles are settings, so a checkpoint must not override them.
        quantiles = torch.tensor(percentiles, dtype=torch.float32) / 100
        self.register_buffer("quantiles", quantiles, persistent=False)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def update(self, returns: Tensor, weights: Tensor | None = None) -> None:
        """Folds a batch of returns (any shape) into the EMA; the first batch sets it outright
        (no zero-initialised bias to wear off).

        weights (returns' shape): only returns of weight > 0 count. A zero-weight return (a
        start whose subgoal was already done, a step after completion or a predicted end) is
        never trained on, so letting it into the percentiles would size the advantages by
        returns the update does not see. A batch with no weight leaves the EMA as it is."""
        returns = returns.detach().float()
        if weights is not None:
            assert weights.shape == returns.shape, (weights.shape, returns.shape)
            # NaN marks a sample out: nanquantile skips it without a device-to-host sync.
            returns = torch.where(weights > 0, returns, torch.nan)
        q = torch.nanquantile(returns.flatten(), self.quantiles)
        seen = ~q.isnan().any()
        first = self.count == 0
        # torch.where instead of an `if`: no device-to-host sync in the update.
        d = self.decay
        low = torch.where(first, q[0], d * self.low + (1 - d) * q[0])
        high = torch.where(first, q[1], d * self.high + (1 - d) * q[1])
        self.low.copy_(torch.where(seen, low, self.low))
        self.high.copy_(torch.where(seen, high, self.high))
        self.count.add_(seen.long())

    def scale(self) -> Tensor:
        """max(1, high - low), a float32 scalar."""
        return torch.clamp(self.high - self.low, min=1.0)


_ID_BITS = 8  # map ids, x and y are bytes


def goal_width(code: GoalCode) -> int:
    """How many inputs the subgoal takes in the actor and critic under ``code``."""
    return GOAL_ENCODING_SIZE + (len(GOAL_ID_SLOTS) * _ID_BITS if code == "bits" else 0)


def check_goal_input(meta: dict[str, Any], goal_input: bool, source: object) -> None:
    """Refuses (UserError) behaviour ``meta`` whose actor was trained with another
    ``goal_input``: one never shown a subgoal cannot be judged on subgoals, nor the other way
    round. Checkpoints from before the setting saw subgoals."""
    trained = bool(meta.get("settings", {}).get("goal_input", True))
    if trained != goal_input:
        seen, value = ("with", "true") if trained else ("without", "false")
        raise UserError(
            f"{source}: its actor was trained {seen} the planner's subgoal as input; set "
            f"agent.goal_input = {value} (POKEDREAMER_AGENT__GOAL_INPUT={value}) to use it, "
            "or start an actor afresh with train imitation --fresh-actor"
        )


def check_goal_code(meta: dict[str, Any], goal_code: GoalCode, source: object) -> None:
    """Refuses (UserError) behaviour ``meta`` whose actor reads the subgoal under another
    ``goal_code`` (its input is another width). Checkpoints from before the setting read it
    as "scalar"."""
    trained = meta.get("settings", {}).get("goal_code", "scalar")
    if trained != goal_code:
        raise UserError(
            f"{source}: its actor reads the subgoal as goal_code {trained!r}, not "
            f"{goal_code!r}; set agent.goal_code = {trained!r} "
            f"(POKEDREAMER_AGENT__GOAL_CODE={trained}) to use it, or start an actor afresh with "
            "train agent or train imitation --fresh-actor"
        )


def _inputs(feat: Tensor, goal: Tensor, goal_input: bool, code: GoalCode) -> Tensor:
    """concat(feat (..., F), goal's inputs), goal (B, G) broadcast over feat's leading time
    dims; a zero goal without ``goal_input``. The zeros keep the input's width, so an actor
    trained blind has the same shape as one that sees subgoals. Under ``code`` "bits" the map
    id and the tile's x and y follow, each in eight binary digits: as bytes / 255 two maps
    differ by at most a fifth of one input among a thousand, which actors trained in
    imagination do not learn to read (docs/agent.md, "How the actor reads the subgoal")."""
    assert goal.shape[-1] == GOAL_ENCODING_SIZE, goal.shape
    assert feat.shape[-2] == goal.shape[-2], (feat.shape, goal.shape)
    if not goal_input:
        goal = torch.zeros_like(goal)
    if code == "bits":
        ids = torch.round(goal[..., list(GOAL_ID_SLOTS)] * 255).long()
        powers = 2 ** torch.arange(_ID_BITS, device=goal.device)
        bits = (ids[..., None] // powers % 2).to(goal.dtype).flatten(-2)
        goal = torch.cat([goal, bits], dim=-1)
    width = goal_width(code)
    return torch.cat([feat, goal.expand(*feat.shape[:-1], width)], dim=-1)


class Actor(nn.Module):
    """pi(a | feat, goal): a categorical over the buttons, with a uniform mix."""

    def __init__(
        self,
        preset: Preset,
        num_actions: int,
        unimix: float,
        out_scale: float,
        goal_input: bool = True,
        goal_code: GoalCode = "scalar",
    ) -> None:
        super().__init__()
        self.unimix = unimix
        self.goal_input, self.goal_code = goal_input, goal_code
        self.net = MLP(
            preset.feat_size + goal_width(goal_code), num_actions, preset.hidden, preset.mlp_layers
        )
        with torch.no_grad():
            head = self.net[-1]
            assert isinstance(head, nn.Linear)
            head.weight.mul_(out_scale)
            head.bias.zero_()

    def forward(self, feat: Tensor, goal: Tensor) -> Tensor:
        """Log-probabilities (..., A), float32, uniform mix included."""
        inputs = _inputs(feat, goal, self.goal_input, self.goal_code)
        return unimix_logits(self.net(inputs), self.unimix)


class Critic(nn.Module):
    """v(feat, goal) as twohot logits over symlog bins; the value is their twohot_mean."""

    def __init__(
        self, preset: Preset, bins: int, goal_input: bool = True, goal_code: GoalCode = "scalar"
    ) -> None:
        super().__init__()
        self.goal_input, self.goal_code = goal_input, goal_code
        # Zero output: a fresh critic predicts exactly 0 rather than a random value the first
        # advantages would be measured against (DreamerV3).
        self.net = MLP(
            preset.feat_size + goal_width(goal_code), bins, preset.hidden, preset.mlp_layers, True
        )

    def forward(self, feat: Tensor, goal: Tensor) -> Tensor:
        """Twohot logits (..., bins)."""
        return self.net(_inputs(feat, goal, self.goal_input, self.goal_code))

"""WorldModel: encoder, RSSM, decoder and prediction heads, with their loss (DreamerV3).

Inputs are what the env records per step: the screen as uint8 shade indices (144, 160), the
GameState vector (VECTOR_SIZE floats), the action (int64) that led to the step, its reward, and
is_first / is_terminal flags. Device-agnostic; the trainer adds bf16 autocast / compile on CUDA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokedreamer.config import WorldModelSettings
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.world_model.checkpoint import Migration
from pokedreamer.world_model.dist import (
    categorical_entropy,
    free_bits,
    kl_categorical,
    twohot_loss,
    twohot_mean,
)
from pokedreamer.world_model.heads import ANY_BYTE, STATE_HEADS, StateHeads, StateRanges
from pokedreamer.world_model.nets import MLP, Decoder, Encoder, downsample, image_input
from pokedreamer.world_model.presets import Preset
from pokedreamer.world_model.rssm import RSSM, RSSMState

BATCH_KEYS = ("frames", "states", "actions", "rewards", "is_first", "is_terminal")


class WorldModel(nn.Module):
    """The world model for `num_actions` discrete actions, sized by `preset`.

    `settings` supplies the latents' unimix and the loss weights (the defaults when None); the
    sizes come from `preset` alone, not from settings.preset, so that a checkpoint's preset can
    be rebuilt under any settings. `ranges` sizes the state heads to the game's maps
    (``StateRanges.of_maps(facts.maps.values())``); without it they classify every byte."""

    def __init__(
        self,
        preset: Preset,
        num_actions: int,
        settings: WorldModelSettings | None = None,
        ranges: StateRanges | None = None,
    ) -> None:
        super().__init__()
        self.preset = preset
        self.num_actions = num_actions
        self.settings = settings = settings or WorldModelSettings()
        p = preset
        self.encoder = Encoder(p)
        self.rssm = RSSM(p, num_actions, settings.unimix)
        self.decoder = Decoder(p)
        # Zero output layer: the first reward predictions are exactly 0, not noise the actor
        # would chase (DreamerV3).
        self.reward_head = MLP(p.feat_size, p.reward_bins, p.hidden, p.mlp_layers, zero_out=True)
        self.cont_head = MLP(p.feat_size, 1, p.hidden, p.mlp_layers)
        self.state_heads = StateHeads(p.feat_size, p.hidden, p.mlp_layers, ranges or ANY_BYTE)

    # -- preprocessing ----------------------------------------------------------------------

    def shades(self, frames: Tensor) -> Tensor:
        """uint8 screens (..., 144, 160) -> uint8 shades at the model's resolution (..., h, w):
        the decoder's target and, scaled, the encoder's input."""
        return downsample(frames, self.preset.image_hw)

    def embed_shades(self, shades: Tensor, states: Tensor) -> Tensor:
        """Embeddings (..., E) of shades (..., h, w) uint8 and GameState vectors (..., 30)."""
        lead = shades.shape[:-2]
        assert shades.shape[-2:] == self.preset.image_hw, shades.shape
        assert states.shape == (*lead, VECTOR_SIZE), (states.shape, lead)
        image = image_input(shades.reshape(-1, *self.preset.image_hw))
        embed = self.encoder(image, states.reshape(-1, VECTOR_SIZE).float())
        return embed.reshape(*lead, -1)

    def embed(self, frames: Tensor, states: Tensor) -> Tensor:
        """Embeddings (..., E) of screens (..., 144, 160) uint8 and GameState vectors."""
        return self.embed_shades(self.shades(frames), states)

    # -- inference --------------------------------------------------------------------------

    def observe_step(
        self,
        state: RSSMState,
        action: Tensor,
        frame: Tensor,
        vector: Tensor,
        is_first: Tensor,
        sample: bool = True,
    ) -> RSSMState:
        """The agent loop's filter: the posterior after `action` (B,) int64 led to `frame`
        (B, 144, 160) uint8 with GameState `vector` (B, 30); resets where is_first (B,)."""
        assert action.shape == is_first.shape == frame.shape[:1], (action.shape, frame.shape)
        one_hot = F.one_hot(action, self.num_actions).to(state.deter.dtype)
        post, _ = self.rssm.obs_step(state, one_hot, self.embed(frame, vector), is_first, sample)
        return post

    def decode(self, feat: Tensor) -> Tensor:
        """feat (..., F) -> shade logits (..., 4, h, w); argmax gives the imagined screen."""
        lead = feat.shape[:-1]
        logits = self.decoder(feat.reshape(-1, self.preset.feat_size))
        return logits.reshape(*lead, *logits.shape[1:])

    def predict(self, feat: Tensor, state: bool = True) -> dict[str, Tensor]:
        """What the heads say about feat (..., F), each (...) unless noted: "reward" (mean of
        the twohot), "cont" (probability the episode goes on), and with `state` the state
        heads' point predictions (StateHeads.predicted: map_id, x, y, battle, text_shown,
        hp_fraction, badges (..., 8), enemy_hp_fraction). Imagination without a subgoal has no
        use for the state, and skips its heads' cost."""
        preds = self.state_heads.predicted(self.state_heads(feat)) if state else {}
        preds["reward"] = twohot_mean(self.reward_head(feat))
        preds["cont"] = torch.sigmoid(self.cont_head(feat).squeeze(-1).float())
        return preds

    # -- checkpoints ------------------------------------------------------------------------

    def migrate_checkpoint(self, saved: dict[str, Tensor]) -> Migration | None:
        """restore_module's hook: a checkpoint whose state heads do not fit these (sized for
        other ranges, or from before the enemy-HP head) keeps everything else, and its state
        heads start as this model initialised them. None when they fit."""
        own = {k: v for k, v in self.state_dict().items() if k.startswith("state_heads.")}
        theirs = {k: v for k, v in saved.items() if k.startswith("state_heads.")}
        fits = own.keys() == theirs.keys() and all(
            v.shape == theirs[k].shape and v.dtype == theirs[k].dtype for k, v in own.items()
        )
        ranges = "state_heads.ranges"
        if fits and torch.equal(own[ranges].cpu(), theirs[ranges].cpu()):
            return None
        kept = {k: v for k, v in saved.items() if k not in theirs}
        fresh = frozenset(n for n, _ in self.named_parameters() if n.startswith("state_heads."))
        return Migration(
            {**kept, **own},
            fresh,
            "its state heads were made for another game's ranges or an older set of heads: they "
            "start untrained (the rest of the world model is kept) and learn again as it trains",
        )

    # -- training ---------------------------------------------------------------------------

    def loss(
        self, batch: dict[str, Tensor], start: RSSMState | None = None
    ) -> tuple[Tensor, dict[str, float], RSSMState]:
        """(loss, metrics, posteriors) on a batch of sequences.

        batch: frames uint8 (B, T, 144, 160), states float32 (B, T, 30), actions int64 (B, T),
        rewards float32 (B, T), is_first bool (B, T), is_terminal bool (B, T). Step t's reward
        and is_terminal are those of the transition into observation t. start: the state before
        step 0 (a previous chunk's last posterior), zeros when None. The posteriors (B, T, ...)
        come back detached: the behaviour's imagination starts from them, and ``[:, -1]`` of
        them is the next chunk's start.

        Each step's loss sums image cross-entropy (over pixels: the frame's log-likelihood),
        reward twohot cross-entropy, continue BCE (target 1 - is_terminal), the state heads'
        losses and the KL terms; the loss is its mean over steps.
        """
        frames, states, actions, rewards, is_first, is_terminal = (batch[k] for k in BATCH_KEYS)
        b, t = actions.shape
        assert frames.shape == (b, t, *FRAME_SHAPE) and frames.dtype == torch.uint8, frames.shape
        assert states.shape == (b, t, VECTOR_SIZE), states.shape
        assert actions.dtype == torch.int64, actions.dtype
        assert rewards.shape == (b, t) and rewards.is_floating_point(), rewards.shape
        assert is_first.shape == is_terminal.shape == (b, t), (is_first.shape, is_terminal.shape)
        assert is_first.dtype == is_terminal.dtype == torch.bool, (
            is_first.dtype,
            is_terminal.dtype,
        )
        cfg = self.settings

        shades = self.shades(frames)
        posts, priors = self.rssm.observe(
            self.embed_shades(shades, states), actions, is_first, start
        )
        feat = self.rssm.feat(posts)

        # Cross-entropy is left to autocast's float32 policy: casting the logits here would
        # hold a float32 copy of the largest tensor in the step.
        image_logits = self.decoder(feat.reshape(b * t, -1))
        target = shades.reshape(b * t, *self.preset.image_hw).long()
        pixel_nll = F.cross_entropy(image_logits, target, reduction="none")
        image_loss = pixel_nll.sum((-2, -1)).reshape(b, t).float()
        with torch.no_grad():
            image_acc = (image_logits.argmax(1) == target).float().mean()

        reward_loss = twohot_loss(self.reward_head(feat), rewards)
        cont_logit = self.cont_head(feat).squeeze(-1).float()
        cont_target = (~is_terminal).float()
        cont_loss = F.binary_cross_entropy_with_logits(cont_logit, cont_target, reduction="none")
        heads = self.state_heads
        head_losses = heads.losses(heads(feat), heads.targets(states))
        state_loss = torch.stack(list(head_losses.values())).sum(0)

        # dyn trains the prior toward the posterior, rep the posterior toward the prior.
        dyn = kl_categorical(posts.logits.detach(), priors.logits)
        rep = kl_categorical(posts.logits, priors.logits.detach())
        free = cfg.kl_free_nats
        if cfg.kl_balance == 0.0:  # off: the two scales
            kl_loss = cfg.dyn_scale * free_bits(dyn, free) + cfg.rep_scale * free_bits(rep, free)
        else:
            a = cfg.kl_balance
            kl_loss = a * free_bits(dyn, free) + (1.0 - a) * free_bits(rep, free)

        step_loss = (
            image_loss
            + cfg.reward_scale * reward_loss
            + cfg.cont_scale * cont_loss
            + cfg.state_scale * state_loss
            + kl_loss
        )
        assert step_loss.shape == (b, t), step_loss.shape
        loss = step_loss.mean()

        with torch.no_grad():
            named = {
                "loss": loss,
                "image_loss": image_loss.mean(),
                "image_acc": image_acc,
                "reward_loss": reward_loss.mean(),
                "cont_loss": cont_loss.mean(),
                "state_loss": state_loss.mean(),
                **{f"{name}_loss": v.mean() for name, v in head_losses.items()},
                "kl_loss": kl_loss.mean(),
                "kl": dyn.mean(),
                "post_entropy": categorical_entropy(posts.logits).mean(),
                "prior_entropy": categorical_entropy(priors.logits).mean(),
            }
            # One device-to-host transfer for all metrics instead of one sync per .item().
            values = torch.stack([v.float() for v in named.values()]).tolist()
        metrics = dict(zip(named, values, strict=True))
        return loss, metrics, posts.map(Tensor.detach)


assert set(STATE_HEADS).isdisjoint({"reward", "cont"})  # predict() merges both namespaces

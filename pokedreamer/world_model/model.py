"""WorldModel: encoder, RSSM, decoder and prediction heads, with their loss (DreamerV3).

Inputs are what the env records per step: the screen (its observation), the GameState vector
(VECTOR_SIZE floats), the action (int64) that led to the step, its reward, and is_first /
is_terminal flags. The observation is of one of two kinds (world_model.observation): "pixels",
uint8 shade indices (144, 160), or "tiles", the screen's 18x20 grid of tile tokens (any integer
dtype; the replay's uint16). Only the encoder, the decoder and the decoder's loss differ between
them; the RSSM, the heads and their losses are the same. Device-agnostic; the trainer adds bf16
autocast / compile on CUDA.
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
from pokedreamer.world_model.tile_nets import GRID_HW, TileDecoder, TileEncoder, token_input

BATCH_KEYS = ("states", "actions", "rewards", "is_first", "is_terminal")
"""The batch's keys besides its observations, under OBSERVATION_KEYS[model.observation]."""
OBSERVATION_KEYS = {"pixels": "frames", "tiles": "tiles"}
"""Where a replayed batch holds each kind of observation: frames (B, T, 144, 160) uint8, or tiles
(B, T, 18, 20) uint16."""
CELL_ACC_STRIDE = 32
"""The tile model's cell accuracy is taken on every 32nd step of a batch, counted back from its
last (the step with the most context behind it, and a grid before it): it needs each cell's most
likely token, which the loss itself never computes."""


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
        self.observation = settings.observation
        """"pixels" or "tiles": what the encoder reads and the decoder predicts."""
        self.tile_capacity = settings.tile_capacity
        p = preset
        # Registered in this order (encoder, RSSM, decoder): the optimiser's saved moments are
        # matched to parameters by position.
        tiles = self.observation == "tiles"
        self.encoder: Encoder | TileEncoder = (
            TileEncoder(p, settings.tile_capacity, settings.state_code)
            if tiles
            else Encoder(p, settings.state_code)
        )
        self.rssm = RSSM(p, num_actions, settings.unimix)
        self.decoder: Decoder | TileDecoder = (
            TileDecoder(p, settings.tile_capacity) if tiles else Decoder(p)
        )
        # Zero output layer: the first reward predictions are exactly 0, not noise the actor
        # would chase (DreamerV3).
        self.reward_head = MLP(p.feat_size, p.reward_bins, p.hidden, p.mlp_layers, zero_out=True)
        self.cont_head = MLP(p.feat_size, 1, p.hidden, p.mlp_layers)
        self.state_heads = StateHeads(p.feat_size, p.hidden, p.mlp_layers, ranges or ANY_BYTE)

    # -- preprocessing ----------------------------------------------------------------------

    @property
    def observation_key(self) -> str:
        """The batch key of this model's observations: "frames" or "tiles"."""
        return OBSERVATION_KEYS[self.observation]

    def shades(self, frames: Tensor) -> Tensor:
        """uint8 screens (..., 144, 160) -> uint8 shades at the model's resolution (..., h, w):
        the pixel decoder's target and, scaled, the pixel encoder's input."""
        return downsample(frames, self.preset.image_hw)

    def target(self, obs: Tensor) -> Tensor:
        """What the decoder predicts of observations as recorded: shades (..., h, w) uint8 of
        screens (..., 144, 160), or the token grids (..., 18, 20) themselves, as int64."""
        if self.observation == "tiles":
            assert obs.shape[-2:] == GRID_HW and not obs.is_floating_point(), obs.shape
            return obs.long()
        return self.shades(obs)

    def embed_shades(self, shades: Tensor, states: Tensor) -> Tensor:
        """Embeddings (..., E) of decoder targets (``target``: shades (..., h, w) uint8, or
        tokens (..., 18, 20)) and GameState vectors (..., 30)."""
        lead = shades.shape[:-2]
        assert states.shape == (*lead, VECTOR_SIZE), (states.shape, lead)
        vectors = states.reshape(-1, VECTOR_SIZE).float()
        if self.observation == "tiles":
            embed = self.encoder(token_input(shades.reshape(-1, *GRID_HW)), vectors)
        else:
            assert shades.shape[-2:] == self.preset.image_hw, shades.shape
            embed = self.encoder(image_input(shades.reshape(-1, *self.preset.image_hw)), vectors)
        return embed.reshape(*lead, -1)

    def embed(self, obs: Tensor, states: Tensor) -> Tensor:
        """Embeddings (..., E) of observations (screens (..., 144, 160) uint8, or token grids
        (..., 18, 20)) and GameState vectors."""
        return self.embed_shades(self.target(obs), states)

    # -- inference --------------------------------------------------------------------------

    def observe_step(
        self,
        state: RSSMState,
        action: Tensor,
        obs: Tensor,
        vector: Tensor,
        is_first: Tensor,
        sample: bool = True,
    ) -> RSSMState:
        """The agent loop's filter: the posterior after `action` (B,) int64 led to `obs` (a
        screen (B, 144, 160) uint8, or a token grid (B, 18, 20)) with GameState `vector` (B, 30);
        resets where is_first (B,)."""
        assert action.shape == is_first.shape == obs.shape[:1], (action.shape, obs.shape)
        one_hot = F.one_hot(action, self.num_actions).to(state.deter.dtype)
        post, _ = self.rssm.obs_step(state, one_hot, self.embed(obs, vector), is_first, sample)
        return post

    def decode(self, feat: Tensor, before: Tensor | None = None) -> Tensor:
        """feat (..., F) -> shade logits (..., 4, h, w), or for tiles the log-probabilities of
        every token per cell (..., tile_capacity, 18, 20); argmax over dim -3 is the imagined
        screen (``imagined_obs`` gets it without the whole distribution). ``before``: a token
        model's grids of the step before (..., 18, 20) (``previous_grids``), none when None."""
        lead = feat.shape[:-1]
        if isinstance(self.decoder, TileDecoder):
            logits = self.decoder.log_probs(self._tile_cells(feat, before))
        else:
            logits = self.decoder(feat.reshape(-1, self.preset.feat_size))
        return logits.reshape(*lead, *logits.shape[1:])

    def imagined_obs(self, feat: Tensor, before: Tensor | None = None) -> Tensor:
        """feat (..., F) -> the most likely screen: uint8 shades (..., h, w) for pixels, int64
        tokens (..., 18, 20) for tiles (the caller renders them through its vocabulary), given
        ``before``, the grids of the step before (as ``decode``)."""
        if isinstance(self.decoder, TileDecoder):
            cells = self._tile_cells(feat, before)
            return self.decoder.argmax(cells).reshape(*feat.shape[:-1], *GRID_HW)
        return self.decode(feat).argmax(-3).to(torch.uint8)

    def previous_grids(self, grids: Tensor, is_first: Tensor) -> Tensor:
        """Token grids (B, T, 18, 20) and is_first (B, T) -> each step's grid before (B, T, 18,
        20) int64: the grid one step earlier, and "none" on each sequence's first step and on
        each episode's first step (its step before is another episode's)."""
        assert isinstance(self.decoder, TileDecoder), self.observation
        b, t = is_first.shape
        assert grids.shape == (b, t, *GRID_HW), grids.shape
        none = torch.full_like(grids[:, :1], self.decoder.none, dtype=torch.int64)
        before = torch.cat([none, grids[:, :-1].long()], 1)
        return torch.where(is_first[:, :, None, None], self.decoder.none, before)

    def _tile_cells(self, feat: Tensor, before: Tensor | None) -> Tensor:
        """feat (..., F) and grids before (..., 18, 20) or None -> the token decoder's cell
        features (N, 18, 20, width), the leading dims flattened."""
        assert isinstance(self.decoder, TileDecoder), self.observation
        lead = feat.shape[:-1]
        if before is not None:
            assert before.shape == (*lead, *GRID_HW), (before.shape, lead)
            before = before.reshape(-1, *GRID_HW).long()
        return self.decoder.cells(feat.reshape(-1, self.preset.feat_size), before)

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

        batch: frames uint8 (B, T, 144, 160) (pixels) or tiles (B, T, 18, 20) of an integer dtype
        (tiles), states float32 (B, T, 30), actions int64 (B, T),
        rewards float32 (B, T), is_first bool (B, T), is_terminal bool (B, T). Step t's reward
        and is_terminal are those of the transition into observation t. start: the state before
        step 0 (a previous chunk's last posterior), zeros when None. The posteriors (B, T, ...)
        come back detached: the behaviour's imagination starts from them, and ``[:, -1]`` of
        them is the next chunk's start.

        Each step's loss sums the image cross-entropy (over pixels or cells: the observation's
        log-likelihood; "image_loss" in the metrics, with "image_acc", the share of pixels
        right, or "cell_acc", the share of cells right), reward twohot cross-entropy, continue
        BCE (target 1 - is_terminal), the state heads' losses and the KL terms; the loss is its
        mean over steps.
        """
        obs = batch[self.observation_key]
        states, actions, rewards, is_first, is_terminal = (batch[k] for k in BATCH_KEYS)
        b, t = actions.shape
        if self.observation == "tiles":
            assert obs.shape == (b, t, *GRID_HW) and not obs.is_floating_point(), obs.shape
        else:
            assert obs.shape == (b, t, *FRAME_SHAPE) and obs.dtype == torch.uint8, obs.shape
        assert states.shape == (b, t, VECTOR_SIZE), states.shape
        assert actions.dtype == torch.int64, actions.dtype
        assert rewards.shape == (b, t) and rewards.is_floating_point(), rewards.shape
        assert is_first.shape == is_terminal.shape == (b, t), (is_first.shape, is_terminal.shape)
        assert is_first.dtype == is_terminal.dtype == torch.bool, (
            is_first.dtype,
            is_terminal.dtype,
        )
        cfg = self.settings

        target = self.target(obs)
        posts, priors = self.rssm.observe(
            self.embed_shades(target, states), actions, is_first, start
        )
        feat = self.rssm.feat(posts)
        image_loss, image_metric = self._image_loss(feat, target, is_first)

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
                image_metric[0]: image_metric[1],
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

    def _image_loss(
        self, feat: Tensor, target: Tensor, is_first: Tensor
    ) -> tuple[Tensor, tuple[str, Tensor]]:
        """The decoder's loss per step (B, T), float32: the cross-entropy of the targets (B, T,
        ...) summed over pixels or cells (a token model's decoder given each step's true grid
        before); and the accuracy metric, named."""
        b, t = target.shape[:2]
        flat = feat.reshape(b * t, -1)
        if isinstance(self.decoder, TileDecoder):
            before = self.previous_grids(target, is_first).reshape(b * t, *GRID_HW)
            cells = self.decoder.cells(flat, before).reshape(b, t, *GRID_HW, -1)
            cell_nll = self.decoder.nll(cells, target)
            with torch.no_grad():
                sub = slice((t - 1) % CELL_ACC_STRIDE, None, CELL_ACC_STRIDE)
                right = self.decoder.argmax(cells[:, sub]) == target[:, sub]
            return cell_nll.sum((-2, -1)).float(), ("cell_acc", right.float().mean())
        # Cross-entropy is left to autocast's float32 policy: casting the logits here would
        # hold a float32 copy of the largest tensor in the step.
        image_logits = self.decoder(flat)
        shades = target.reshape(b * t, *self.preset.image_hw).long()
        pixel_nll = F.cross_entropy(image_logits, shades, reduction="none")
        image_loss = pixel_nll.sum((-2, -1)).reshape(b, t).float()
        with torch.no_grad():
            image_acc = (image_logits.argmax(1) == shades).float().mean()
        return image_loss, ("image_acc", image_acc)


assert set(STATE_HEADS).isdisjoint({"reward", "cont"})  # predict() merges both namespaces

"""The world model's networks: screen helpers, the conv encoder and decoder, and the MLP.

Every layer is norm + SiLU (DreamerV3); layers followed by a norm carry no bias. Screens are shade
indices 0 (lightest) to 3 (darkest), max-pooled down to the preset's resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.world_model.presets import BOTTOM_HW, Preset
from pokedreamer.world_model.state_code import StateCode, state_input, state_input_size

SHADES = 4


def downsample(frames: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Max-pools uint8 shade frames (..., 144, 160) by the integer factor to (..., *image_hw).
    The max is the darkest shade of each block, so 1-px dark text strokes survive; the result is
    still shade indices, the decoder's target."""
    assert frames.dtype == torch.uint8 and frames.shape[-2:] == FRAME_SHAPE, (
        frames.dtype,
        frames.shape,
    )
    h, w = image_hw
    f = FRAME_SHAPE[0] // h
    assert (h * f, w * f) == FRAME_SHAPE, image_hw
    if f == 1:
        return frames
    lead = frames.shape[:-2]
    return frames.reshape(*lead, h, f, w, f).amax(dim=(-3, -1))


def image_input(shades: Tensor) -> Tensor:
    """uint8 shades (N, h, w) -> the encoder's one-channel float input (N, 1, h, w) in [0, 1]."""
    assert shades.dtype == torch.uint8 and shades.ndim == 3, (shades.dtype, shades.shape)
    return (shades.unsqueeze(1) * (1.0 / (SHADES - 1))).float()


class ChannelNorm(nn.Module):
    """RMSNorm over the channels of NCHW maps, computed in float32 (bf16-safe).
    Channel-wise like DreamerV3's, without permuting to channels-last."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # The statistics in float32 from one fused reduction; the big map itself stays in its
        # dtype. A float32 copy of every map (as before) made norms cost more than the convs on
        # CPU, where these elementwise passes over 36x40 maps of 1,024 frames dominate an update.
        norm = torch.linalg.vector_norm(x, 2, dim=1, keepdim=True, dtype=torch.float32)
        scale = torch.rsqrt(norm.square() / x.shape[1] + self.eps)
        return x * (scale * self.weight[:, None, None]).to(x.dtype)


class ResBlock(nn.Module):
    """Two 3x3 convs with norm + SiLU and a skip: detail (text, sprite outlines) passes through
    the skip while the convs learn a correction."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = ChannelNorm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = ChannelNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.silu(x + h)


def _linear_norm_act(inp: int, out: int) -> list[nn.Module]:
    return [nn.Linear(inp, out, bias=False), nn.LayerNorm(out), nn.SiLU()]


class StateEncoder(nn.Sequential):
    """GameState vectors (N, VECTOR_SIZE) -> (N, width): two Linear -> LayerNorm -> SiLU
    layers over the vector as ``code`` spells it (world_model/state_code.py)."""

    def __init__(self, width: int, code: StateCode) -> None:
        super().__init__(
            *_linear_norm_act(state_input_size(code), width), *_linear_norm_act(width, width)
        )
        self.code: StateCode = code

    def forward(self, state: Tensor) -> Tensor:
        return super().forward(state_input(state, self.code))


class MLP(nn.Sequential):
    """layers x (Linear -> LayerNorm -> SiLU), then a Linear to out. zero_out starts the output
    at exactly zero (DreamerV3 does so for reward and value heads, so early predictions are 0)."""

    def __init__(
        self, inp: int, out: int, hidden: int, layers: int, zero_out: bool = False
    ) -> None:
        modules: list[nn.Module] = []
        for i in range(layers):
            modules += _linear_norm_act(inp if i == 0 else hidden, hidden)
        head = nn.Linear(hidden if layers else inp, out)
        if zero_out:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        super().__init__(*modules, head)


def stage_channels(preset: Preset) -> list[int]:
    """Channels after each encoder stage, the first at depth, doubling."""
    return [preset.depth * 2**i for i in range(preset.stages)]


class Encoder(nn.Module):
    """Screen + GameState vector -> embedding (N, preset.embed_size).

    Stride-2 4x4 convs, each followed by a residual block, halve the screen down to 9x10
    (144x160: 4 stages, 72x80: 3, 36x40: 2); the map is flattened and projected to `hidden`.
    The GameState vector goes through a small MLP of width hidden // 4 and is concatenated in:
    RAM facts the screen shows poorly (map id, exact tile, badges) reach the posterior directly.
    """

    def __init__(self, preset: Preset, state_code: StateCode = "scalar") -> None:
        super().__init__()
        self.preset = preset
        layers: list[nn.Module] = []
        inp = 1
        for ch in stage_channels(preset):
            layers += [nn.Conv2d(inp, ch, 4, stride=2, padding=1, bias=False), ChannelNorm(ch)]
            layers += [nn.SiLU(), ResBlock(ch)]
            inp = ch
        self.convs = nn.Sequential(*layers)
        flat = inp * BOTTOM_HW[0] * BOTTOM_HW[1]
        self.image_out = nn.Sequential(*_linear_norm_act(flat, preset.hidden))
        self.state_mlp = StateEncoder(preset.embed_size - preset.hidden, state_code)

    def forward(self, image: Tensor, state: Tensor) -> Tensor:
        n = image.shape[0]
        assert image.shape == (n, 1, *self.preset.image_hw), image.shape
        assert state.shape == (n, VECTOR_SIZE), state.shape
        x = self.convs(image)
        x = self.image_out(x.flatten(1))
        embed = torch.cat([x, self.state_mlp(state)], dim=-1)
        assert embed.shape == (n, self.preset.embed_size), embed.shape
        return embed


class Decoder(nn.Module):
    """feat -> 4-way shade logits per pixel (N, 4, h, w): the encoder's mirror (linear to a 9x10
    map, then residual block + stride-2 4x4 transposed conv per stage). A categorical over the
    four shades fits the screen exactly, where a Gaussian/MSE would blur between shades."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.preset = preset
        chans = stage_channels(preset)
        self.bottom = chans[-1]
        self.linear = nn.Linear(preset.feat_size, self.bottom * BOTTOM_HW[0] * BOTTOM_HW[1])
        self.norm = ChannelNorm(self.bottom)
        layers: list[nn.Module] = []
        for i in reversed(range(len(chans))):
            layers.append(ResBlock(chans[i]))
            if i > 0:
                up = nn.ConvTranspose2d(chans[i], chans[i - 1], 4, 2, padding=1, bias=False)
                layers += [up, ChannelNorm(chans[i - 1]), nn.SiLU()]
            else:
                layers.append(nn.ConvTranspose2d(chans[0], SHADES, 4, 2, padding=1))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        n = feat.shape[0]
        assert feat.shape == (n, self.preset.feat_size), feat.shape
        x = self.linear(feat).reshape(n, self.bottom, *BOTTOM_HW)
        logits = self.deconvs(F.silu(self.norm(x)))
        assert logits.shape == (n, SHADES, *self.preset.image_hw), logits.shape
        return logits

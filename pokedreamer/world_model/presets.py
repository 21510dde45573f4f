"""World-model sizes in one place (DreamerV3 keeps its 12m…400m presets the same way). Every
network reads its widths from a Preset; nothing else picks a size. The loss weights are settings
(pokedreamer.config.WorldModelSettings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pokedreamer.env.frames import FRAME_SHAPE

# The encoder halves the screen until it reaches this map, the decoder starts from it.
BOTTOM_HW: tuple[int, int] = (9, 10)


@dataclass(frozen=True)
class Preset:
    """Sizes of one world model."""

    name: str
    """The key of this preset in PRESETS."""
    image_hw: tuple[int, int]
    """(height, width) the model sees and draws: the 144x160 screen max-pooled by 1, 2, 4 or 8,
    so that stride-2 conv stages end on a 9x10 map."""
    depth: int
    """Channels of the first conv stage; each further stage doubles them."""
    deter: int
    """Size of the GRU's deterministic state."""
    stoch: int
    """Number of categorical latents in the stochastic state."""
    classes: int
    """Classes of each categorical latent."""
    hidden: int
    """Width of the MLPs, of the image embedding and of the RSSM's inner layers."""
    mlp_layers: int
    """Hidden layers of the prediction heads (reward, continue, state)."""
    reward_bins: int
    """Twohot bins of the reward head, uniform in symlog space over [-20, 20]; odd, so that a
    reward of exactly zero is a bin of its own."""

    def __post_init__(self) -> None:
        h, w = self.image_hw
        # 144 and 160 share the factors 1, 2, 4, 8 and 16; 16 would leave no conv stage.
        pool = FRAME_SHAPE[0] // h
        if pool not in (1, 2, 4, 8) or (h * pool, w * pool) != FRAME_SHAPE:
            raise ValueError(f"{self.name}: image_hw {self.image_hw} is not 144x160 / 1, 2, 4 or 8")
        if self.reward_bins % 2 == 0:
            raise ValueError(f"{self.name}: reward_bins must be odd, got {self.reward_bins}")

    def meta(self) -> dict[str, object]:
        """The preset as a checkpoint's JSON holds it (tuples as lists, as JSON reads back)."""
        fields = asdict(self)
        fields["image_hw"] = list(self.image_hw)
        return fields

    @property
    def pool(self) -> int:
        """The max-pool factor from the 144x160 screen to image_hw."""
        return FRAME_SHAPE[0] // self.image_hw[0]

    @property
    def stages(self) -> int:
        """Stride-2 conv stages from image_hw down to 9x10."""
        return (self.image_hw[0] // BOTTOM_HW[0]).bit_length() - 1

    @property
    def stoch_size(self) -> int:
        """Length of the flattened stochastic state."""
        return self.stoch * self.classes

    @property
    def embed_size(self) -> int:
        """Length of the encoder's embedding: the image part (hidden) plus the GameState part
        (hidden // 4)."""
        return self.hidden + self.hidden // 4

    @property
    def feat_size(self) -> int:
        """Length of feat = concat(deter, flattened stoch), what every head reads."""
        return self.deter + self.stoch_size


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # For tests: builds and steps in milliseconds.
        Preset("tiny", (36, 40), depth=8, deter=64, stoch=8, classes=8, hidden=64,
               mlp_layers=1, reward_bins=63),
        # For learning behaviour in imagination on a CPU: tiny's screen and convs, with a latent
        # wide enough to carry a battle (tiny's 64-unit state forgets the enemy's HP within a
        # few imagined steps and cannot tell A from the other buttons there).
        Preset("mini", (36, 40), depth=8, deter=256, stoch=16, classes=16, hidden=128,
               mlp_layers=1, reward_bins=63),
        # For CPU training: a quarter-resolution screen (pooling keeps 1-px text strokes).
        Preset("small", (72, 80), depth=16, deter=256, stoch=16, classes=16, hidden=256,
               mlp_layers=2, reward_bins=255),
        # The seed's v2 sizes at native resolution.
        Preset("base", (144, 160), depth=32, deter=512, stoch=32, classes=32, hidden=512,
               mlp_layers=2, reward_bins=255),
        Preset("large", (144, 160), depth=64, deter=1024, stoch=32, classes=32, hidden=1024,
               mlp_layers=3, reward_bins=255),
    )
}  # fmt: skip

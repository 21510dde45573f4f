"""The one Settings object: built-in defaults < config.toml < POKEDREAMER_* env vars < CLI flags.

Every field's docstring is its documentation: it becomes the field's description, and
`Settings.to_toml` writes it as the comment above the value, so the shipped config.toml and the run
directories' copies explain themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pokedreamer.config_layers import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    SECTION_CONFIG,
    FileSource,
    describe,
    file_layer,
    nest,
    read_toml,
)
from pokedreamer.config_planner import LLM_KINDS as LLM_KINDS
from pokedreamer.config_planner import PLANNER_KINDS as PLANNER_KINDS
from pokedreamer.config_planner import LocalLLMSettings, PlannerSettings
from pokedreamer.config_planner import PlannerKind as PlannerKind
from pokedreamer.errors import UserError

DEFAULT_CONFIG_NAME = "config.toml"


Button = Literal["a", "b", "start", "select", "up", "down", "left", "right"]
GoalCode = Literal["scalar", "bits"]

NOOP = "noop"
"""The name of the action that presses nothing (env.noop)."""


class EnvSettings(BaseModel):
    """The game and the emulator."""

    model_config = SECTION_CONFIG

    rom: str = ""
    """Path to a Game Boy ROM; empty means the bundled fixture cartridge."""

    action_repeat: int = Field(default=24, ge=1)
    """Emulator frames per agent step."""

    hold_frames: int = Field(default=8, ge=1)
    """Frames the chosen button is held at the start of each step (at most action_repeat)."""

    headless: bool = True
    """Run PyBoy without a window."""

    seed: int = Field(default=0, ge=0)
    """Seed for every random number generator the run uses."""

    buttons: list[Button] = Field(
        default_factory=lambda: ["a", "b", "start", "select", "up", "down", "left", "right"],
        min_length=1,
    )
    """The agent's actions: Game Boy buttons, one pressed per step."""

    noop: bool = False
    """Add an action that presses nothing (the emulator just runs its frames)."""

    max_steps: int = Field(default=4096, ge=0)
    """Steps before an episode is truncated; 0 means never."""

    start_state: str = ""
    """PyBoy save state to reset from; empty means the ROM's own start: its intro scripted to
    proven control (for Pokémon Red, once, then cached in data_dir)."""

    data_dir: str = ""
    """Folder for cached start states; empty means $XDG_DATA_HOME/pokedreamer
    (~/.local/share/pokedreamer)."""

    @property
    def action_names(self) -> list[str]:
        """The agent's actions by index: the buttons, then NOOP when noop is on."""
        return [*self.buttons, *([NOOP] if self.noop else [])]

    @property
    def num_actions(self) -> int:
        """How many actions the agent chooses from (the policy's and world model's width)."""
        return len(self.buttons) + int(self.noop)

    @field_validator("buttons")
    @classmethod
    def _distinct_buttons(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each button may appear once")
        return value

    @model_validator(mode="after")
    def _hold_within_step(self) -> EnvSettings:
        if self.hold_frames > self.action_repeat:
            raise ValueError(
                f"hold_frames ({self.hold_frames}) must not exceed "
                f"action_repeat ({self.action_repeat})"
            )
        return self


class RewardSettings(BaseModel):
    """Weights of the reward terms read from RAM; each term is reported apart in the env's info."""

    model_config = SECTION_CONFIG

    explore: float = 0.02
    """Per map tile (map, x, y) visited for the first time in the episode."""

    new_map: float = 0.5
    """Per map entered for the first time in the episode."""

    event: float = 2.0
    """Per story event flag newly set."""

    badge: float = 10.0
    """Per badge newly earned."""

    level: float = 1.0
    """Per level gained by the party (sum of levels)."""

    heal: float = 1.0
    """Per party's worth of missing HP restored outside battle (empty to full pays it once)."""

    seen: float = 0.2
    """Per species newly seen in the Pokédex."""

    caught: float = 1.0
    """Per species newly owned in the Pokédex."""

    battle_won: float = 1.0
    """Per battle that ends with the enemy at 0 HP."""

    battle_lost: float = -1.0
    """Per battle lost (blackout)."""

    stuck: float = -0.01
    """Per step once no new tile has been visited for stuck_steps steps."""

    stuck_steps: int = Field(default=128, ge=1)
    """Steps without a new tile before the stuck penalty starts."""


class WorldModelSettings(BaseModel):
    """System 1's world model (pokedreamer.world_model) and its training."""

    model_config = SECTION_CONFIG

    preset: Literal["tiny", "mini", "small", "base", "large"] = "small"
    """Size preset: tiny (tests), mini (tiny's screen with a wider latent: behaviour in
    imagination on a CPU), small (CPU, 72x80 screen), base (the seed's v2 sizes, native 144x160),
    large."""

    observation: Literal["pixels", "tiles"] = "pixels"
    """What the world model reads and dreams: "pixels", the screen's shades pooled to the preset's
    resolution, or "tiles", the screen as its 18x20 grid of 8x8 cells, each the token of the
    pattern it shows (pokedreamer.env.tiles). Stored with every checkpoint; a checkpoint of the
    other kind is refused."""

    tile_capacity: int = Field(default=1024, ge=2)
    """Tokens a tile world model can name, token 0 being "unknown": a pattern first seen once the
    vocabulary is full becomes 0 rather than any wrong known token."""

    state_code: Literal["scalar", "bits"] = "scalar"
    """How the encoder reads the GameState vector's map id, x and y (bytes over 255, so a step
    moves x by 0.004): "scalar", the vector alone, or "bits", also their 8 bits each
    (world_model/state_code.py). Stored with every checkpoint; one of the other code is refused."""

    batch_size: int = Field(default=16, ge=1)
    """Sequences per training batch; under torchrun the global one, split evenly over the ranks."""

    batch_length: int = Field(default=64, ge=2)
    """Steps per training sequence."""

    lr: float = Field(default=3e-4, gt=0)
    """Adam learning rate."""

    adam_eps: float = Field(default=1e-8, gt=0)
    """Adam epsilon."""

    grad_clip: float = Field(default=100.0, gt=0)
    """Largest global gradient norm; larger gradients are scaled down to it."""

    kl_free_nats: float = Field(default=1.0, ge=0)
    """Free bits: each step's KL is clipped below at this many nats, so a posterior already
    close to its prior is not squeezed further (and gets no gradient from the KL)."""

    dyn_scale: float = Field(default=0.5, ge=0)
    """Weight of the dynamics KL, KL(sg(posterior) || prior)."""

    rep_scale: float = Field(default=0.1, ge=0)
    """Weight of the representation KL, KL(posterior || sg(prior))."""

    kl_balance: float = Field(default=0.0, ge=0, lt=1)
    """KL balancing: 0 (off) keeps dyn_scale and rep_scale; a in (0, 1) replaces them with
    DreamerV2's a*KL(sg(posterior) || prior) + (1-a)*KL(posterior || sg(prior)) (DreamerV2
    used 0.8), free nats still per term."""

    unimix: float = Field(default=0.01, ge=0, lt=1)
    """Share of the uniform distribution mixed into every categorical latent, so that no class
    has probability zero and the KL stays finite."""

    state_scale: float = Field(default=1.0, ge=0)
    """Weight of the state heads' losses (map, position, battle, text, HP, badges)."""

    reward_scale: float = Field(default=1.0, ge=0)
    """Weight of the reward head's twohot cross-entropy."""

    cont_scale: float = Field(default=1.0, ge=0)
    """Weight of the continue head's binary cross-entropy."""

    replay_capacity: int = Field(default=200_000, ge=1)
    """Steps the replay buffer holds (~5.9 KB each); the oldest chunks go first."""

    replay_chunk: int = Field(default=1024, ge=16)
    """Steps per replay chunk file."""

    replay_event_share: float = Field(default=0.0, ge=0, le=1)
    """Share of each training batch drawn to hold a rare step after its first: the player
    arriving on another map, a battle starting or ending, a blow landing, a level, a POKéMON, a
    badge or an event flag gained. The rest is drawn uniformly. Under 1% of random play, these
    steps decide whether an actor trained in imagination can leave a map or win a battle at
    all; 0 draws the whole batch uniformly."""

    replay_map_share: float = Field(default=0.0, ge=0, le=1)
    """Share of each training batch drawn to hold a step on a map picked uniformly from the
    maps the replay holds (after the rare-step share; together at most the whole batch). A map
    the player seldom stands on (the fixture's gym: 1% of the steps) is otherwise too rare for
    the state heads to name it; 0 draws uniformly."""

    checkpoint_every: int = Field(default=1000, ge=1)
    """Updates between checkpoints."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to train: auto picks CUDA when present."""

    amp: Literal["auto", "on", "off"] = "auto"
    """bf16 autocast: auto uses it on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX),
    where it is ~1.5x faster here; on other CPUs it would be slower."""

    compile: bool = False
    """torch.compile the model on CUDA (ignored on CPU); slow to start, faster after."""

    threads: int = Field(default=0, ge=0)
    """CPU threads for torch; 0 means all cores."""


class RunSettings(BaseModel):
    """One run and its directory under runs_dir."""

    model_config = SECTION_CONFIG

    name: str = ""
    """Name of the run directory; empty means a timestamp."""

    runs_dir: str = "runs"
    """Folder that holds one directory per run."""

    steps: int = Field(default=0, ge=0)
    """Agent steps to take; 0 means until stopped."""

    print_every: int = Field(default=100, ge=0)
    """Print a progress line every this many steps; 0 means never."""


class AgentSettings(BaseModel):
    """System 1 at play: the agent loop, its actor-critic and online training."""

    model_config = SECTION_CONFIG

    envs: int = Field(default=1, ge=1)
    """Emulators played at once (one process each when more than one); the policy acts for all
    of them in one batch."""

    workers: Literal["local", "ray"] = "local"
    """Where the envs step: ``local`` processes on this machine, or ``ray`` actors on a Ray
    cluster (the ``ray`` extra), each stepping envs_per_worker envs in one call per step."""

    ray_address: str = ""
    """The Ray cluster to join with workers = "ray" (host:port of `ray start --head`, or
    ``auto``); empty starts a local Ray for the run."""

    envs_per_worker: int = Field(default=4, ge=1)
    """Envs each Ray actor steps: more envs per call spread one call's cost over more steps."""

    train_ratio: float = Field(default=16.0, ge=0)
    """Replayed transitions trained on per env step (DreamerV3's train ratio); one update
    replays world_model.batch_size x batch_length of them. 0 trains nothing."""

    train_after: int = Field(default=1024, ge=0)
    """Steps in replay before training starts."""

    checkpoint_every: int = Field(default=5000, ge=0)
    """Env steps between agent checkpoints; 0 checkpoints only at the end."""

    horizon: int = Field(default=15, ge=1)
    """Imagined steps per behaviour update, from each start state."""

    behavior_updates: int = Field(default=4, ge=1)
    """Behaviour updates per world-model update, each from other starts: imagination is cheap."""

    imagine_batch: int = Field(default=256, ge=1)
    """Replayed start states per behaviour update."""

    pairing: Literal["start", "subgoal"] = "start"
    """How imagination starts meet the subgoals they rehearse (agent/subgoal_pool.py): "start"
    draws the starts and gives each a subgoal live there, so subgoals live almost everywhere
    (going to a map) fill most rows; "subgoal" draws a subgoal per row, each of those live at
    some start alike, then one of its starts, so a leg live at few places (talking to someone,
    a battle) is rehearsed as often as the rest."""

    actor_lr: float = Field(default=1e-4, gt=0)
    """Adam learning rate of the actor: 1e-4, over DreamerV3's 3e-5 so that the few thousand
    updates a CPU run affords move it; set by hand, not chosen by measurement."""

    critic_lr: float = Field(default=1e-4, gt=0)
    """Adam learning rate of the critic: 1e-4 like the actor's (DreamerV3: 3e-5), by hand."""

    adam_eps: float = Field(default=1e-5, gt=0)
    """Adam epsilon of the actor's and the critic's optimisers."""

    grad_clip: float = Field(default=100.0, gt=0)
    """Largest global gradient norm of the actor and of the critic, each on its own."""

    goal_input: bool = True
    """Whether the actor and critic see the planner's subgoal. False gives them a zero goal in
    acting, imitation and imagination alike, while the subgoals still shape imagined rewards and
    guide the demonstrator: the fair "no planner" ablation, an actor trained as the agent is but
    never shown a subgoal. Recorded with the actor; a checkpoint trained the other way is
    refused."""

    goal_code: GoalCode = "scalar"
    """How the actor and critic read the subgoal's map and tile: "scalar", as ``encode``'s
    bytes / 255 only, or "bits", each also in eight binary digits (24 more inputs), so that
    two maps differ by whole inputs. Recorded with the actor; a checkpoint of the other code
    is refused in one line. Checkpoints from before the setting read "scalar"."""

    entropy: float = Field(default=3e-3, ge=0)
    """Weight of the policy's entropy bonus (advantages are normalised, so it is absolute): 3e-3,
    10x DreamerV3's 3e-4, set by hand; single runs did not tell them apart (benchmarks.md)."""

    gamma: float = Field(default=0.985, gt=0, le=1)
    """Discount per step: 0.985 looks ~67 steps ahead, a few subgoals (DreamerV3's 0.997, ~333,
    suits long episodes); set by hand. Shaping discounts by gamma * the predicted continuation."""

    lam: float = Field(default=0.95, ge=0, le=1)
    """lambda of the lambda-returns: 0 is one-step TD, 1 the Monte-Carlo return to the horizon."""

    slow_critic_decay: float = Field(default=0.98, ge=0, lt=1)
    """EMA decay of the slow critic per update (it supplies the return targets)."""

    slow_critic_reg: float = Field(default=1.0, ge=0)
    """Weight of the critic's cross-entropy towards the slow critic's value."""

    return_norm_percentiles: tuple[float, float] = (5.0, 95.0)
    """Percentiles (low, high) of the weighted lambda-returns whose range (at least 1) scales
    the advantages: robust to outliers, and sparse rewards are not blown up."""

    return_norm_decay: float = Field(default=0.99, ge=0, lt=1)
    """EMA decay of the two percentiles."""

    critic_bins: int = Field(default=255, ge=3)
    """Twohot bins of the critic, uniform in symlog space; odd so that 0 has a bin."""

    unimix: float = Field(default=0.01, ge=0, lt=1)
    """Share of the uniform mixed into the policy: every button keeps a chance (log pi finite)."""

    actor_out_scale: float = Field(default=0.01, gt=0)
    """Scale of the actor's output layer at init: a near-uniform first policy whose gradients
    still reach the first layer (a zero layer would block them on the first update)."""

    shaping_scale: float = Field(default=1.0, ge=0)
    """Weight of the subgoal's shaping (potential and bonus) against the predicted reward."""

    shaping_bonus: float = Field(default=1.0, ge=0)
    """Reward on the imagined step a subgoal becomes done, where its return ends: unlike the
    potential it changes which policy is optimal (it is the subgoal's reward)."""

    cut_leaps: bool = True
    """End an imagined trajectory, with no reward and no value after it, at a step whose
    predicted map changes where the run's map graph knows no way there (agent/leaps.py): a
    world model's prior drifting from one room into a look-alike must not pay the subgoal."""

    sample: bool = True
    """Sample the policy's buttons; false takes its most likely button."""

    explore_after: int = Field(default=0, ge=0)
    """Steps an env's plan may keep its goal (its text) before the actor's buttons there are
    mixed with uniform random ones, until the goal changes; 0 never. A move imagination has
    never seen (talking to MOM) is one the actor never learns to make: random buttons where
    it is stuck put that move into the replay, for the world model and then the actor to
    learn. With no planner the goal never changes: every episode is mixed past this step."""

    explore_share: float = Field(default=0.25, ge=0, le=1)
    """Share of a stuck env's buttons (explore_after) replaced by uniform random ones."""

    end_at_badges: int = Field(default=0, ge=0)
    """End an episode once this many badges are won (the fixture's quest ends at 1); 0 never."""

    speed: int = Field(default=4, ge=0, le=16, validation_alias=AliasChoices("speed", "realtime"))
    """Times the Game Boy's own speed while a person watches (the dashboard, the emulator's
    window): 1 is 2.5 steps/s at action_repeat 24; 0 is uncapped, as is a run no one watches."""

    record: bool = True
    """Record every episode under the run's episodes/ folder."""

    @field_validator("return_norm_percentiles")
    @classmethod
    def _ordered_percentiles(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high <= 100.0:
            raise ValueError("must be (low, high) with 0 <= low < high <= 100")
        return value

    @field_validator("critic_bins")
    @classmethod
    def _odd_bins(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd, so that a value of 0 has a bin of its own")
        return value


class ImitationSettings(BaseModel):
    """``pokedreamer train imitation``: the actor learns to copy the scripted demonstrator on
    the states it visits itself (DAgger), the world model held fixed."""

    model_config = SECTION_CONFIG

    beta_start: float = Field(default=1.0, ge=0, le=1)
    """Chance, at the first step, that the demonstrator's button is pressed instead of the
    actor's (every step's state is labelled with the demonstrator's button either way)."""

    beta_end: float = Field(default=0.0, ge=0, le=1)
    """The same chance once beta_steps have been played; it falls linearly in between."""

    beta_steps: int = Field(default=20_000, ge=0)
    """Env steps (all envs together) over which the chance falls from beta_start to beta_end."""

    ratio: float = Field(default=32.0, gt=0)
    """Labelled states trained on per env step; one update takes batch_size of them."""

    batch_size: int = Field(default=256, ge=1)
    """Labelled states per update, drawn uniformly from all kept so far."""

    lr: float = Field(default=1e-3, gt=0)
    """Adam learning rate of the actor while it imitates."""

    capacity: int = Field(default=200_000, ge=1)
    """Labelled states kept; the oldest go first."""

    train_after: int = Field(default=512, ge=0)
    """Labelled states to gather before the first update."""


class LogSettings(BaseModel):
    """Logging."""

    model_config = SECTION_CONFIG

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Least severe log level that is shown: DEBUG, INFO, WARNING, ERROR or CRITICAL."""

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything a run is configured by, resolved once and handed to constructors."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    # The sections are built per Settings rather than shared, so that their fallbacks read the
    # environment as it is at load time, not as it was at import time.
    env: EnvSettings = Field(default_factory=EnvSettings)
    """The game and the emulator."""

    rewards: RewardSettings = Field(default_factory=RewardSettings)
    """Weights of the reward terms."""

    world_model: WorldModelSettings = Field(default_factory=WorldModelSettings)
    """System 1's world model and its training."""

    run: RunSettings = Field(default_factory=RunSettings)
    """One run and its directory."""

    agent: AgentSettings = Field(default_factory=AgentSettings)
    """System 1 at play: the agent loop and its actor-critic."""

    imitation: ImitationSettings = Field(default_factory=ImitationSettings)
    """The actor copying the scripted demonstrator (``pokedreamer train imitation``)."""

    planner: PlannerSettings = Field(default_factory=PlannerSettings)
    """System 2, the strategic planner."""

    log: LogSettings = Field(default_factory=LogSettings)
    """Logging."""

    local_llm: LocalLLMSettings = Field(default_factory=LocalLLMSettings)
    """A local model as System 2 (``--planner local``)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first. No .env or secrets-dir sources: one file and the environment are
        # enough places to look when a value surprises you.
        return init_settings, env_settings, FileSource(settings_cls)

    def to_toml(self) -> str:
        """The resolved settings as commented TOML that loads back to equal settings.

        Secrets are left out (as a commented-out key), so the result is safe to save in a run
        directory or to share.
        """
        out: list[str] = []
        for section_name in type(self).model_fields:
            section: BaseModel = getattr(self, section_name)
            if out:
                out.append("")
            out.append(f"[{section_name}]")
            for field_name, info in type(section).model_fields.items():
                out.extend(f"# {line.strip()}" for line in (info.description or "").splitlines())
                value = getattr(section, field_name)
                if _is_secret(info.annotation):
                    out.append(f'# {field_name} = ""')
                else:
                    out.append(f"{field_name} = {_toml_value(value)}")
        return "\n".join(out) + "\n"


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _toml_value(value: Any) -> str:
    # Only the scalar kinds our settings use; a new kind fails here (and in the tests) rather than
    # being written as something that does not load back.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes are a subset of TOML basic strings'.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def load_settings(
    config_path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Resolve the settings: defaults < config file < POKEDREAMER_* env vars < ``overrides``.

    ``config_path`` None means ./config.toml when it exists, else no file. ``overrides`` maps
    dotted keys (``"env.rom"``) to values; a None value means "not given" and is skipped, so CLI
    flags can be passed through without checking each one. Every mistake becomes a one-line
    UserError.
    """
    if config_path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        path: Path | None = default if default.is_file() else None
    else:
        if not config_path.is_file():
            raise UserError(f"config file not found: {config_path}")
        path = config_path

    file_data = read_toml(path) if path is not None else {}
    nested_overrides = nest(overrides or {})
    token = file_layer.set(file_data)
    try:
        return Settings(**nested_overrides)
    except ValidationError as exc:
        raise UserError(describe(exc, path, nested_overrides)) from None
    finally:
        file_layer.reset(token)

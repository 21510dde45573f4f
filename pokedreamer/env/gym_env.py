"""PokemonRedEnv: a Gymnasium env over PyBoy, for Pokémon Red and the fixture cartridge alike.

One step presses one button for ``hold_frames``, releases it, and runs to ``action_repeat`` frames,
rendering only the last one. The observation is the screen as shade indices (0 lightest … 3
darkest, uint8 144×160) plus the GameState vector; ``info`` carries the GameState and each reward
term, and on the steps where the map changed (and after a reset) ``map``: the new map's
``MapNode`` (size, warps, connections) read from RAM (env/graph.py); on the steps where the
overworld screen shows cells of the map this env has not reported yet, ``ground``: (map id,
((x, y, walkable), ...)) for those cells, walkable by the game's own test (env/world.py). The
step is kept lean: it must stay within 5% of raw PyBoy at the same frames (``pokedreamer bench
env``).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pokedreamer.config import EnvSettings, RewardSettings
from pokedreamer.env.cartridge import ROM_PATH, SYM_PATH
from pokedreamer.env.frames import GREYS
from pokedreamer.env.graph import MapNode, read_map_node
from pokedreamer.env.ram import parse_sym
from pokedreamer.env.rewards import TERMS, Rewards
from pokedreamer.env.rom import load_rom
from pokedreamer.env.start import (
    StartStates,
    blank_save_ram,
    cached_start_state,
    default_data_dir,
    load_state_bytes,
    scripted_start_state,
)
from pokedreamer.env.state import VECTOR_SIZE, GameState, read_game_state
from pokedreamer.env.world import (
    PLAYER_COLUMN,
    PLAYER_ROW,
    SCREEN_COLUMNS,
    SCREEN_ROWS,
    Bus,
    cell_tile,
    read_collision_tiles,
    read_sprites,
)
from pokedreamer.env.wram import WorkRam
from pokedreamer.errors import UserError

SCREEN_SHAPE = (144, 160)
# Headless, PyBoy draws shade i as the colour (i, i, i): the red byte of each RGBA pixel *is* the
# shade index, so one truncating cast of the uint32 view yields the observation (~2 µs) where a
# colour look-up would cost ~25 µs, a twentieth of a step.
SHADE_PALETTE = (0x000000, 0x010101, 0x020202, 0x030303)
# pret's random-number bytes, which Pokémon Red mixes into every random draw.
RED_RNG = (0xFFD3, 0xFFD4)  # hRandomAdd, hRandomSub


def _fixture_rng_address() -> int:
    return parse_sym(SYM_PATH.read_text())["_rng_state"]


class PokemonRedEnv(gym.Env[dict[str, np.ndarray], int]):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(
        self,
        env: EnvSettings | None = None,
        rewards: RewardSettings | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.settings = env = env or EnvSettings()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        self.render_mode = render_mode
        rom_path = Path(env.rom) if env.rom else ROM_PATH
        # An unknown dump still plays; telling the user is the caller's job (``rom.warning``).
        self.rom = rom = load_rom(rom_path)
        self.is_fixture = rom.game == "fixture"

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pysdl2-dll announces itself on import
            from pyboy import PyBoy
        self._pyboy = PyBoy(
            str(rom_path),
            window="null" if env.headless else "SDL2",
            sound_emulated=False,
            log_level="ERROR",
            ram_file=blank_save_ram(),  # never the battery save beside the ROM: a new game
            **({"color_palette": SHADE_PALETTE} if env.headless else {}),
        )
        self._memory = self._pyboy.memory
        self._wram = WorkRam(self._pyboy)
        screen = self._pyboy.screen.ndarray
        self._screen_u32 = screen.view(np.uint32).reshape(SCREEN_SHAPE)
        self._screen_red = screen[:, :, 0]
        self._headless = env.headless

        self.buttons: tuple[str | None, ...] = (*env.buttons, *((None,) if env.noop else ()))
        self.action_space = gym.spaces.Discrete(len(self.buttons))
        self.observation_space = gym.spaces.Dict(
            {
                "screen": gym.spaces.Box(0, 3, SCREEN_SHAPE, np.uint8),
                "state": gym.spaces.Box(0.0, 1.0, (VECTOR_SIZE,), np.float32),
            }
        )
        self._hold = env.hold_frames
        self._rest = env.action_repeat - env.hold_frames
        self._max_steps = env.max_steps
        self._rewards = Rewards(rewards or RewardSettings())
        self._rng_address = _fixture_rng_address() if self.is_fixture else None
        self._start = self._make_start_state(env)
        self._steps = 0
        self.state: GameState | None = None
        self._map_at: int | None = None  # the map of the last step
        self._came_from: int | None = None  # the map before it, where a $FF warp may lead
        self._map_reads = 0  # steps left on which to read the map (it may still be loading)
        self._map_reported: MapNode | None = None
        self._ground_known: dict[int, dict[tuple[int, int], bool]] = {}  # per map, as reported
        self._looked: set[tuple[int, int, int]] = set()  # (map, x, y) looked around from

    # --- start states ---------------------------------------------------------------------------

    def _make_start_state(self, env: EnvSettings) -> bytes:
        if env.start_state:
            path = Path(env.start_state).expanduser()
            if not path.is_file():
                raise UserError(f"start state not found: {path}")
            state = path.read_bytes()
            load_state_bytes(self._pyboy, state, str(path))
            return state
        if self.is_fixture:  # its intro takes a few hundred frames: not worth a cache
            return scripted_start_state(self._pyboy)
        cache = StartStates(Path(env.data_dir).expanduser() if env.data_dir else default_data_dir())
        return cached_start_state(self._pyboy, self.rom.sha1, cache)

    def _seed_game(self) -> None:
        """Makes the game's own randomness follow the episode seed (encounters, damage)."""
        draw = int(self.np_random.integers(1, 1 << 16))
        if self._rng_address is not None:
            self._memory[self._rng_address] = draw & 0xFF
            self._memory[self._rng_address + 1] = draw >> 8
        else:
            self._memory[RED_RNG[0]] = draw & 0xFF
            self._memory[RED_RNG[1]] = draw >> 8

    # --- Gymnasium API ----------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        # options["state"]: a snapshot() of this game to start from instead of the start state
        # (collect's go-explore returns to the places it has reached so).
        snapshot = (options or {}).get("state")
        if snapshot is None:
            load_state_bytes(self._pyboy, self._start, "the start state")
        else:
            load_state_bytes(self._pyboy, snapshot, "the snapshot to reset to")
        self._seed_game()
        self._pyboy.tick(1, True)  # one frame so that the screen shows the start
        self._steps = 0
        wram = self._wram.snapshot()
        self.state = read_game_state(wram)
        self._rewards.reset(self.state)
        info: dict[str, Any] = {"state": self.state, "rewards": dict.fromkeys(TERMS, 0.0)}
        self._map_at, self._came_from, self._map_reported = self.state.map_id, None, None
        self._map_reads = 2
        self._read_map(wram, info)
        # The caller's graph may be a new one (an evaluation's variant): report the ground anew.
        self._looked, self._ground_known = set(), {}
        self._read_ground(wram, info)
        return self._observe(), info

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        pyboy = self._pyboy
        button = self.buttons[action]
        if button is None:
            pyboy.tick(self._hold, False)
        else:
            pyboy.button_press(button)
            pyboy.tick(self._hold, False)
            pyboy.button_release(button)
        pyboy.tick(self._rest, True)
        return self._after_frames()

    def _after_frames(self) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """All a step adds to raw emulation: state, rewards, observation (timed by the bench)."""
        self._steps += 1
        wram = self._wram.snapshot()
        self.state = state = read_game_state(wram)
        terms = self._rewards.step(state)
        truncated = bool(self._max_steps) and self._steps >= self._max_steps
        info: dict[str, Any] = {"state": state, "rewards": terms}
        if state.map_id != self._map_at:
            self._came_from, self._map_at = self._map_at, state.map_id
            self._map_reads = 2
        if self._map_reads:
            self._read_map(wram, info)
        self._read_ground(wram, info)
        return self._observe(), sum(terms.values()), False, truncated, info

    def _read_map(self, wram: bytes, info: dict[str, Any]) -> None:
        """Puts the current map's node in ``info`` when it differs from the last one put there.
        A map is read on the step it changes and the one after (its header may have been
        loading across the frame the step ended on), and on until its header has loaded."""
        node = read_map_node(Bus(self.rom.data, wram), self._came_from)
        self._map_reads = self._map_reads - 1 if node is not None else 1
        if node is not None and node != self._map_reported:
            info["map"] = self._map_reported = node

    def _read_ground(self, wram: bytes, info: dict[str, Any]) -> None:
        """Puts in ``info["ground"]`` the cells of the map on screen whose reading is new to
        this env: never reported, or reported as a wall and now walkable. Only the overworld is
        read (a text box or a battle covers the tile map), once per place the player stands in
        an episode, so that a step costs a set look-up once the places are known; a wall is
        read again from each new place, since a menu drawn over the tile map may have hidden the
        ground. A cell where a sprite stands is left for later (the cartridge draws its people
        into the tile map), and the player's own cell is walkable."""
        state, node = self.state, self._map_reported
        assert state is not None
        at = (state.map_id, state.x, state.y)
        if at in self._looked or node is None or node.map_id != state.map_id:
            return
        if state.battle != "none" or state.text_shown:
            return
        self._looked.add(at)
        known = self._ground_known.setdefault(state.map_id, {})
        left, top = state.x - PLAYER_COLUMN, state.y - PLAYER_ROW
        unsure = [
            (left + column, top + row, row, column)
            for row in range(SCREEN_ROWS)
            for column in range(SCREEN_COLUMNS)
            if node.contains(left + column, top + row)
            and not known.get((left + column, top + row), False)
        ]
        if not unsure:
            return
        memory = Bus(self.rom.data, wram)
        walkable = read_collision_tiles(memory)
        people = {(p.x, p.y) for p in read_sprites(memory) if p.on_screen}
        cells = []
        for x, y, row, column in unsure:
            if (x, y) in people:
                continue
            open_ = (x, y) == (state.x, state.y) or cell_tile(memory, row, column) in walkable
            if known.get((x, y)) is not open_:
                known[(x, y)] = open_
                cells.append((x, y, open_))
        if cells:
            info["ground"] = (state.map_id, tuple(cells))

    def snapshot(self) -> bytes:
        """The emulator's state now, for ``reset(options={"state": ...})`` to return to."""
        buffer = io.BytesIO()
        self._pyboy.save_state(buffer)
        return buffer.getvalue()

    def _observe(self) -> dict[str, np.ndarray]:
        return {"screen": self.screen(), "state": self.state.vector()}

    def screen(self) -> np.ndarray:
        """The current screen as shade indices, a fresh uint8 (144, 160) array."""
        if self._headless:
            return self._screen_u32.astype(np.uint8)
        return (3 - (self._screen_red >> 6)).astype(np.uint8)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return np.repeat(GREYS[self.screen()][..., None], 3, axis=-1)

    def close(self) -> None:
        if getattr(self, "_pyboy", None) is not None:
            self._pyboy.stop(save=False)
            self._pyboy = None

"""Fast reads of the Game Boy's work RAM ($C000–$DFFF), where every variable we use lives.

PyBoy's public ``memory`` view reads one byte per call (~25–50 ns each): the 320 bytes of event
flags alone cost 7 µs a step, more than our whole budget of 5% over raw emulation allows for the
GameState. PyBoy keeps work RAM in an 8 KiB buffer object, so we find that buffer once, check that
it is the RAM (it matches the public view, and still does after the emulator runs), and read it
with one copy a step (~0.5 µs). When it cannot be found — another PyBoy version, another layout —
we fall back to the public view: slower, never wrong.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import numpy as np

WRAM_START, WRAM_END = 0xC000, 0xE000
WRAM_SIZE = WRAM_END - WRAM_START

log = logging.getLogger(__name__)


def _public_wram(pyboy: Any) -> bytes:
    return bytes(pyboy.memory[WRAM_START:WRAM_END])


def _candidates(pyboy: Any) -> list[np.ndarray]:
    """8 KiB buffers whose bytes equal work RAM now (VRAM, say, may too while both are blank)."""
    wram = _public_wram(pyboy)
    found = []
    for obj in gc.get_objects():
        if type(obj).__name__ != "array":  # Cython's array type; a cheap filter first
            continue
        try:
            view = memoryview(obj)
        except TypeError:
            continue
        if view.nbytes == WRAM_SIZE and view.tobytes() == wram:
            found.append(np.frombuffer(obj, dtype=np.uint8))
    return found


def _is_live(pyboy: Any, buffer: np.ndarray) -> bool:
    """Whether ``buffer`` is the emulator's RAM itself: a write through PyBoy shows in it."""
    old = pyboy.memory[WRAM_START]
    pyboy.memory[WRAM_START] = old ^ 0xFF
    seen = int(buffer[0])
    pyboy.memory[WRAM_START] = old  # undone at once: the game never sees it
    return seen == old ^ 0xFF and int(buffer[0]) == old


class WorkRam:
    """Snapshots of work RAM as ``bytes`` (index = address − $C000) for one PyBoy."""

    def __init__(self, pyboy: Any) -> None:
        self._pyboy = pyboy
        self._buffer = next((b for b in _candidates(pyboy) if _is_live(pyboy, b)), None)
        if self._buffer is None:
            log.warning("fast RAM reads unavailable with this PyBoy; using its slower memory view")

    @property
    def fast(self) -> bool:
        return self._buffer is not None

    def snapshot(self) -> bytes:
        if self._buffer is not None:
            return self._buffer.tobytes()
        return _public_wram(self._pyboy)


def wram_snapshot(pyboy: Any) -> bytes:
    """Work RAM through PyBoy's public view: for tools and tests, not the per-step path."""
    return _public_wram(pyboy)

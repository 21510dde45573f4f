"""The Game Boy screen in a terminal: two pixels a cell, drawn with the upper half block.

Each cell shows ``▀`` with the upper pixel's grey as its foreground and the lower pixel's as its
background, so a 160×144 frame takes 160×72 cells at full size. At half size each cell covers a
2×2 block of pixels above another 2×2 block (80×36 cells); a block takes its darkest pixel, which
keeps one-pixel lines (text, outlines) visible where subsampling would drop every other one. At
quarter size (40×18 cells, for terminals from 80×24) a block is 4×4 pixels and takes the darkest
shade that two of its pixels share: the darkest pixel alone would turn the floors' and paths'
one-pixel dither into a checkerboard as dark as the walls, while lines two pixels long or more
(outlines, sprites, the text box's border) still survive; text does not read at this size
anyway, which is why the dialog panel carries it.

Speed comes from never building a style or a segment per frame: a cell is one of 16 (upper, lower)
shade pairs, and a run of equal cells one of 16 × 160 prebuilt segments, so a row is one list of
look-ups over its runs (found with numpy). Only the rows that differ from the last frame are
rebuilt and repainted; a still scene costs nothing.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from pokedreamer.env.frames import FRAME_SHAPE, GREYS

HALF_BLOCK = "▀"
FRAME_HEIGHT, FRAME_WIDTH = FRAME_SHAPE
FULL_CELLS = Size(FRAME_WIDTH, FRAME_HEIGHT // 2)  # 160 × 72
HALF_CELLS = Size(FRAME_WIDTH // 2, FRAME_HEIGHT // 4)  # 80 × 36
QUARTER_CELLS = Size(FRAME_WIDTH // 4, FRAME_HEIGHT // 8)  # 40 × 18
SCALES: dict[int, Size] = {1: FULL_CELLS, 2: HALF_CELLS, 4: QUARTER_CELLS}
"""Pixels a cell is wide -> the cells a frame takes: full, half and quarter size."""

GREY_COLOURS: tuple[str, ...] = tuple(f"#{g:02x}{g:02x}{g:02x}" for g in GREYS.tolist())
"""Each shade index as the colour drawn, lightest first (the same greys as exported pictures)."""

# Cell code = upper shade * 4 + lower shade.
PAIR_STYLES: tuple[Style, ...] = tuple(
    Style(color=GREY_COLOURS[code >> 2], bgcolor=GREY_COLOURS[code & 3]) for code in range(16)
)
_RUNS: tuple[tuple[Segment, ...], ...] = tuple(
    tuple(Segment(HALF_BLOCK * length, style) for length in range(FRAME_WIDTH + 1))
    for style in PAIR_STYLES
)


def cell_codes(frame: np.ndarray, half: bool) -> np.ndarray:
    """The (upper, lower) shade pair of every cell as ``upper * 4 + lower``: uint8 (72, 160) at
    full size, (36, 80) at half size."""
    return scaled_codes(frame, 2 if half else 1)


def scaled_codes(frame: np.ndarray, scale: int) -> np.ndarray:
    """The (upper, lower) shade pair of every cell as ``upper * 4 + lower`` at ``scale``: uint8
    (72, 160) at full size (1), (36, 80) at half size (2), (18, 40) at quarter size (4)."""
    if scale not in SCALES:
        raise ValueError(f"a screen's scale is one of {tuple(SCALES)}, not {scale}")
    if frame.shape != FRAME_SHAPE:
        raise ValueError(f"a frame must be (144, 160) shade indices, got {frame.shape}")
    # An imagined frame is the model's argmax, so always 0..3; the clip only keeps a stray value
    # from indexing past the 16 styles.
    shades = frame if frame.dtype == np.uint8 else frame.astype(np.uint8)
    if shades.max() > 3:
        shades = np.minimum(shades, 3)
    if scale == 2:
        # Four strided views and three maxima: ~10x faster than a max over reshaped axes.
        shades = np.maximum(
            np.maximum(shades[0::2, 0::2], shades[0::2, 1::2]),
            np.maximum(shades[1::2, 0::2], shades[1::2, 1::2]),
        )
    elif scale == 4:
        shades = shared_darkest(shades)
    return (shades[0::2] << 2) | shades[1::2]


def shared_darkest(shades: np.ndarray) -> np.ndarray:
    """Each 4×4 block's second darkest pixel, i.e. the darkest shade that two of its pixels
    share: (36, 40) from (144, 160)."""
    blocks = shades.reshape(FRAME_HEIGHT // 4, 4, FRAME_WIDTH // 4, 4).transpose(0, 2, 1, 3)
    flat = blocks.reshape(FRAME_HEIGHT // 4, FRAME_WIDTH // 4, 16)
    return np.partition(flat, 14, axis=-1)[..., 14]  # ~5x faster than counting each shade


def row_strips(codes: np.ndarray, rows: np.ndarray | None = None) -> dict[int, Strip]:
    """One Strip per cell row (only ``rows``, when given), each a run-length list of segments."""
    height, width = codes.shape
    if rows is None:
        rows = np.arange(height)
    picked = codes[rows]
    starts = np.ones(picked.shape, dtype=bool)
    starts[:, 1:] = picked[:, 1:] != picked[:, :-1]
    flat = np.flatnonzero(starts)  # every row begins a run, so rows never merge
    lengths = np.diff(flat, append=picked.size).tolist()
    values = picked.ravel()[flat].tolist()
    per_row = np.bincount(flat // width, minlength=len(rows)).tolist()
    strips: dict[int, Strip] = {}
    at = 0
    for row, count in zip(rows.tolist(), per_row, strict=True):
        end = at + count
        strips[row] = Strip(
            [_RUNS[v][n] for v, n in zip(values[at:end], lengths[at:end], strict=True)], width
        )
        at = end
    return strips


class GameScreen(Widget):
    """A Game Boy frame, redrawn in place; ``show`` may be called as often as frames arrive."""

    DEFAULT_CSS = """
    GameScreen {
        width: 80;
        height: 36;
    }
    GameScreen.-full {
        width: 160;
        height: 72;
    }
    GameScreen.-quarter {
        width: 40;
        height: 18;
    }
    """

    scale: reactive[int] = reactive(2)
    """Pixels a cell is wide: 1 (full size, 160×72 cells), 2 (half, 80×36), 4 (quarter, 40×18)."""

    def __init__(
        self, placeholder: str = "", *, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(name=name, id=id)
        self.placeholder = placeholder
        """Drawn, centred, until the first frame arrives."""
        self.frame: np.ndarray | None = None
        self.updates = 0
        """How many frames changed what is drawn."""
        self._codes: np.ndarray | None = None
        self._strips: list[Strip] = []

    def show(self, frame: np.ndarray) -> None:
        """Draws ``frame`` (uint8 shade indices, 144×160), repainting only the rows it changes."""
        codes = scaled_codes(frame, self.scale)
        self.frame = frame
        previous = self._codes
        self._codes = codes
        if previous is None or previous.shape != codes.shape:
            self._strips = list(row_strips(codes).values())
            self.updates += 1
            self.refresh()
            return
        changed = np.flatnonzero((codes != previous).any(axis=1))
        if not len(changed):
            return
        for row, strip in row_strips(codes, changed).items():
            self._strips[row] = strip
        self.updates += 1
        # One region from the first changed row to the last: Textual redraws the bounding box of
        # what changed anyway, and each refresh call has its own cost.
        self.refresh(Region(0, int(changed[0]), codes.shape[1], int(changed[-1] - changed[0]) + 1))

    def continue_from(self, other: GameScreen) -> None:
        """Shows what ``other`` shows and counts its updates on: a widget taken out of the screen
        cannot be mounted again, so a re-arranged screen shows its frames in new ones."""
        self.placeholder = other.placeholder
        self.updates = other.updates
        if other.frame is not None:
            self.show(other.frame)

    def validate_scale(self, scale: int) -> int:
        if scale not in SCALES:
            raise ValueError(f"a screen's scale is one of {tuple(SCALES)}, not {scale}")
        return scale

    def watch_scale(self, scale: int) -> None:
        self.set_class(scale == 1, "-full")
        self.set_class(scale == 4, "-quarter")
        if self.frame is not None:
            frame, self._codes = self.frame, None
            self.show(frame)

    def render_lines(self, crop: Region) -> list[Strip]:
        # Straight from the prebuilt rows, skipping the styles cache that other widgets go
        # through (borders, padding, filters — none of which this widget has): at 30 updates a
        # second that machinery cost more than building the rows.
        lines = [self.render_line(y) for y in crop.line_range]
        if crop.x == 0 and crop.width == self.size.width:
            return lines
        return [line.crop(crop.x, crop.right) for line in lines]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y < len(self._strips):
            strip = self._strips[y]
            return strip if strip.cell_length == width else strip.crop_extend(0, width, None)
        if not self._strips and self.placeholder and y == self.size.height // 2:
            text = self.placeholder[:width].center(width)
            return Strip([Segment(text, Style(color="grey50"))], width)
        return Strip.blank(width)

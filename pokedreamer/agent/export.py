"""``pokedreamer export``: a recorded episode as a GIF or MP4, with what the agent knew under it.

Each kept step becomes one video frame: the screen in the Game Boy's four greys, scaled by a
whole number, over a bar that reads the step, the reward (this step's and the running return),
the map and position, and the active subgoal. GIFs are written with Pillow; MP4s with the ffmpeg
binary that the ``imageio-ffmpeg`` wheel ships, when it is installed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pokedreamer.agent.episodes import EpisodeReader, StepRecord
from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.errors import UserError, error_line

FORMATS = (".gif", ".mp4")
MAX_SCALE = 8
#: GIF players show frames shorter than 20 ms for 100 ms instead, so faster GIFs would crawl.
MAX_GIF_FPS = 50.0
MAX_FPS = 240.0
MIN_FPS = 0.1  # GIF delays stop at 655 s

#: Shade index (0 lightest) to grey level, as the DMG's four-colour palette reads in greyscale.
GREYS = np.array([255, 170, 85, 0], dtype=np.uint8)
BAR_LINES = 3
LINE_PITCH = 12  # the bitmap font is 6 x 11 pixels
BAR_PAD = 4
# 16 keeps the frame height a multiple of the H.264 macroblock (144 = 9 * 16 and the width
# 160 = 10 * 16 already are), so ffmpeg need not resize; GIFs use the same layout for likeness.
BAR_HEIGHT = -(-(BAR_LINES * LINE_PITCH + 2 * BAR_PAD) // 16) * 16
# The bar is drawn in shade indices like the screen, so a video frame holds 4 values only: a
# 4-colour GIF palette, and the same picture in GIF and MP4.
BAR_BACKGROUND = 3  # black
BAR_TEXT = 0  # white

MP4_MISSING = (
    "MP4 export needs an encoder: install it with `pip install imageio-ffmpeg`, "
    "or export a .gif instead"
)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    frames: int
    steps: int
    width: int
    height: int
    #: As played: a GIF's rate is rounded to whole hundredths of a second a frame.
    fps: float


@cache
def _font() -> Any:
    # The bitmap font bundled with Pillow: crisp at any scale, and no font file to find.
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader else ImageFont.load_default()


def _latin1(text: str) -> str:
    # The bitmap font covers Latin-1 only (enough for "POKéMON"); anything else shows as "?".
    return text.encode("latin-1", "replace").decode("latin-1")


def _fit(text: str, width: int) -> str:
    """Cuts ``text`` to ``width`` pixels of the monospaced font, marking the cut with "..."."""
    font = _font()
    if font.getlength(text) <= width:
        return text
    chars = max(0, int(width // max(font.getlength("M"), 1)) - 3)
    return text[:chars] + "..."


def overlay_lines(step: StepRecord, total: int, ret: float) -> tuple[str, str, str]:
    """The bar's three lines for one step: numbers, place, subgoal."""
    s = step.state
    place = f"{s.map_name} ({s.x}, {s.y})"
    if s.battle != "none":
        place += f"  battle: {s.battle}"
    return (
        f"step {step.index}/{total - 1}  r {step.reward:+.3f}  return {ret:+.2f}",
        place,
        f"> {step.subgoal or 'no subgoal'}",
    )


def render_shades(frame: np.ndarray, lines: tuple[str, ...], scale: int = 2) -> np.ndarray:
    """One video frame as shade indices (0-3): the screen (144x160 shade indices) scaled up,
    with ``lines`` written in the bar under it."""
    if frame.shape != FRAME_SHAPE:
        raise ValueError(f"a frame must be (144, 160) shade indices, got {frame.shape}")
    width = FRAME_SHAPE[1] * scale
    bar = Image.new("L", (width, BAR_HEIGHT), BAR_BACKGROUND)
    draw = ImageDraw.Draw(bar)
    font = _font()
    for row, text in enumerate(lines[:BAR_LINES]):
        y = BAR_PAD + row * LINE_PITCH
        draw.text((BAR_PAD, y), _fit(_latin1(text), width - 2 * BAR_PAD), fill=BAR_TEXT, font=font)
    screen = frame.repeat(scale, 0).repeat(scale, 1)
    return np.concatenate([screen, np.asarray(bar)])


def render_frame(frame: np.ndarray, lines: tuple[str, ...], scale: int = 2) -> Image.Image:
    """``render_shades`` in greys, as a Pillow "L" image."""
    return Image.fromarray(GREYS[render_shades(frame, lines, scale)], mode="L")


def mp4_writer() -> Callable[..., Any] | None:
    """imageio-ffmpeg's frame writer if it and its ffmpeg binary are there, else None."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        imageio_ffmpeg.get_ffmpeg_exe()  # a wheel without a binary, and no ffmpeg on PATH
    except RuntimeError:
        return None
    return imageio_ffmpeg.write_frames


def check_export(out: Path, scale: int, every: int, fps: float) -> str:
    """Checks the options before any frame is drawn; returns the format (".gif" or ".mp4")."""
    kind = out.suffix.lower()
    if kind not in FORMATS:
        raise UserError(f"--out must end in .mp4 or .gif, got {out.name!r}")
    if not 1 <= scale <= MAX_SCALE:
        raise UserError(f"--scale must be 1 to {MAX_SCALE}, got {scale}")
    if every < 1:
        raise UserError(f"--every must be 1 or more, got {every}")
    top = MAX_GIF_FPS if kind == ".gif" else MAX_FPS
    if not MIN_FPS <= fps <= top:
        why = " (GIF players slow faster frames down; use .mp4)" if kind == ".gif" else ""
        raise UserError(f"--fps must be {MIN_FPS:g} to {top:g} for {kind}{why}, got {fps:g}")
    if kind == ".mp4" and mp4_writer() is None:
        raise UserError(MP4_MISSING)
    if out.is_dir():
        raise UserError(f"--out is a folder: {out}; name the file to write")
    if not out.parent.is_dir():
        raise UserError(f"output folder not found: {out.parent}")
    return kind


def _frames(
    episode: EpisodeReader,
    scale: int,
    every: int,
    progress: Callable[[int], None] | None,
) -> Iterator[np.ndarray]:
    frames = episode.frames()
    total = len(episode)
    ret = 0.0
    for i, step in enumerate(episode.iter_steps()):  # one at a time: memory stays flat
        ret += step.reward  # the running return counts skipped steps too
        if i % every:
            continue
        yield render_shades(frames[i], overlay_lines(step, total, ret), scale)
        if progress is not None:
            progress(i + 1)


_GIF_PALETTE = np.repeat(GREYS, 3).tolist()  # index i -> (g, g, g)


def _gif_image(shades: np.ndarray) -> Image.Image:
    image = Image.fromarray(shades, mode="P")
    image.putpalette(_GIF_PALETTE)
    return image


def gif_delay_ms(fps: float) -> int:
    """A GIF frame's delay: GIFs count hundredths of a second, so 15 fps becomes 70 ms (rounded
    here; Pillow would truncate to 60)."""
    return max(1, round(100 / fps)) * 10


def _write_gif(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """Writes the GIF one frame at a time, each cropped to what changed since the last.

    Pillow's ``save(save_all=True)`` keeps every frame in memory until it finishes (~130 KB a
    frame at scale 2: gigabytes for a long episode), so the file is assembled here from
    Pillow's documented per-frame encoder, ``GifImagePlugin.getheader``/``getdata``.
    """
    from PIL import GifImagePlugin

    duration = gif_delay_ms(fps)
    first = next(frames)
    # One global 4-grey palette for every frame; "optimize" off, so it is never reordered.
    header, _ = GifImagePlugin.getheader(
        _gif_image(first), None, {"loop": 0, "duration": duration, "optimize": False}
    )
    count = 0
    previous: np.ndarray | None = None
    with path.open("wb") as fp:
        fp.write(b"".join(header))
        for shades in itertools.chain([first], frames):
            x0, y0, x1, y1 = _changed_box(previous, shades)
            # Disposal 1 leaves each frame in place, so a cropped one draws over the last.
            data = GifImagePlugin.getdata(
                _gif_image(np.ascontiguousarray(shades[y0:y1, x0:x1])),
                offset=(x0, y0),
                duration=duration,
                disposal=1,
            )
            fp.write(b"".join(data))
            previous = shades
            count += 1
        fp.write(b";")  # the GIF trailer
    return count


def _changed_box(previous: np.ndarray | None, current: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the pixels that differ; at least one pixel, since every step
    keeps its own frame (and its share of the time)."""
    if previous is None:
        return 0, 0, current.shape[1], current.shape[0]
    changed = previous != current
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    if not len(rows):
        return 0, 0, 1, 1
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    write_frames = mp4_writer()
    if write_frames is None:
        raise UserError(MP4_MISSING)
    writer = write_frames(
        str(path),
        size,
        pix_fmt_in="gray",
        fps=fps,
        quality=8,  # sharp pixel edges; grey video compresses well anyway
        macro_block_size=1,  # the size is a multiple of 16 already (see BAR_HEIGHT)
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],  # playable while a browser still loads it
    )
    count = 0
    try:
        writer.send(None)  # starts ffmpeg
        for shades in frames:
            writer.send(GREYS[shades].tobytes())
            count += 1
    except (OSError, RuntimeError) as exc:
        raise UserError(f"ffmpeg could not write {path}: {error_line(exc)}") from None
    finally:
        writer.close()
    return count


def export_episode(
    episode: EpisodeReader,
    out: str | Path,
    scale: int = 2,
    every: int = 1,
    fps: float = 20.0,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Renders every ``every``-th step of ``episode`` into ``out`` (.gif or .mp4).

    The file appears whole or not at all: it is written beside ``out`` under a hidden name and
    renamed at the end. ``progress`` hears the number of steps done after each frame.
    """
    out = Path(out)
    kind = check_export(out, scale, every, fps)
    if len(episode) == 0:
        raise UserError(f"episode {episode.path} has no steps to export")
    width, height = FRAME_SHAPE[1] * scale, FRAME_SHAPE[0] * scale + BAR_HEIGHT
    # The suffix stays last, since ffmpeg picks its container from the file name.
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    frames = _frames(episode, scale, every, progress)
    try:
        if kind == ".gif":
            count = _write_gif(partial, frames, fps)
        else:
            count = _write_mp4(partial, frames, fps, (width, height))
        os.replace(partial, out)
    except OSError as exc:
        raise UserError(f"could not write {out}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    shown_fps = 1000 / gif_delay_ms(fps) if kind == ".gif" else fps
    return ExportResult(out, count, len(episode), width, height, shown_fps)

"""What a terminal would be sent: a headless app's screen updates encoded to ANSI.

Headless Textual (tests, the bench, ``--headless``) stops short of the last step a terminal
driver takes: it computes each screen update but never renders it to escape sequences, which is
a large part of what drawing costs. ``encode_like_a_terminal`` adds that step back, so that a
headless dashboard does (and is timed doing) a real terminal's work.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from textual.app import App


def encode_like_a_terminal(app: App[Any], size: tuple[int, int]) -> list[int]:
    """Makes ``app`` encode each screen update to ANSI for a truecolor terminal of ``size``
    (width, height) before it displays it; returns the list the length of each update's text
    goes to. Call it before the app runs.

    Textual has no public hook between an update and its display, so this wraps
    ``App._display``, the method every update goes through."""
    display = getattr(app, "_display", None)
    if not callable(display):
        raise RuntimeError("this version of Textual has no App._display to encode updates from")
    width, height = size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True,
        color_system="truecolor", legacy_windows=False,
    )  # fmt: skip
    sizes: list[int] = []

    def encode(screen: Any, renderable: Any) -> None:
        if renderable is not None and hasattr(renderable, "render_segments"):
            sizes.append(len(renderable.render_segments(console)))
        display(screen, renderable)

    app._display = encode  # type: ignore[method-assign]
    return sizes

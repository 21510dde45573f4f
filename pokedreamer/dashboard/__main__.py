"""The dashboard's own process: ``python -m pokedreamer.dashboard FD [--headless WIDTHxHEIGHT]``.

``process.DashboardProcess`` starts it with its end of a socket pair as file descriptor FD. It
reads the loop's ``Hello``, stands a ``LoopProxy`` in for the loop, and runs the dashboard over
it; about once a second and as it exits it reports to the loop's side what it drew
(``UIStats``). ``--headless``: no terminal; the screen is WIDTHxHEIGHT and each update is still
encoded to ANSI, as a terminal driver would (tests, the bench).
"""

from __future__ import annotations

import argparse
import sys
import threading
from multiprocessing.connection import Connection

from pokedreamer.dashboard.app import Dashboard
from pokedreamer.dashboard.bridge import Hello, LoopProxy, UIStats, receive
from pokedreamer.dashboard.terminal import encode_like_a_terminal

REPORT_EVERY_S = 1.0
"""How often the UI tells the loop's side what it has drawn."""


def ui_stats(app: Dashboard) -> UIStats | None:
    """Frames drawn a second and the process's share of a core, from the first frame drawn on;
    None before a frame has been drawn."""
    pacer = app.board.pacer
    first = pacer.first_frame_at
    if first is None:
        return None
    elapsed = pacer.clock() - first[0]
    if elapsed <= 0:
        return None
    frames = pacer.frames_drawn - first[2]
    return UIStats(frames / elapsed, (pacer.process_clock() - first[1]) / elapsed)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pokedreamer.dashboard")
    parser.add_argument("fd", type=int, help="this process's end of the loop's socket pair")
    parser.add_argument("--headless", type=_size, metavar="WIDTHxHEIGHT")
    arguments = parser.parse_args(argv[1:])
    conn = Connection(arguments.fd)
    hello: Hello = receive(conn)
    proxy = LoopProxy(conn, hello)
    app = Dashboard(
        proxy, human=hello.want_human, imagined=hello.imagined,
        exits_with_loop=lambda: proxy.close_ui,
    )  # fmt: skip
    headless = arguments.headless
    if headless is not None:
        encode_like_a_terminal(app, headless)
    done = threading.Event()

    def report() -> None:
        while not done.wait(REPORT_EVERY_S):
            stats = ui_stats(app)
            if stats is not None:
                proxy.report(stats)

    reporter = threading.Thread(target=report, name="dashboard report", daemon=True)
    reporter.start()
    try:
        app.run(headless=headless is not None, size=headless)
    finally:
        done.set()
        reporter.join()
    stats = ui_stats(app)
    if stats is not None:
        proxy.report(stats)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

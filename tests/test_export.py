"""pokedreamer export: recorded episodes to GIF and MP4, and its one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import cli
from PIL import Image

from pokedreamer.agent.episodes import EpisodeRecorder, open_episode
from pokedreamer.agent.export import (
    BAR_HEIGHT,
    GREYS,
    MP4_MISSING,
    check_export,
    export_episode,
    gif_delay_ms,
    mp4_writer,
    overlay_lines,
    render_frame,
)
from pokedreamer.cli import main
from pokedreamer.env.state import GameState, PartyMon
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir

STEPS = 30


def make_state(i: int) -> GameState:
    return GameState(
        map_id=0x25,
        map_name="REDS_HOUSE_1F",
        x=3 + i % 5,
        y=4,
        facing="down",
        battle="wild" if i == 7 else "none",
        enemy_hp=10,
        enemy_max_hp=20,
        text_shown=False,
        text=(),
        party=(PartyMon(0xB1, 5, 20, 20),),
        badges=0,
        money=3000,
        event_flags=bytes(320),
        pokedex_owned=1,
        pokedex_seen=1,
        bag=(),
    )


def make_frame(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 4, (144, 160), dtype=np.uint8)


def record(run: RunDir, steps: int = STEPS) -> Path:
    recorder = EpisodeRecorder(run)
    recorder.start({"seed": 0})
    for i in range(steps):
        subgoal = "go to OAKS_LAB (5, 3)" if i < 20 else None
        recorder.step(make_frame(i), i % 8 or None, 0.5, {"explore": 0.5}, make_state(i), subgoal)
    return recorder.end({})


@pytest.fixture
def run(isolated: Path) -> RunDir:
    """A run named "r" under the default runs/ of the test's working folder, one 30-step episode."""
    run = RunDir(isolated / "runs" / "r")
    record(run)
    return run


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        assert image.format == "GIF"
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("L")))
    return frames


def screen(frame: np.ndarray, scale: int) -> np.ndarray:
    return GREYS[frame].repeat(scale, 0).repeat(scale, 1)


def test_gif_keeps_every_kth_step_with_exact_greys(run: RunDir, isolated: Path) -> None:
    result = export_episode(open_episode(run), "all.gif", scale=1, every=1, fps=25)
    assert (result.frames, result.steps) == (STEPS, STEPS)
    assert (result.width, result.height) == (160, 144 + BAR_HEIGHT)
    assert (isolated / "all.gif").read_bytes()[:6] == b"GIF89a"
    frames = gif_frames(isolated / "all.gif")
    assert len(frames) == STEPS
    assert frames[0].shape == (144 + BAR_HEIGHT, 160)
    for i in (0, 13, 29):
        assert np.array_equal(frames[i][:144], screen(make_frame(i), 1))
    with Image.open(isolated / "all.gif") as image:
        assert image.info["duration"] == 40 and image.info["loop"] == 0

    result = export_episode(open_episode(run), "some.gif", scale=2, every=4)
    assert result.frames == 8  # steps 0, 4, ..., 28
    frames = gif_frames(isolated / "some.gif")
    assert len(frames) == 8
    assert np.array_equal(frames[2][:288], screen(make_frame(8), 2))
    # The bar has text drawn in it, and nothing but the file itself is left behind.
    assert frames[0][288:].max() == 255
    assert sorted(p.name for p in isolated.iterdir() if p.suffix == ".gif") == [
        "all.gif", "some.gif",
    ]  # fmt: skip


def test_overlay_reads_step_place_subgoal_and_return(run: RunDir) -> None:
    steps = open_episode(run).steps()
    assert overlay_lines(steps[7], STEPS, 4.0) == (
        "step 7/29  r +0.500  return +4.00",
        "REDS_HOUSE_1F (5, 4)  battle: wild",
        "> go to OAKS_LAB (5, 3)",
    )
    assert overlay_lines(steps[25], STEPS, 13.0)[2] == "> no subgoal"


def test_long_and_non_latin1_text_fits_the_bar() -> None:
    frame = np.zeros((144, 160), np.uint8)
    image = render_frame(frame, ("x" * 200, "→ ünïcode", ""), scale=1)
    assert image.size == (160, 144 + BAR_HEIGHT)
    assert np.asarray(image)[:144].min() == 255  # shade 0 is the lightest grey


def test_cli_exports_the_latest_episode_by_default(run: RunDir, isolated: Path) -> None:
    record(run, steps=6)  # episode 2, the latest
    result = cli("export", "r", "--out", "latest.gif", "--every", "2", "--scale", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote latest.gif: 3 frames from episode 2 (6 steps, every 2)")
    assert len(gif_frames(isolated / "latest.gif")) == 3
    result = cli("export", str(run.path), "1", "--out", "first.gif", "--every", "7")
    assert result.returncode == 0, result.stderr
    assert len(gif_frames(isolated / "first.gif")) == 5  # steps 0, 7, 14, 21, 28


@pytest.mark.skipif(mp4_writer() is None, reason="imageio-ffmpeg is not installed")
def test_mp4(run: RunDir, isolated: Path) -> None:
    import imageio_ffmpeg

    result = export_episode(open_episode(run), isolated / "ep.mp4", every=3, fps=10)
    assert result.frames == 10
    data = (isolated / "ep.mp4").read_bytes()
    assert data[4:8] == b"ftyp"
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(isolated / "ep.mp4"))
    assert frames == 10 and seconds == pytest.approx(1.0, abs=0.15)
    # Decoded, the screen is the recorded one give or take the codec's loss.
    reader = imageio_ffmpeg.read_frames(str(isolated / "ep.mp4"), pix_fmt="gray", bpp=1)
    meta = next(reader)
    assert tuple(meta["size"]) == (320, 288 + BAR_HEIGHT)
    decoded = [np.frombuffer(raw, np.uint8).reshape(288 + BAR_HEIGHT, 320) for raw in reader]
    assert len(decoded) == 10
    error = np.abs(decoded[4][:288].astype(int) - screen(make_frame(12), 2)).mean()
    assert error < 20, error  # a wrong frame or a skewed stride is ~100 off on random pixels


def test_mp4_without_an_encoder_is_one_clear_error(
    run: RunDir, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    with pytest.raises(UserError) as exc:
        check_export(isolated / "ep.mp4", 2, 1, 20.0)
    assert str(exc.value) == MP4_MISSING

    # The real command, in an interpreter where the package cannot be imported.
    blocker = isolated / "blocker"
    blocker.mkdir()
    (blocker / "imageio_ffmpeg.py").write_text("raise ImportError('blocked')\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    result = cli("export", "r", "--out", "ep.mp4")
    assert result.returncode == 2
    assert result.stderr == f"error: {MP4_MISSING}\n"
    assert not (isolated / "ep.mp4").exists()


def test_missing_run_or_episode_is_one_line_exit_2(run: RunDir) -> None:
    result = cli("export", "nope", "--out", "x.gif")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: run not found: nope (no folder {Path('runs') / 'nope'})\n"

    result = cli("export", "r", "9", "--out", "x.gif")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: episode 9 not found in ")
    assert "(it has 1, numbered 1 to 1)" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.avi"], "error: --out must end in .mp4 or .gif, got 'x.avi'\n"),
        (["--out", "x.gif", "--fps", "60"], "error: --fps must be 0.1 to 50 for "
         ".gif (GIF players slow faster frames down; use .mp4), got 60\n"),
        (["--out", "no/such/dir/x.gif"], "error: output folder not found: no/such/dir\n"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line_exit_2(
    run: RunDir, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", "r", *args])
    assert info.value.code == 2
    assert capsys.readouterr().err == message


def test_empty_run_and_empty_episode(isolated: Path) -> None:
    run = RunDir(isolated / "runs" / "empty")
    run.path.mkdir(parents=True)
    with pytest.raises(UserError, match="no recorded episodes"):
        open_episode(run)
    recorder = EpisodeRecorder(run)
    recorder.start({})
    recorder.close()
    with pytest.raises(UserError, match="has no steps to export"):
        export_episode(open_episode(run), "x.gif")


def test_gif_delays_round_to_hundredths(run: RunDir, isolated: Path) -> None:
    assert [gif_delay_ms(fps) for fps in (50, 20, 15, 0.1)] == [20, 50, 70, 10_000]
    result = export_episode(open_episode(run), "slow.gif", every=10, fps=15)
    assert result.fps == pytest.approx(1000 / 70)
    with Image.open(isolated / "slow.gif") as image:
        assert image.info["duration"] == 70

"""The world model's health check: the open-loop report.

For each sequence the model observes ``context`` real steps (the posterior), then imagines
``horizon`` more under the logged actions with the prior alone. Per imagined step we compare with
what really happened: the player's tile (state heads' x, y against the GameState, Euclidean, in
tiles), the map id, the decoded screen (PSNR over shades scaled to [0, 1], at the model's
resolution) and the reward. The observed half gives the 1-step reconstruction PSNR. Outputs: a
JSON and a markdown report, a PNG grid (real / model / difference) and a GIF of real beside
imagined.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from pokedreamer.env.frames import GREYS
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import latest_checkpoint
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.replay import Replay
from pokedreamer.world_model.trainer import CHECKPOINT_NAME, WorldModelTrainer

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.rundir import RunDir
    from pokedreamer.world_model.heads import StateRanges

PSNR_CAP = 60.0  # dB for a perfect frame, so that averages stay finite


@dataclass
class OpenLoopReport:
    context: int
    horizon: int
    sequences: int
    recon_psnr: float  # observed steps, posterior reconstructions
    steps: list[dict[str, float]] = field(default_factory=list)  # one per imagined step

    def at(self, step: int) -> dict[str, float]:
        """The row of imagined step ``step`` (1-based)."""
        return self.steps[step - 1]

    def markdown(self, title: str) -> str:
        lines = [
            f"# {title}",
            "",
            f"{self.sequences} sequences; {self.context} observed steps, then {self.horizon} "
            "imagined under the logged actions.",
            "",
            f"**1-step reconstruction PSNR (observed steps): {self.recon_psnr:.2f} dB**",
            "",
            "| imagined step | tile error (tiles) | map-id accuracy | PSNR (dB) | reward error |",
            "|---|---|---|---|---|",
        ]
        for row in self.steps:
            lines.append(
                f"| {int(row['step'])} | {row['tile_error']:.3f} | {row['map_accuracy']:.3f} | "
                f"{row['psnr']:.2f} | {row['reward_error']:.4f} |"
            )
        return "\n".join(lines) + "\n"


def psnr(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (...) of shade frames (..., h, w), shades scaled to [0, 1]."""
    mse = ((pred.float() - true.float()) / 3.0).pow(2).mean((-2, -1))
    return (10.0 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP / 10)))).clamp_max(PSNR_CAP)


@torch.no_grad()
def open_loop(
    model: WorldModel, batch: dict[str, np.ndarray], context: int
) -> tuple[OpenLoopReport, np.ndarray, np.ndarray]:
    """The report over ``batch`` (sequences of context + horizon steps, as Replay.sample gives
    them), with the real and the model's shade frames (B, T, h, w): reconstructions for the
    observed steps, imagination after."""
    model.eval()
    device = next(model.parameters()).device
    t = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
    b, length = t["actions"].shape
    horizon = length - context
    assert context >= 1 and horizon >= 1, (context, length)
    shades = model.shades(t["frames"])
    embeds = model.embed_shades(shades[:, :context], t["states"][:, :context])
    posts, _ = model.rssm.observe(
        embeds, t["actions"][:, :context], t["is_first"][:, :context], sample=False
    )
    recon = model.decode(model.rssm.feat(posts)).argmax(-3)
    state = posts.map(lambda x: x[:, -1])
    feats = []
    for i in range(context, length):
        action = F.one_hot(t["actions"][:, i], model.num_actions).to(state.deter.dtype)
        state = model.rssm.img_step(state, action, sample=False)
        feats.append(model.rssm.feat(state))
    feat = torch.stack(feats, 1)  # (B, H, F)
    imagined = model.decode(feat).argmax(-3)
    preds = model.predict(feat)
    true = t["states"][:, context:]
    true_map = (true[..., 0] * 255).round().long()
    true_x, true_y = (true[..., 1] * 255).round(), (true[..., 2] * 255).round()
    tile_error = torch.sqrt((preds["x"].float() - true_x) ** 2 + (preds["y"].float() - true_y) ** 2)
    map_ok = (preds["map_id"] == true_map).float()
    frame_psnr = psnr(imagined, shades[:, context:])
    reward_error = (preds["reward"].float() - t["rewards"][:, context:]).abs()
    report = OpenLoopReport(
        context=context,
        horizon=horizon,
        sequences=b,
        recon_psnr=float(psnr(recon, shades[:, :context]).mean()),
    )
    for i in range(horizon):
        report.steps.append(
            {
                "step": i + 1,
                "tile_error": float(tile_error[:, i].mean()),
                "map_accuracy": float(map_ok[:, i].mean()),
                "psnr": float(frame_psnr[:, i].mean()),
                "reward_error": float(reward_error[:, i].mean()),
            }
        )
    model_frames = torch.cat([recon, imagined], 1)
    return report, shades.cpu().numpy(), model_frames.cpu().numpy()


def _grey(frame: np.ndarray, scale: int) -> np.ndarray:
    img = GREYS[frame]
    return img.repeat(scale, 0).repeat(scale, 1)


def write_grid(
    path: Path, real: np.ndarray, model: np.ndarray, context: int, rows: int = 4
) -> None:
    """A PNG: per sequence, three rows (real, model, difference) at chosen steps."""
    from PIL import Image

    length = real.shape[1]
    cols = sorted({context - 1, context, context + 4, context + 9, context + 14, length - 1})
    cols = [c for c in cols if c < length]
    h, w = real.shape[2:]
    scale = max(1, 160 // w)
    gap = 4
    tiles = []
    for s in range(min(rows, real.shape[0])):
        for kind in ("real", "model", "diff"):
            row = []
            for c in cols:
                if kind == "real":
                    frame = _grey(real[s, c], scale)
                elif kind == "model":
                    frame = _grey(model[s, c], scale)
                else:
                    diff = (real[s, c] != model[s, c]).astype(np.uint8) * 255
                    frame = (255 - diff).repeat(scale, 0).repeat(scale, 1)
                row.append(np.pad(frame, ((0, gap), (0, gap)), constant_values=255))
            tiles.append(np.concatenate(row, 1))
        tiles.append(np.full((gap * 2, tiles[-1].shape[1]), 255, np.uint8))
    Image.fromarray(np.concatenate(tiles, 0)).save(path)


def write_animation(path: Path, real: np.ndarray, model: np.ndarray, sequence: int = 0) -> None:
    """A GIF of one sequence: the real screen beside the model's, frame by frame."""
    from PIL import Image

    h, w = real.shape[2:]
    scale = max(1, 320 // w)
    frames = []
    for i in range(real.shape[1]):
        pair = np.concatenate(
            [_grey(real[sequence, i], scale), np.full((h * scale, 8), 255, np.uint8),
             _grey(model[sequence, i], scale)], 1,
        )  # fmt: skip
        frames.append(Image.fromarray(pair))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200, loop=0)


def write_report(
    out_dir: Path, report: OpenLoopReport, real: np.ndarray, model: np.ndarray, meta: dict[str, Any]
) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "openloop.json",
        "markdown": out_dir / "openloop.md",
        "grid": out_dir / "reconstruction.png",
        "animation": out_dir / "openloop.gif",
    }
    paths["json"].write_text(json.dumps({**meta, **asdict(report)}, indent=2) + "\n")
    title = f"Open-loop report — {meta.get('checkpoint', 'world model')}"
    details = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    paths["markdown"].write_text(report.markdown(title) + "\n" + details + "\n")
    write_grid(paths["grid"], real, model, report.context)
    write_animation(paths["animation"], real, model)
    return paths


def summary_line(report: OpenLoopReport) -> str:
    def at(step: int, key: str) -> float:
        return report.at(step)[key] if step <= report.horizon else math.nan

    return (
        f"recon PSNR {report.recon_psnr:.2f} dB; tile error {at(15, 'tile_error'):.2f} at step 15, "
        f"{at(29, 'tile_error'):.2f} at step 29; map accuracy {at(15, 'map_accuracy'):.3f} at 15"
    )


def clean_sequences(replay: Any, count: int, length: int, tries: int = 20) -> dict[str, np.ndarray]:
    """``count`` sequences with no episode start after their first step (imagination across a
    reset would be scored against a different game)."""
    kept: list[dict[str, np.ndarray]] = []
    have = 0
    for _ in range(tries):
        batch = replay.sample(count, length)
        ok = ~batch["is_first"][:, 1:].any(1)
        if ok.any():
            kept.append({k: v[ok] for k, v in batch.items()})
            have += int(ok.sum())
        if have >= count:
            break
    if not kept:
        raise ValueError(f"no sequence of {length} steps without an episode start in the replay")
    return {k: np.concatenate([b[k] for b in kept])[:count] for k in kept[0]}


def evaluate_run(
    trainer: Any, checkpoint: Path, replay: Any, out_dir: Path, sequences: int, context: int,
    horizon: int, data: str,
) -> tuple[OpenLoopReport, dict[str, Path]]:  # fmt: skip
    """Loads ``checkpoint`` into ``trainer``, scores it on ``replay`` and writes the report."""
    meta = trainer.load(checkpoint)
    batch = clean_sequences(replay, sequences, context + horizon)
    report, real, model = open_loop(trainer.model, batch, context)
    info = {
        "checkpoint": checkpoint.name,
        "updates": meta.get("updates"),
        "preset": trainer.settings.preset,
        "data": data,
        "replay_steps": len(replay),
        "metrics": "tile error: Euclidean distance in tiles between the state heads' (x, y) and "
        "the GameState's; PSNR over shades scaled to [0, 1] at the model's resolution",
    }
    return report, write_report(out_dir, report, real, model, info)


def evaluate_world_model(
    settings: Settings, run: RunDir, data: RunDir, checkpoint: Path | None, sequences: int,
    context: int, horizon: int, ranges: StateRanges | None = None,
) -> tuple[OpenLoopReport, dict[str, Path]]:  # fmt: skip
    """``pokedreamer eval world-model``: the open-loop report of ``checkpoint`` (default: the
    run's latest) on ``data``'s replay, written to ``run``/eval/<checkpoint name>/."""
    path = checkpoint or latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
    if path is None:
        raise UserError(f"{run.checkpoints} has no checkpoint: train first")
    wm = settings.world_model
    replay = Replay(data.replay, wm.replay_capacity, wm.replay_chunk, seed=settings.env.seed + 1)
    trainer = WorldModelTrainer(wm, settings.env.num_actions, ranges=ranges)
    out = run.path / "eval" / path.name
    return evaluate_run(trainer, path, replay, out, sequences, context, horizon, data.path.name)

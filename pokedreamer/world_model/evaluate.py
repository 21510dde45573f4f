"""The world model's health check: the open-loop report.

For each sequence the model observes ``context`` real steps (the posterior), then imagines
``horizon`` more under the logged actions with the prior alone. Per imagined step we compare with
what really happened: the map id (the share right), the player's tile (state heads' x, y against
the GameState, Euclidean, in tiles, where the map is right), the decoded screen (PSNR of the
squared error pooled over the step's frames, shades scaled to [0, 1], at the model's resolution;
a token model's grids rendered through the vocabulary at 144x160), for a token model the share
of cells whose token is right (where the map is right), and the reward. Each figure has a
"nothing moves" baseline beside it: the last observed screen, state and reward held for every
imagined step. The observed half gives the 1-step reconstruction PSNR. The first imagined step's
error is also split by what happened in the game (world_model/error_split.py), with the ceiling a
model that cannot foresee wild encounters has. Outputs: a JSON and a markdown report, a PNG grid
(real / model / difference) and a GIF of real beside imagined.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from pokedreamer.env.frames import GREYS
from pokedreamer.env.tiles import TileVocabulary
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import checkpoint_stem, latest_checkpoint
from pokedreamer.world_model.error_split import split_error, step_events
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.observation import check_batch
from pokedreamer.world_model.replay import VOCABULARY_FILE, run_replay
from pokedreamer.world_model.trainer import CHECKPOINT_NAME, WorldModelTrainer

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.rundir import RunDir
    from pokedreamer.world_model.heads import StateRanges

Render = Callable[[np.ndarray], np.ndarray]
"""A vocabulary's render: token grids (..., 18, 20) -> uint8 shades (..., 144, 160)."""


@dataclass
class OpenLoopReport:
    context: int
    horizon: int
    sequences: int
    recon_psnr: float  # observed steps, posterior reconstructions, of their pooled error
    steps: list[dict[str, float]] = field(default_factory=list)  # one per imagined step
    observation: str = "pixels"
    recon_cell_accuracy: float | None = None  # tiles: observed steps, the share of cells right
    # The first imagined step's error by what happened (error_split.split_error's rows).
    first_step_split: list[dict[str, Any]] = field(default_factory=list)

    def at(self, step: int) -> dict[str, float]:
        """The row of imagined step ``step`` (1-based)."""
        return self.steps[step - 1]

    def markdown(self, title: str) -> str:
        tiles = self.observation == "tiles"
        recon = f"**1-step reconstruction PSNR (observed steps): {_db(self.recon_psnr)}**"
        if tiles:
            recon = (
                f"**1-step reconstruction (observed steps): PSNR {_db(self.recon_psnr)} rendered "
                f"at 144×160, cells right {_share(self.recon_cell_accuracy)}**"
            )
        cells = " cells right where the map is right |" if tiles else ""
        lines = [
            f"# {title}",
            "",
            f"{self.sequences} sequences; {self.context} observed steps, then {self.horizon} "
            "imagined under the logged actions. Beside each figure, in brackets, the "
            '"nothing moves" baseline: the last observed screen, state and reward held for '
            "every imagined step.",
            "",
            recon,
            "",
            "| imagined step | map right | tile error where the map is right (tiles) "
            f"| PSNR of the pooled error |{cells} reward error |",
            "|---|---|---|---|---|" + ("---|" if tiles else ""),
        ]
        for row in self.steps:
            cell = ""
            if tiles:
                cell = (
                    f" {_share(row['cell_accuracy'])} ({_share(row['baseline_cell_accuracy'])}) |"
                )
            lines.append(
                f"| {int(row['step'])} "
                f"| {row['map_accuracy']:.3f} ({row['baseline_map_accuracy']:.3f}) "
                f"| {_tiles(row['tile_error'])} ({_tiles(row['baseline_tile_error'])}) "
                f"| {_db(row['psnr'])} ({_db(row['baseline_psnr'])}) |{cell}"
                f" {row['reward_error']:.4f} ({row['baseline_reward_error']:.4f}) |"
            )
        if self.first_step_split:
            lines += [
                "",
                "The first imagined step's error by what happened in the game (from the "
                "GameState before and after it). A wild battle starts when the game's random "
                "number generator says so, which nothing the model sees foretells: the last "
                "column is the PSNR of a model right on every other frame that draws these as "
                "the screen before.",
                "",
                "| what happened | frames | share of the error | PSNR without them "
                "| ceiling if unforeseen |",
                "|---|---|---|---|---|",
            ]
            for part in self.first_step_split:
                ceiling = part["ceiling_if_unforeseen"]
                lines.append(
                    f"| {part['label']} | {part['frames']} ({part['frame_share']:.2%}) "
                    f"| {part['error_share']:.2%} | {_db(part['psnr_without'])} "
                    f"| {'—' if ceiling is None else _db(ceiling)} |"
                )
        return "\n".join(lines) + "\n"


def _db(value: float) -> str:
    return "∞ dB" if value == math.inf else f"{value:.2f} dB"


def _tiles(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f}"


def _share(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3f}"


def pooled_psnr(pred: torch.Tensor, true: torch.Tensor) -> float:
    """PSNR of the mean squared error over every frame and pixel of shade frames (..., h, w),
    shades scaled to [0, 1]; infinite when they are equal. Pooling before the logarithm keeps a
    few frames that are nearly right from hiding many that are wrong, as a mean of per-frame
    PSNRs would."""
    mse = float(((pred.float() - true.float()) / 3.0).pow(2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


@dataclass(frozen=True)
class StepGuess:
    """What a predictor says of each imagined step, every tensor (B, H) but ``shades``
    (B, H, h, w) and, for a token model, ``tokens`` (B, H, 18, 20): the world model's
    imagination, the "nothing moves" baseline, or (truth_of) what really happened."""

    shades: torch.Tensor
    map_id: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    reward: torch.Tensor
    tokens: torch.Tensor | None = None

    def steps(self, index: int | slice) -> StepGuess:
        """The guess at step ``index`` (an int drops the step axis) of every sequence."""
        picked = (getattr(self, f.name) for f in fields(self))
        return StepGuess(*(None if t is None else t[:, index] for t in picked))


def truth_of(
    shades: torch.Tensor,
    states: torch.Tensor,
    rewards: torch.Tensor,
    tokens: torch.Tensor | None = None,
) -> StepGuess:
    """What really happened, from shades (B, H, h, w), GameState vectors (B, H, 30) (map id, x
    and y scaled by 1/255 in slots 0-2), rewards (B, H) and a token model's grids."""
    return StepGuess(
        shades=shades,
        map_id=(states[..., 0] * 255).round().long(),
        x=(states[..., 1] * 255).round(),
        y=(states[..., 2] * 255).round(),
        reward=rewards.float(),
        tokens=tokens,
    )


def standing_still(last: StepGuess, horizon: int) -> StepGuess:
    """The "nothing moves" baseline: ``last`` (one observed step, (B,) and (B, h, w)) held for
    ``horizon`` steps, its reward too (standing still keeps paying what it paid, e.g. the
    stuck penalty)."""

    def hold(t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(1).expand(t.shape[0], horizon, *t.shape[1:])

    return StepGuess(
        shades=hold(last.shades),
        map_id=hold(last.map_id),
        x=hold(last.x),
        y=hold(last.y),
        reward=hold(last.reward),
        tokens=None if last.tokens is None else hold(last.tokens),
    )


def score_steps(guess: StepGuess, truth: StepGuess) -> list[dict[str, float]]:
    """Per imagined step: ``psnr`` of the pooled error over the step's frames, ``map_accuracy``
    (the share of sequences whose map id is right), ``tile_error`` (mean Euclidean distance in
    tiles between the guessed and the true x, y, over the sequences whose map is right only, as
    a position on the wrong map means nothing; NaN when none is), ``reward_error`` (mean
    absolute) and, where both have tokens, ``cell_accuracy`` (the share of cells whose token
    is right, over the sequences whose map is right; NaN when none is)."""
    map_ok = guess.map_id == truth.map_id
    distance = torch.sqrt((guess.x.float() - truth.x) ** 2 + (guess.y.float() - truth.y) ** 2)
    reward_error = (guess.reward.float() - truth.reward).abs()
    cells_right = None
    if guess.tokens is not None and truth.tokens is not None:
        cells_right = (guess.tokens == truth.tokens).float().mean((-2, -1))  # (B, H)
    rows = []
    for i in range(truth.map_id.shape[1]):
        right = map_ok[:, i]
        row = {
            "psnr": pooled_psnr(guess.shades[:, i], truth.shades[:, i]),
            "map_accuracy": float(right.float().mean()),
            "tile_error": float(distance[:, i][right].mean()) if right.any() else math.nan,
            "reward_error": float(reward_error[:, i].mean()),
        }
        if cells_right is not None:
            share = cells_right[:, i][right]
            row["cell_accuracy"] = float(share.mean()) if right.any() else math.nan
        rows.append(row)
    return rows


def _rendered(render: Render, tokens: torch.Tensor) -> torch.Tensor:
    """Token grids (..., 18, 20) rendered through ``render`` to uint8 shades (..., 144, 160)."""
    frames = np.asarray(render(tokens.cpu().numpy()))
    assert frames.shape == (*tokens.shape[:-2], 144, 160), frames.shape
    return torch.as_tensor(frames.astype(np.uint8, copy=False), device=tokens.device)


@torch.no_grad()
def open_loop(
    model: WorldModel, batch: dict[str, np.ndarray], context: int, render: Render | None = None
) -> tuple[OpenLoopReport, np.ndarray, np.ndarray]:
    """The report over ``batch`` (sequences of context + horizon steps, as Replay.sample gives
    them), with the real and the model's shade frames (B, T, h, w): reconstructions for the
    observed steps, imagination after. A token model's batch holds "tiles", and ``render``
    (its vocabulary's) draws its grids and the real ones at 144x160, where PSNR is taken."""
    model.eval()
    device = next(model.parameters()).device
    t = {k: torch.as_tensor(v, device=device) for k, v in batch.items()}
    b, length = t["actions"].shape
    horizon = length - context
    assert context >= 1 and horizon >= 1, (context, length)
    tiles = model.observation == "tiles"
    if tiles and render is None:
        raise ValueError("a token world model's open-loop report needs its vocabulary's render")
    target = model.target(t[model.observation_key])
    embeds = model.embed_shades(target[:, :context], t["states"][:, :context])
    posts, _ = model.rssm.observe(
        embeds, t["actions"][:, :context], t["is_first"][:, :context], sample=False
    )
    observed = model.rssm.feat(posts)
    state = posts.map(lambda x: x[:, -1])
    feats = []
    for i in range(context, length):
        action = F.one_hot(t["actions"][:, i], model.num_actions).to(state.deter.dtype)
        state = model.rssm.img_step(state, action, sample=False)
        feats.append(model.rssm.feat(state))
    feat = torch.stack(feats, 1)  # (B, H, F)
    if tiles:
        # The token decoder draws each screen over the one before: the real one while it
        # observes, then its own imagined ones, each from the last.
        seen = model.previous_grids(target[:, :context], t["is_first"][:, :context])
        recon = model.imagined_obs(observed, seen)
        grids, before = [], target[:, context - 1]
        for i in range(horizon):
            before = model.imagined_obs(feat[:, i], before)
            grids.append(before)
        imagined = torch.stack(grids, 1)
    else:
        recon, imagined = model.imagined_obs(observed), model.imagined_obs(feat)
    preds = model.predict(feat)
    model_obs = torch.cat([recon, imagined], 1)
    if render is not None and tiles:
        real, drawn = _rendered(render, target), _rendered(render, model_obs)
        real_tokens, model_tokens = target, model_obs
    else:
        real, drawn = target, model_obs
        real_tokens = model_tokens = None
    seen = truth_of(real, t["states"], t["rewards"], real_tokens)
    truth, last = seen.steps(slice(context, None)), seen.steps(context - 1)
    guess = StepGuess(
        drawn[:, context:], preds["map_id"], preds["x"], preds["y"], preds["reward"],
        None if model_tokens is None else model_tokens[:, context:],
    )  # fmt: skip
    model_rows = score_steps(guess, truth)
    kind = step_events(t["states"][:, context - 1], t["states"][:, context])
    split = split_error(drawn[:, context], real[:, context], real[:, context - 1], kind)
    still_rows = score_steps(standing_still(last, horizon), truth)
    recon_cells = None
    if model_tokens is not None and real_tokens is not None:
        right = model_tokens[:, :context] == real_tokens[:, :context]
        recon_cells = float(right.float().mean())
    report = OpenLoopReport(
        context=context,
        horizon=horizon,
        sequences=b,
        recon_psnr=pooled_psnr(drawn[:, :context], real[:, :context]),
        observation=model.observation,
        recon_cell_accuracy=recon_cells,
        first_step_split=split,
    )
    for i, (ours, still) in enumerate(zip(model_rows, still_rows, strict=True)):
        report.steps.append(
            {"step": i + 1, **ours, **{f"baseline_{k}": v for k, v in still.items()}}
        )
    return report, real.cpu().numpy(), drawn.cpu().numpy()


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
    record = _json_safe({**meta, **asdict(report)})
    paths["json"].write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    title = f"Open-loop report — {meta.get('checkpoint', 'world model')}"
    details = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    paths["markdown"].write_text(report.markdown(title) + "\n" + details + "\n")
    write_grid(paths["grid"], real, model, report.context)
    write_animation(paths["animation"], real, model)
    return paths


def _json_safe(value: Any) -> Any:
    """``value`` with infinite and NaN floats as null, which JSON can hold: a PSNR is infinite
    when a step is perfect, a tile error NaN when no sequence's map was right."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def summary_line(report: OpenLoopReport) -> str:
    """One line: the reconstruction, then at imagined steps 15 and 29 (or the last) the model's
    PSNR, map and tile figures with the "nothing moves" baseline's in brackets, then, when a
    battle started on the first imagined step, the ceiling those frames put on its PSNR."""
    parts = [f"recon PSNR {_db(report.recon_psnr)}"]
    if report.observation == "tiles":
        parts[0] += f", cells right {_share(report.recon_cell_accuracy)}"
    for step in sorted({min(15, report.horizon), min(29, report.horizon)}):
        row = report.at(step)
        cells = ""
        if "cell_accuracy" in row:
            cells = (
                f", cells right {_share(row['cell_accuracy'])} "
                f"(still {_share(row['baseline_cell_accuracy'])})"
            )
        parts.append(
            f"step {step}: PSNR {_db(row['psnr'])} (still {_db(row['baseline_psnr'])}), "
            f"map right {row['map_accuracy']:.3f} (still {row['baseline_map_accuracy']:.3f}), "
            f"tile error {_tiles(row['tile_error'])} (still {_tiles(row['baseline_tile_error'])})"
            + cells
        )
    first = report.at(1)
    starts = next((p for p in report.first_step_split if p["kind"] == "battle starts"), None)
    if starts is not None and starts["frames"]:
        parts.append(
            f"battles starting ({starts['frame_share']:.2%} of step 1's frames) carry "
            f"{starts['error_share']:.0%} of its error and, unforeseen, cap its PSNR "
            f"({_db(first['psnr'])}) at {_db(starts['ceiling_if_unforeseen'])}"
        )
    return "; ".join(parts)


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


METRICS = (
    "psnr: of the mean squared error pooled over a step's frames and pixels, shades scaled to "
    "[0, 1], at the model's resolution (null: no error); map_accuracy: share of sequences whose "
    "predicted map id is right; tile_error: Euclidean distance in tiles between the state heads' "
    "(x, y) and the GameState's, over the sequences whose map is right (null: none is); "
    "baseline_*: the same for 'nothing moves', the last observed screen, state and reward held"
)
TILE_METRICS = (
    "; for this token model psnr is of the grids rendered through the vocabulary at 144x160, "
    "and cell_accuracy the share of cells whose token is right, over the sequences whose map "
    "is right (null: none is)"
)


def evaluate_run(
    trainer: Any, checkpoint: Path, replay: Any, out_dir: Path, sequences: int, context: int,
    horizon: int, data: str, render: Render | None = None,
) -> tuple[OpenLoopReport, dict[str, Path]]:  # fmt: skip
    """Loads ``checkpoint`` into ``trainer``, scores it on ``replay`` and writes the report;
    ``render`` draws a token model's grids (its vocabulary's)."""
    meta = trainer.load(checkpoint)
    batch = clean_sequences(replay, sequences, context + horizon)
    vocabulary = getattr(replay, "vocabulary", None)
    if isinstance(vocabulary, TileVocabulary) and "tiles" in meta:
        # A token model's ids mean the patterns its checkpoint kept: the data's grids are
        # renumbered into them, whichever run (and order of first sightings) they come from.
        saved = TileVocabulary.from_meta(meta["tiles"], f"checkpoint {checkpoint}")
        if saved.capacity != vocabulary.capacity:
            raise UserError(
                f"checkpoint {checkpoint} has a tile capacity of {saved.capacity}, the replay of "
                f"run {data} {vocabulary.capacity}; set world_model.tile_capacity to match"
            )
        batch["tiles"] = saved.translation(vocabulary)[batch["tiles"]]
        render = saved.render
    check_batch(batch, trainer.settings, f"the replay of run {data}")
    report, real, model = open_loop(trainer.model, batch, context, render)
    tiles = report.observation == "tiles"
    info = {
        "checkpoint": checkpoint.name,
        "updates": meta.get("updates"),
        "preset": trainer.settings.preset,
        "observation": report.observation,
        "data": data,
        "replay_steps": len(replay),
        "metrics": METRICS + (TILE_METRICS if tiles else ""),
    }
    return report, write_report(out_dir, report, real, model, info)


def report_folder(data: str, sequences: int, context: int, horizon: int) -> str:
    """The folder, under eval/<checkpoint>/, of one question asked of a checkpoint: the data it
    was scored on and the report's shape, so that a report on held-out data, or of a thousand
    one-step sequences, never replaces another; asking the same again replaces its answer."""
    return f"{data}-n{sequences}-c{context}-h{horizon}"


def evaluate_world_model(
    settings: Settings, run: RunDir, data: RunDir, checkpoint: Path | None, sequences: int,
    context: int, horizon: int, ranges: StateRanges | None = None, render: Render | None = None,
) -> tuple[OpenLoopReport, dict[str, Path]]:  # fmt: skip
    """``pokedreamer eval world-model``: the open-loop report of ``checkpoint`` (default: the
    run's latest) on ``data``'s replay, written to ``run``/eval/<checkpoint name>/<report_folder>/.
    A token model (world_model.observation = "tiles") needs ``render``, its vocabulary's."""
    path = (
        checkpoint_stem(checkpoint)
        if checkpoint
        else latest_checkpoint(run.checkpoints, CHECKPOINT_NAME)
    )
    if path is None:
        raise UserError(f"{run.checkpoints} has no checkpoint: train first")
    wm = settings.world_model
    no_vocabulary = not (data.replay / VOCABULARY_FILE).is_file()
    if wm.observation == "tiles" and render is None and no_vocabulary:
        raise UserError(
            f"{data.path} has no tile vocabulary to draw its token model's dreams with; "
            'collect with world_model.observation = "tiles" first'
        )
    replay = run_replay(data.replay, wm, seed=settings.env.seed + 1)
    if render is None and replay.vocabulary is not None:
        # The checkpoint's vocabulary joins it when evaluate_run loads the checkpoint.
        render = replay.vocabulary.render
    trainer = WorldModelTrainer(wm, settings.env.num_actions, ranges=ranges)
    out = run.path / "eval" / path.name / report_folder(data.path.name, sequences, context, horizon)
    return evaluate_run(
        trainer, path, replay, out, sequences, context, horizon, data.path.name, render
    )

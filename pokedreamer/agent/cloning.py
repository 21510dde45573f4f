"""Behaviour cloning from a person's demonstrations: ``pokedreamer train imitation --demos``.

The actor learns the buttons a person pressed (demos.py reads them back), on the world model's
posterior features of what the person saw and under the subgoal the planner had set then. The
world model is held fixed, as for DAgger, and the updates are DAgger's own (``Imitation``): the
pairs go into its labelled states and each update is its cross-entropy step. What differs is
where the labels come from: a person's play, recorded once, rather than the scripted
demonstrator labelling every state the actor reaches.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pokedreamer.agent.demos import Demos
from pokedreamer.agent.imitation import Imitation
from pokedreamer.agent.play import imitation_loop
from pokedreamer.agent.subgoal_pool import SubgoalPool
from pokedreamer.config import Settings
from pokedreamer.errors import UserError
from pokedreamer.planner.facts import GameFacts
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.model import WorldModel

UPDATES = 1000
"""Updates a ``train imitation --demos`` adds unless told."""
LANES = 64
"""Stretches of demonstration filtered at once."""
LOG_EVERY = 100
"""Updates between the ``kind: "cloning"`` lines of metrics.jsonl."""


@torch.no_grad()
def posterior_features(
    world_model: WorldModel,
    demos: Demos,
    device: torch.device,
    observe: Callable[[np.ndarray], np.ndarray] | None = None,
) -> torch.Tensor:
    """Every row's features (n, F) on the CPU: each stretch filtered from its start, one row a
    step, as the loop filters the screens it plays; LANES stretches side by side. ``observe``
    turns the recorded screens into what the world model reads (a tiles model: their tokens,
    ``Learner.observation``)."""
    n = len(demos)
    begins = np.flatnonzero(demos.starts)
    ends = np.append(begins[1:], n)
    feats = torch.empty(n, world_model.preset.feat_size)
    observed = demos.frames if observe is None else observe(demos.frames)
    frames, vectors = torch.from_numpy(observed), torch.from_numpy(demos.vectors)
    actions = torch.from_numpy(demos.actions)
    for first in range(0, len(begins), LANES):
        begin, end = begins[first : first + LANES], ends[first : first + LANES]
        post = world_model.rssm.initial(len(begin))
        for t in range(int((end - begin).max())):
            rows = np.minimum(begin + t, end - 1)  # a stretch that has ended repeats its last row
            is_first = torch.full((len(begin),), t == 0, device=device)
            post = world_model.observe_step(
                post, actions[rows].to(device), frames[rows].to(device),
                vectors[rows].to(device), is_first,
            )  # fmt: skip
            live = begin + t < end
            feats[rows[live]] = world_model.rssm.feat(post)[torch.from_numpy(live)].float().cpu()
    return feats


def goal_rows(demos: Demos, facts: GameFacts) -> torch.Tensor:
    """Every row's goal input (n, G), encoded as the loop encodes the subgoal it pursues."""
    pool = SubgoalPool(facts)
    try:
        return torch.stack([pool.goal_row(subgoal) for subgoal in demos.subgoals])
    except (KeyError, ValueError) as e:
        raise UserError(f"a demonstration's subgoal names what this game lacks: {e}") from None


def run_cloning(
    settings: Settings,
    name: str,
    demos: Demos,
    sources: Sequence[str],
    checkpoint: Path | None,
    updates: int,
) -> None:
    """``pokedreamer train imitation --demos``: ``updates`` more updates of the actor on
    ``demos`` (read from the runs ``sources``) in the run ``name``, new or continued, with a
    progress bar and a checkpoint at the end (also on Ctrl-C)."""
    if settings.planner.kind == "none":
        raise UserError("the actor learns to play under the planner's subgoals: set a planner")
    loop = imitation_loop(settings, name, checkpoint)
    imitation, learner = loop.imitation, loop.learner
    assert imitation is not None
    labelled = np.flatnonzero(demos.labels >= 0)
    print(
        f"run {loop.run_dir.path}: cloning {len(labelled)} pairs of {len(demos)} demonstration "
        f"steps ({', '.join(sources)}), the {loop.preset.name} world model held fixed",
        flush=True,
    )
    if len(labelled) > imitation.settings.capacity:
        print(f"keeping the newest {imitation.settings.capacity} (imitation.capacity)", flush=True)
    feats = posterior_features(learner.world_model, demos, learner.device, learner.observation)
    goals = goal_rows(demos, loop.planners.facts)
    index = torch.from_numpy(labelled)
    imitation.add(feats[index], goals[index], torch.from_numpy(demos.labels[labelled]))
    done = cloned_updates(loop.run_dir)
    start = time.perf_counter()
    try:
        metrics = _fit(imitation, loop.run_dir, done, updates, [str(s) for s in sources])
    except KeyboardInterrupt:
        print(f"stopped at update {done + imitation.updates}; saving the checkpoint",
              file=sys.stderr)  # fmt: skip
        raise
    finally:
        saved = loop.save()  # also on Ctrl-C: the updates taken so far are kept
    print(
        f"done: {imitation.updates} updates ({done + imitation.updates} in all) in "
        f"{time.perf_counter() - start:.1f} s, accuracy {metrics['imitation/accuracy']:.2f} on "
        f"the latest batch; checkpoint {saved}",
        flush=True,
    )


def _fit(
    imitation: Imitation, run: RunDir, done: int, updates: int, sources: list[str]
) -> dict[str, float]:
    """``updates`` of DAgger's cross-entropy steps on the labelled pairs, logged to metrics."""
    columns = (
        TextColumn("cloning"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("accuracy {task.fields[accuracy]:.2f}"), TimeRemainingColumn(),
    )  # fmt: skip
    metrics: dict[str, float] = {}
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("clone", total=done + updates, completed=done, accuracy=0.0)
        for _ in range(updates):
            metrics = imitation.update()
            update = done + imitation.updates
            progress.update(task, completed=update, accuracy=metrics["imitation/accuracy"])
            if update % LOG_EVERY == 0 or imitation.updates == updates:
                run.log_metrics({"kind": "cloning", "update": update, "demos": sources, **metrics})
    return metrics


def cloned_updates(run: RunDir) -> int:
    """The cloning updates a run has taken so far, as its metrics last logged them."""
    lines = [m for m in run.read_metrics() if m.get("kind") == "cloning"]
    return int(lines[-1]["update"]) if lines else 0

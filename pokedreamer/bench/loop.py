"""``pokedreamer bench loop``: the agent loop's speed, and where its time goes.

Acting only (no training, every step still stored and recorded): for each env count, steps/s
split into env time (stepping the emulators), model time (one batched posterior + policy pass
for all envs) and the loop's own overhead (everything else: replay, episode files, planners,
events). With several envs, each in its own process, the loop writes the last step while the
envs compute the next: that work is reported as ``hidden_ms_per_step`` and counted in env time,
beside ``wait_ms_per_step``, the rest of env time, spent blocked on the envs. When the writes
take longer than the envs, ``wait`` falls to ~0 and the excess is plain to see.
Then with training at the configured train ratio: env steps/s and updates/s.

The times are the loop's own books (``timings`` of what ``AgentLoop.run`` returns): they split
each step into parts that no clock outside the loop could tell apart.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pokedreamer.agent.loop import AgentLoop
from pokedreamer.bench.timing import machine_description
from pokedreamer.config import Settings
from pokedreamer.rundir import RunDir


def bench_loop(
    settings: Settings,
    envs: tuple[int, ...] = (1, 2),
    steps: int = 2000,
    train_steps: int = 1000,
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "machine": machine_description(),
        "preset": None,  # filled in from the first loop: a checkpoint brings its own
        "planner": settings.planner.kind,
        "acting": [],
    }
    with tempfile.TemporaryDirectory(prefix="pokedreamer-bench-") as tmp:

        def fresh(name: str, run_settings: Settings, train: bool) -> AgentLoop:
            run = RunDir.make(Path(tmp) / name)
            return AgentLoop(run_settings, run, checkpoint=checkpoint, train=train)

        for n in envs:
            run_settings = settings.model_copy(
                update={"agent": settings.agent.model_copy(update={"envs": n})}
            )
            # Warm-up first (imports, allocations, caches), then the timed loop.
            fresh(f"warm{n}", run_settings, False).run(max(n, steps // 10 // n * n))
            loop = fresh(f"act{n}", run_settings, False)
            done = loop.run(steps // n * n)
            result["preset"] = loop.preset.name
            t = done.timings
            total = t["stepping"]  # starting and closing the env processes left out
            overhead = total - t["env"] - t["model"]
            result["acting"].append(
                {
                    "envs": n,
                    "steps": done.steps,
                    "steps_per_s": round(done.steps / total, 1),
                    "env_ms_per_step": round(1e3 * t["env"] / done.steps, 4),
                    "model_ms_per_step": round(1e3 * t["model"] / done.steps, 4),
                    "overhead_ms_per_step": round(1e3 * overhead / done.steps, 4),
                    # Writes done while the envs stepped (in env_ms; 0 with one env, which
                    # steps in-process), and the part of env_ms spent waiting for them.
                    "hidden_ms_per_step": round(1e3 * t["hidden"] / done.steps, 4),
                    "wait_ms_per_step": round(1e3 * t["wait"] / done.steps, 4),
                    "overhead_share": round(overhead / total, 4),
                    "model_share": round(t["model"] / total, 4),
                }
            )
        if train_steps:
            train_settings = settings.model_copy(
                update={"agent": settings.agent.model_copy(update={"envs": 1, "train_after": 64})}
            )
            loop = fresh("train", train_settings, True)
            done = loop.run(train_steps)
            result["training"] = {
                "train_ratio": settings.agent.train_ratio,
                "batch": [settings.world_model.batch_size, settings.world_model.batch_length],
                "behavior_updates": settings.agent.behavior_updates,
                "steps": done.steps,
                "updates": done.updates,
                "steps_per_s": round(done.steps / done.seconds, 2),
                "updates_per_s": round(done.updates / done.seconds, 4),
                "train_share": round(done.timings["train"] / done.seconds, 4),
            }
    return result

"""Re-records tests/data/trajectories.json.gz, which test_trajectories.py replays.

Run it only when a change is meant to change what the shipped agent, the demonstrator or
learning do on the cartridge (a new shipped checkpoint, a cartridge behaviour), and say so in
the commit: ``PYTHONPATH=. .venv/bin/python tests/record_trajectories.py``.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_trajectories import CASES, RECORDED, played  # noqa: E402

from pokedreamer.agent.loop import AgentLoop  # noqa: E402
from pokedreamer.agent.play import shipped_checkpoint  # noqa: E402
from pokedreamer.env.cartridge import ROM_PATH  # noqa: E402
from pokedreamer.env.rom import load_rom  # noqa: E402
from pokedreamer.rundir import RunDir  # noqa: E402


def main() -> None:
    import torch

    torch.set_num_threads(1)
    rom = load_rom(str(ROM_PATH))
    recording: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            settings = case.settings()
            run = RunDir.make(Path(scratch) / case.name)
            loop = AgentLoop(
                settings, run, checkpoint=shipped_checkpoint(), train=case.train,
                policy=case.policy, rom=rom,
                imitation=settings.imitation if case.imitation else None,
            )  # fmt: skip
            loop.run(case.steps)
            recording.update(played(run.path))
            print(case.name, sum(len(v) for k, v in recording.items() if k.startswith(case.name)))
    with gzip.open(RECORDED, "wt", encoding="utf-8") as fh:
        json.dump(recording, fh, sort_keys=True)
    print(f"wrote {RECORDED}")


if __name__ == "__main__":
    main()

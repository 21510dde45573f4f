"""Runs the real ``pokedreamer`` command in a fresh interpreter, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pokedreamer", *args],
        capture_output=True,
        text=True,
        env=env,
        # A guard against a hung command, not a speed test: generous, as CI may share its cores.
        timeout=240,
    )

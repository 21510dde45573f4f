"""pret/pokered's tables in /work/shared/reference, read (never copied) to check our own tables.

Tests that need them skip when the folder is absent, e.g. outside the development machines.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from pokedreamer.env.cartridge import CARTRIDGE_DIR

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


def reference_file(name: str) -> Path:
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(f"pret reference {name} is not here ({REFERENCE_DIR})")
    return path


def reference_rows(name: str) -> list[dict[str, str]]:
    with reference_file(name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def cartridge_defines() -> dict[str, int]:
    """The numeric ``#define``s of the fixture cartridge's pret.h (maps, species, items, events)."""
    text = (CARTRIDGE_DIR / "pret.h").read_text(encoding="utf-8")
    return {
        name: int(value, 0)
        for name, value in re.findall(r"^#define (\w+)\s+(0x[0-9A-Fa-f]+|\d+)\b", text, re.M)
    }

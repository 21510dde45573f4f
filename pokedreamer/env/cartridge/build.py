"""Builds the fixture cartridge from source with Debian's sdcc (sdasgb, sdcc -msm83, makebin).

    python -m pokedreamer.env.cartridge.build [--out DIR]

writes ``fixture.gb`` and ``fixture.sym`` (pret-style ``bank:address name`` lines) into DIR,
by default this folder. The build is byte-reproducible, which the tests check.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pokedreamer.env.cartridge import tilegen

SOURCE_DIR = Path(__file__).resolve().parent
C_MODULES = ("main", "text", "intro", "world", "battle")
TITLE = "DREAMERFIXTURE"  # our own title; never a commercial game's
CODE_LOC = 0x0200
# Our variables live at $C000-$C0FF: Pokémon Red's sound variables there are never read by the env,
# and the range is clear of every address the cartridge writes with Pokémon Red's meaning.
DATA_LOC = 0xC000
TOOLS = ("sdasgb", "sdcc", "makebin")
# ROM+RAM+BATTERY with one 8 KiB bank: a battery save, as Pokémon Red keeps, with no bank switching.
CARTRIDGE_TYPE = 0x09
RAM_BANKS = 1


class BuildError(RuntimeError):
    """The toolchain is missing or a build step failed."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def noi_to_sym(noi: str) -> str:
    """The linker's NoICE symbol list as a pret/no$gmb-style .sym, sorted by address."""
    symbols: list[tuple[int, str]] = []
    for line in noi.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "DEF" and not parts[1].startswith("."):
            symbols.append((int(parts[2], 16), parts[1]))
    lines = ["; fixture cartridge symbols: bank:address name"]
    lines += [f"00:{address:04x} {name}" for address, name in sorted(symbols)]
    return "\n".join(lines) + "\n"


def build(out_dir: Path = SOURCE_DIR) -> Path:
    """Builds the ROM into ``out_dir`` and returns the path of ``fixture.gb``."""
    if missing := missing_tools():
        raise BuildError(
            f"missing {', '.join(missing)}: install Debian's sdcc (apt-get install -y sdcc)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fixture-build-") as tmp:
        work = Path(tmp)
        for src in SOURCE_DIR.glob("*.[chs]"):
            shutil.copy(src, work / src.name)
        tilegen.write_sources(work)
        _run(["sdasgb", "-plosgff", "-o", "crt0.rel", "crt0.s"], work)
        for module in (*C_MODULES, "tiles"):
            _run(["sdcc", "-msm83", "-c", f"{module}.c", "-o", f"{module}.rel"], work)
        rels = ["crt0.rel", *(f"{m}.rel" for m in (*C_MODULES, "tiles"))]
        _run(
            [
                "sdcc",
                "-msm83",
                "--no-std-crt0",
                "--code-loc",
                f"0x{CODE_LOC:04X}",
                "--data-loc",
                f"0x{DATA_LOC:04X}",
                "-Wl-j",
                *rels,
                "-o",
                "fixture.ihx",
            ],
            work,
        )
        header = ["-yt", f"0x{CARTRIDGE_TYPE:02X}", "-ya", str(RAM_BANKS)]
        _run(["makebin", "-Z", "-yN", *header, "-yn", TITLE, "fixture.ihx", "fixture.gb"], work)
        shutil.copy(work / "fixture.gb", out_dir / "fixture.gb")
        (out_dir / "fixture.sym").write_text(noi_to_sym((work / "fixture.noi").read_text()))
    return out_dir / "fixture.gb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SOURCE_DIR, help="output folder")
    args = parser.parse_args()
    try:
        rom = build(args.out)
    except BuildError as err:
        sys.exit(f"error: {err}")
    print(f"built {rom} ({rom.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

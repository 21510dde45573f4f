"""The fixture cartridge: our own Game Boy mini-game that writes Pokémon Red's RAM variables.

Tests, CI and the default demo run it instead of the commercial game. See README.md here.
"""

from pathlib import Path

CARTRIDGE_DIR = Path(__file__).resolve().parent
ROM_PATH = CARTRIDGE_DIR / "fixture.gb"
SYM_PATH = CARTRIDGE_DIR / "fixture.sym"
TITLE = "DREAMERFIXTURE"

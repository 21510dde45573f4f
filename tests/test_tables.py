"""The game's tables (maps, events, species, items) agree with pret/pokered and with the
fixture cartridge's constants."""

from __future__ import annotations

import pytest
from pret_reference import cartridge_defines, reference_rows

from pokedreamer.env.events import (
    EVENT_FLAGS,
    EVENT_FLAGS_ADDRESS,
    event_address,
    event_count,
    event_index,
    event_set,
)
from pokedreamer.env.items import ITEMS, item_name
from pokedreamer.env.maps import MAPS, MapInfo, map_id, map_name
from pokedreamer.env.names import UnknownName
from pokedreamer.env.species import DEX_NUMBER, MISSINGNO, SPECIES, SPECIES_IDS, species_name

# --- maps --------------------------------------------------------------------------------------


def test_maps_match_pret() -> None:
    rows = reference_rows("pokered_maps.tsv")
    assert len(rows) == len(MAPS) == 248
    for row in rows:
        map_id_ = int(row["id"])
        assert int(row["id_hex"], 16) == map_id_
        assert MAPS[map_id_] == MapInfo(
            map_id_, row["pret_constant"], int(row["width_blocks"]), int(row["height_blocks"])
        ), row


def test_map_names_known_to_go_wrong() -> None:
    # easy to mislabel: the Elite Four's rooms end the table, and $F8 is no map
    assert [map_name(i) for i in (0xF5, 0xF6, 0xF7)] == [
        "LORELEIS_ROOM",
        "BRUNOS_ROOM",
        "AGATHAS_ROOM",
    ]
    assert map_name(0xF8) == "UNKNOWN_MAP_F8"
    assert map_name(0xFF) == "UNKNOWN_MAP_FF"
    assert map_name(0x25) == "REDS_HOUSE_1F" and map_name(0x28) == "OAKS_LAB"
    assert MAPS[0x00].width == 10 and MAPS[0x00].height == 9


def test_map_lookup_by_name_forgives_case_and_suggests() -> None:
    assert map_id("OAKS_LAB") == 0x28
    assert map_id("oaks lab") == 0x28
    with pytest.raises(UnknownName, match="did you mean OAKS_LAB"):
        map_id("OAK_LAB")
    with pytest.raises(KeyError):  # an UnknownName is still a KeyError for callers
        map_id("NOWHERE_AT_ALL_XYZ")


# --- events ------------------------------------------------------------------------------------


def test_events_match_pret() -> None:
    rows = reference_rows("pokered_events.tsv")
    assert len(rows) == len(EVENT_FLAGS)
    for row in rows:
        index = int(row["flag_index"])
        assert EVENT_FLAGS[row["pret_constant"]] == index, row
        assert event_address(index) == (int(row["byte_address"], 16), int(row["bit"])), row


def test_beat_brock_is_d755_bit_7() -> None:
    assert event_index("EVENT_BEAT_BROCK") == 119
    assert event_address("EVENT_BEAT_BROCK") == (0xD755, 7)
    assert EVENT_FLAGS_ADDRESS == 0xD747


def test_event_set_and_count_read_the_flag_bytes() -> None:
    flags = bytearray(320)
    assert event_count(flags) == 0 and not event_set(flags, "EVENT_BEAT_BROCK")
    flags[0xD755 - 0xD747] |= 0x80
    flags[0xD74B - 0xD747] |= 0x04  # EVENT_GOT_STARTER, 34
    assert event_set(flags, "EVENT_BEAT_BROCK") and event_set(flags, 119)
    assert event_set(bytes(flags), "EVENT_GOT_STARTER")
    assert not event_set(flags, "EVENT_BEAT_PEWTER_GYM_TRAINER_0")
    assert event_count(flags) == 2
    assert event_count(b"\xff" * 3) == 24


def test_event_errors_are_helpful() -> None:
    with pytest.raises(UnknownName, match="did you mean EVENT_BEAT_BROCK"):
        event_index("EVENT_BEAT_BROOK")
    with pytest.raises(ValueError, match="beyond the 2 bytes"):
        event_set(b"\0\0", "EVENT_BEAT_BROCK")
    with pytest.raises(ValueError, match="outside"):
        event_set(bytes(320), 2560)


# --- species and items -------------------------------------------------------------------------


def test_species_by_internal_index() -> None:
    assert len(SPECIES) == 0xBE  # $01 RHYDON .. $BE VICTREEBEL
    expected = {
        0x01: "RHYDON",
        0x22: "ONIX",
        0x24: "PIDGEY",
        0xA5: "RATTATA",
        0xA9: "GEODUDE",
        0xB1: "SQUIRTLE",
        0x99: "BULBASAUR",
        0xB0: "CHARMANDER",
        0x54: "PIKACHU",
        0x15: "MEW",
        0x83: "MEWTWO",
        0xBE: "VICTREEBEL",
        0x1F: MISSINGNO,
        0xB5: MISSINGNO,
        0xB8: "MON_GHOST",
    }
    assert {i: SPECIES[i] for i in expected} == expected
    assert list(SPECIES.values()).count(MISSINGNO) == 36
    assert species_name(0xB1) == "SQUIRTLE"
    assert species_name(0x00) == "UNKNOWN_SPECIES_00"
    assert species_name(0xFF) == "UNKNOWN_SPECIES_FF"


def test_dex_numbers_cover_the_151() -> None:
    assert sorted(DEX_NUMBER.values()) == list(range(1, 152))
    dex = {SPECIES[i]: n for i, n in DEX_NUMBER.items()}
    assert dex["BULBASAUR"] == 1 and dex["SQUIRTLE"] == 7 and dex["PIKACHU"] == 25
    assert dex["RHYDON"] == 112 and dex["MEWTWO"] == 150 and dex["MEW"] == 151
    assert MISSINGNO not in SPECIES_IDS and "FOSSIL_KABUTOPS" not in dex


def test_items() -> None:
    assert ITEMS[0x01] == "MASTER_BALL" and ITEMS[0x04] == "POKE_BALL"
    assert ITEMS[0x14] == "POTION" and ITEMS[0x46] == "OAKS_PARCEL"
    assert ITEMS[0x53] == "MAX_ELIXER"
    assert all(i in ITEMS for i in range(0x01, 0x54))
    assert [ITEMS[i] for i in (0xC4, 0xC8, 0xC9, 0xFA)] == ["HM01", "HM05", "TM01", "TM50"]
    assert item_name(0x14) == "POTION"
    assert item_name(0xFF) == "UNKNOWN_ITEM_FF" and item_name(0x00) == "UNKNOWN_ITEM_00"


def test_cartridge_constants_agree_with_the_tables() -> None:
    """The fixture cartridge writes pret's ids; its pret.h must say what our tables say."""
    defines = cartridge_defines()
    checked = 0
    for name, value in defines.items():
        if name in ("PALLET_TOWN", "ROUTE_1", "REDS_HOUSE_1F", "PEWTER_GYM"):
            assert map_name(value) == name
        elif name.startswith("EVENT_"):
            assert event_index(name) == value
        elif name.startswith("DEX_"):
            assert DEX_NUMBER[SPECIES_IDS[name.removeprefix("DEX_")]] == value
        elif name in SPECIES_IDS:
            assert SPECIES_IDS[name] == value
        elif name == "POTION":
            assert item_name(value) == name
        else:
            continue
        checked += 1
    assert checked >= 18

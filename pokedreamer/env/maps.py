"""Pokémon Red's maps: id, pret constant and size in blocks, for every id $00–$F7.

The rows are pret/pokered's map constants (``constants/map_constants.asm``). A block is 2×2
player steps. Ids named ``UNUSED_MAP_xx`` exist in the id space but hold no map (size 0×0).
The table's end is easy to misread: $F5–$F7 are the Elite Four's rooms (LORELEIS_ROOM,
BRUNOS_ROOM, AGATHAS_ROOM) and $F8 is not a map at all.
"""

from __future__ import annotations

from typing import NamedTuple

from pokedreamer.env.names import lookup


class MapInfo(NamedTuple):
    id: int
    name: str  # pret constant
    width: int  # blocks
    height: int  # blocks


# id (hex), pret constant, width, height: one map a row, in id order.
_ROWS = """
00 PALLET_TOWN                   10  9
01 VIRIDIAN_CITY                 20 18
02 PEWTER_CITY                   20 18
03 CERULEAN_CITY                 20 18
04 LAVENDER_TOWN                 10  9
05 VERMILION_CITY                20 18
06 CELADON_CITY                  25 18
07 FUCHSIA_CITY                  20 18
08 CINNABAR_ISLAND               10  9
09 INDIGO_PLATEAU                10  9
0A SAFFRON_CITY                  20 18
0B UNUSED_MAP_0B                  0  0
0C ROUTE_1                       10 18
0D ROUTE_2                       10 36
0E ROUTE_3                       35  9
0F ROUTE_4                       45  9
10 ROUTE_5                       10 18
11 ROUTE_6                       10 18
12 ROUTE_7                       10  9
13 ROUTE_8                       30  9
14 ROUTE_9                       30  9
15 ROUTE_10                      10 36
16 ROUTE_11                      30  9
17 ROUTE_12                      10 54
18 ROUTE_13                      30  9
19 ROUTE_14                      10 27
1A ROUTE_15                      30  9
1B ROUTE_16                      20  9
1C ROUTE_17                      10 72
1D ROUTE_18                      25  9
1E ROUTE_19                      10 27
1F ROUTE_20                      50  9
20 ROUTE_21                      10 45
21 ROUTE_22                      20  9
22 ROUTE_23                      10 72
23 ROUTE_24                      10 18
24 ROUTE_25                      30  9
25 REDS_HOUSE_1F                  4  4
26 REDS_HOUSE_2F                  4  4
27 BLUES_HOUSE                    4  4
28 OAKS_LAB                       5  6
29 VIRIDIAN_POKECENTER            7  4
2A VIRIDIAN_MART                  4  4
2B VIRIDIAN_SCHOOL_HOUSE          4  4
2C VIRIDIAN_NICKNAME_HOUSE        4  4
2D VIRIDIAN_GYM                  10  9
2E DIGLETTS_CAVE_ROUTE_2          4  4
2F VIRIDIAN_FOREST_NORTH_GATE     5  4
30 ROUTE_2_TRADE_HOUSE            4  4
31 ROUTE_2_GATE                   5  4
32 VIRIDIAN_FOREST_SOUTH_GATE     5  4
33 VIRIDIAN_FOREST               17 24
34 MUSEUM_1F                     10  4
35 MUSEUM_2F                      7  4
36 PEWTER_GYM                     5  7
37 PEWTER_NIDORAN_HOUSE           4  4
38 PEWTER_MART                    4  4
39 PEWTER_SPEECH_HOUSE            4  4
3A PEWTER_POKECENTER              7  4
3B MT_MOON_1F                    20 18
3C MT_MOON_B1F                   14 14
3D MT_MOON_B2F                   20 18
3E CERULEAN_TRASHED_HOUSE         4  4
3F CERULEAN_TRADE_HOUSE           4  4
40 CERULEAN_POKECENTER            7  4
41 CERULEAN_GYM                   5  7
42 BIKE_SHOP                      4  4
43 CERULEAN_MART                  4  4
44 MT_MOON_POKECENTER             7  4
45 CERULEAN_TRASHED_HOUSE_COPY    4  4
46 ROUTE_5_GATE                   4  3
47 UNDERGROUND_PATH_ROUTE_5       4  4
48 DAYCARE                        4  4
49 ROUTE_6_GATE                   4  3
4A UNDERGROUND_PATH_ROUTE_6       4  4
4B UNDERGROUND_PATH_ROUTE_6_COPY  4  4
4C ROUTE_7_GATE                   3  4
4D UNDERGROUND_PATH_ROUTE_7       4  4
4E UNDERGROUND_PATH_ROUTE_7_COPY  4  4
4F ROUTE_8_GATE                   3  4
50 UNDERGROUND_PATH_ROUTE_8       4  4
51 ROCK_TUNNEL_POKECENTER         7  4
52 ROCK_TUNNEL_1F                20 18
53 POWER_PLANT                   20 18
54 ROUTE_11_GATE_1F               4  5
55 DIGLETTS_CAVE_ROUTE_11         4  4
56 ROUTE_11_GATE_2F               4  4
57 ROUTE_12_GATE_1F               5  4
58 BILLS_HOUSE                    4  4
59 VERMILION_POKECENTER           7  4
5A POKEMON_FAN_CLUB               4  4
5B VERMILION_MART                 4  4
5C VERMILION_GYM                  5  9
5D VERMILION_PIDGEY_HOUSE         4  4
5E VERMILION_DOCK                14  6
5F SS_ANNE_1F                    20  9
60 SS_ANNE_2F                    20  9
61 SS_ANNE_3F                    10  3
62 SS_ANNE_B1F                   15  4
63 SS_ANNE_BOW                   10  7
64 SS_ANNE_KITCHEN                7  8
65 SS_ANNE_CAPTAINS_ROOM          3  4
66 SS_ANNE_1F_ROOMS              12  8
67 SS_ANNE_2F_ROOMS              12  8
68 SS_ANNE_B1F_ROOMS             12  8
69 UNUSED_MAP_69                  0  0
6A UNUSED_MAP_6A                  0  0
6B UNUSED_MAP_6B                  0  0
6C VICTORY_ROAD_1F               10  9
6D UNUSED_MAP_6D                  0  0
6E UNUSED_MAP_6E                  0  0
6F UNUSED_MAP_6F                  0  0
70 UNUSED_MAP_70                  0  0
71 LANCES_ROOM                   13 13
72 UNUSED_MAP_72                  0  0
73 UNUSED_MAP_73                  0  0
74 UNUSED_MAP_74                  0  0
75 UNUSED_MAP_75                  0  0
76 HALL_OF_FAME                   5  4
77 UNDERGROUND_PATH_NORTH_SOUTH   4 24
78 CHAMPIONS_ROOM                 4  4
79 UNDERGROUND_PATH_WEST_EAST    25  4
7A CELADON_MART_1F               10  4
7B CELADON_MART_2F               10  4
7C CELADON_MART_3F               10  4
7D CELADON_MART_4F               10  4
7E CELADON_MART_ROOF             10  4
7F CELADON_MART_ELEVATOR          2  2
80 CELADON_MANSION_1F             4  6
81 CELADON_MANSION_2F             4  6
82 CELADON_MANSION_3F             4  6
83 CELADON_MANSION_ROOF           4  6
84 CELADON_MANSION_ROOF_HOUSE     4  4
85 CELADON_POKECENTER             7  4
86 CELADON_GYM                    5  9
87 GAME_CORNER                   10  9
88 CELADON_MART_5F               10  4
89 GAME_CORNER_PRIZE_ROOM         5  4
8A CELADON_DINER                  5  4
8B CELADON_CHIEF_HOUSE            4  4
8C CELADON_HOTEL                  7  4
8D LAVENDER_POKECENTER            7  4
8E POKEMON_TOWER_1F              10  9
8F POKEMON_TOWER_2F              10  9
90 POKEMON_TOWER_3F              10  9
91 POKEMON_TOWER_4F              10  9
92 POKEMON_TOWER_5F              10  9
93 POKEMON_TOWER_6F              10  9
94 POKEMON_TOWER_7F              10  9
95 MR_FUJIS_HOUSE                 4  4
96 LAVENDER_MART                  4  4
97 LAVENDER_CUBONE_HOUSE          4  4
98 FUCHSIA_MART                   4  4
99 FUCHSIA_BILLS_GRANDPAS_HOUSE   4  4
9A FUCHSIA_POKECENTER             7  4
9B WARDENS_HOUSE                  5  4
9C SAFARI_ZONE_GATE               4  3
9D FUCHSIA_GYM                    5  9
9E FUCHSIA_MEETING_ROOM           7  4
9F SEAFOAM_ISLANDS_B1F           15  9
A0 SEAFOAM_ISLANDS_B2F           15  9
A1 SEAFOAM_ISLANDS_B3F           15  9
A2 SEAFOAM_ISLANDS_B4F           15  9
A3 VERMILION_OLD_ROD_HOUSE        4  4
A4 FUCHSIA_GOOD_ROD_HOUSE         4  4
A5 POKEMON_MANSION_1F            15 14
A6 CINNABAR_GYM                  10  9
A7 CINNABAR_LAB                   9  4
A8 CINNABAR_LAB_TRADE_ROOM        4  4
A9 CINNABAR_LAB_METRONOME_ROOM    4  4
AA CINNABAR_LAB_FOSSIL_ROOM       4  4
AB CINNABAR_POKECENTER            7  4
AC CINNABAR_MART                  4  4
AD CINNABAR_MART_COPY             4  4
AE INDIGO_PLATEAU_LOBBY           8  6
AF COPYCATS_HOUSE_1F              4  4
B0 COPYCATS_HOUSE_2F              4  4
B1 FIGHTING_DOJO                  5  6
B2 SAFFRON_GYM                   10  9
B3 SAFFRON_PIDGEY_HOUSE           4  4
B4 SAFFRON_MART                   4  4
B5 SILPH_CO_1F                   15  9
B6 SAFFRON_POKECENTER             7  4
B7 MR_PSYCHICS_HOUSE              4  4
B8 ROUTE_15_GATE_1F               4  5
B9 ROUTE_15_GATE_2F               4  4
BA ROUTE_16_GATE_1F               4  7
BB ROUTE_16_GATE_2F               4  4
BC ROUTE_16_FLY_HOUSE             4  4
BD ROUTE_12_SUPER_ROD_HOUSE       4  4
BE ROUTE_18_GATE_1F               4  5
BF ROUTE_18_GATE_2F               4  4
C0 SEAFOAM_ISLANDS_1F            15  9
C1 ROUTE_22_GATE                  5  4
C2 VICTORY_ROAD_2F               15  9
C3 ROUTE_12_GATE_2F               4  4
C4 VERMILION_TRADE_HOUSE          4  4
C5 DIGLETTS_CAVE                 20 18
C6 VICTORY_ROAD_3F               15  9
C7 ROCKET_HIDEOUT_B1F            15 14
C8 ROCKET_HIDEOUT_B2F            15 14
C9 ROCKET_HIDEOUT_B3F            15 14
CA ROCKET_HIDEOUT_B4F            15 12
CB ROCKET_HIDEOUT_ELEVATOR        3  4
CC UNUSED_MAP_CC                  0  0
CD UNUSED_MAP_CD                  0  0
CE UNUSED_MAP_CE                  0  0
CF SILPH_CO_2F                   15  9
D0 SILPH_CO_3F                   15  9
D1 SILPH_CO_4F                   15  9
D2 SILPH_CO_5F                   15  9
D3 SILPH_CO_6F                   13  9
D4 SILPH_CO_7F                   13  9
D5 SILPH_CO_8F                   13  9
D6 POKEMON_MANSION_2F            15 14
D7 POKEMON_MANSION_3F            15  9
D8 POKEMON_MANSION_B1F           15 14
D9 SAFARI_ZONE_EAST              15 13
DA SAFARI_ZONE_NORTH             20 18
DB SAFARI_ZONE_WEST              15 13
DC SAFARI_ZONE_CENTER            15 13
DD SAFARI_ZONE_CENTER_REST_HOUSE  4  4
DE SAFARI_ZONE_SECRET_HOUSE       4  4
DF SAFARI_ZONE_WEST_REST_HOUSE    4  4
E0 SAFARI_ZONE_EAST_REST_HOUSE    4  4
E1 SAFARI_ZONE_NORTH_REST_HOUSE   4  4
E2 CERULEAN_CAVE_2F              15  9
E3 CERULEAN_CAVE_B1F             15  9
E4 CERULEAN_CAVE_1F              15  9
E5 NAME_RATERS_HOUSE              4  4
E6 CERULEAN_BADGE_HOUSE           4  4
E7 UNUSED_MAP_E7                  0  0
E8 ROCK_TUNNEL_B1F               20 18
E9 SILPH_CO_9F                   13  9
EA SILPH_CO_10F                   8  9
EB SILPH_CO_11F                   9  9
EC SILPH_CO_ELEVATOR              2  2
ED UNUSED_MAP_ED                  0  0
EE UNUSED_MAP_EE                  0  0
EF TRADE_CENTER                   5  4
F0 COLOSSEUM                      5  4
F1 UNUSED_MAP_F1                  0  0
F2 UNUSED_MAP_F2                  0  0
F3 UNUSED_MAP_F3                  0  0
F4 UNUSED_MAP_F4                  0  0
F5 LORELEIS_ROOM                  5  6
F6 BRUNOS_ROOM                    5  6
F7 AGATHAS_ROOM                   5  6
"""


def _parse(rows: str) -> dict[int, MapInfo]:
    maps = {}
    for row in rows.split("\n"):
        if row:
            hex_id, name, width, height = row.split()
            maps[int(hex_id, 16)] = MapInfo(int(hex_id, 16), name, int(width), int(height))
    return maps


MAPS: dict[int, MapInfo] = _parse(_ROWS)
MAP_IDS: dict[str, int] = {info.name: map_id for map_id, info in MAPS.items()}
assert list(MAPS) == list(range(0xF8)), "the map table must cover $00-$F7 in order"


def map_name(map_id: int) -> str:
    """The pret constant of a map id; ids outside $00–$F7 (garbage RAM) get a readable stand-in."""
    info = MAPS.get(map_id)
    return info.name if info else f"UNKNOWN_MAP_{map_id:02X}"


def map_id(name: str) -> int:
    """The id of a map by pret constant, e.g. ``map_id("OAKS_LAB") == 0x28``."""
    return lookup(MAP_IDS, name, "map")

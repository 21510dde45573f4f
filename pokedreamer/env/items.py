"""Item ids as the bag holds them (``wBagItems``: id, quantity pairs), by pret/pokered's constants
(``constants/item_constants.asm``).

$01–$53 are the real items, $54–$61 the elevator floors (the game reuses item ids for the floor
menu), $C4–$C8 the HMs and $C9–$FA the TMs, named as the bag shows them (HM01, TM01 …) rather than
by pret's move-based constants (HM_CUT, TM_MEGA_PUNCH).
"""

from __future__ import annotations

# Items $01-$61 in id order, six a row.
_BY_ID = """
MASTER_BALL ULTRA_BALL GREAT_BALL POKE_BALL TOWN_MAP BICYCLE
SURFBOARD SAFARI_BALL POKEDEX MOON_STONE ANTIDOTE BURN_HEAL
ICE_HEAL AWAKENING PARLYZ_HEAL FULL_RESTORE MAX_POTION HYPER_POTION
SUPER_POTION POTION BOULDERBADGE CASCADEBADGE THUNDERBADGE RAINBOWBADGE
SOULBADGE MARSHBADGE VOLCANOBADGE EARTHBADGE ESCAPE_ROPE REPEL
OLD_AMBER FIRE_STONE THUNDER_STONE WATER_STONE HP_UP PROTEIN
IRON CARBOS CALCIUM RARE_CANDY DOME_FOSSIL HELIX_FOSSIL
SECRET_KEY UNUSED_ITEM BIKE_VOUCHER X_ACCURACY LEAF_STONE CARD_KEY
NUGGET PP_UP_2 POKE_DOLL FULL_HEAL REVIVE MAX_REVIVE
GUARD_SPEC SUPER_REPEL MAX_REPEL DIRE_HIT COIN FRESH_WATER
SODA_POP LEMONADE S_S_TICKET GOLD_TEETH X_ATTACK X_DEFEND
X_SPEED X_SPECIAL COIN_CASE OAKS_PARCEL ITEMFINDER SILPH_SCOPE
POKE_FLUTE LIFT_KEY EXP_ALL OLD_ROD GOOD_ROD SUPER_ROD
PP_UP ETHER MAX_ETHER ELIXER MAX_ELIXER FLOOR_B2F
FLOOR_B1F FLOOR_1F FLOOR_2F FLOOR_3F FLOOR_4F FLOOR_5F
FLOOR_6F FLOOR_7F FLOOR_8F FLOOR_9F FLOOR_10F FLOOR_11F
FLOOR_B4F
"""

HM01, TM01 = 0xC4, 0xC9
NUM_HMS, NUM_TMS = 5, 50

ITEMS: dict[int, str] = {
    **dict(enumerate(_BY_ID.split(), start=1)),
    **{HM01 + i: f"HM{i + 1:02}" for i in range(NUM_HMS)},
    **{TM01 + i: f"TM{i + 1:02}" for i in range(NUM_TMS)},
}
ITEM_IDS: dict[str, int] = {name: item for item, name in ITEMS.items()}
assert ITEMS[0x53] == "MAX_ELIXER" and ITEMS[0x61] == "FLOOR_B4F" and max(ITEMS) == 0xFA


def item_name(item: int) -> str:
    """The name of an item id; ids the game does not define get a readable stand-in."""
    return ITEMS.get(item, f"UNKNOWN_ITEM_{item:02X}")

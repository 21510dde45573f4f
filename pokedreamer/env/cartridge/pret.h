/* Pokémon Red's RAM variables that the fixture cartridge writes, with pret/pokered's names and
 * meanings (addresses from pret's generated pokered.sym). The agent's environment reads these
 * same addresses on the real game, so every write here must keep the real game's meaning. */
#ifndef PRET_H
#define PRET_H
#include <stdint.h>

#define RAM8(addr) (*(volatile uint8_t *)(addr))
#define RAMP(addr) ((volatile uint8_t *)(addr))

#define wSpriteStateData1   RAMP(0xC100) /* 16 slots of $10 bytes; slot 0 is the player */
#define wSpritePlayerStateData1FacingDirection RAM8(0xC109) /* 0 down, 4 up, 8 left, $C right */
#define wSpriteStateData2   RAMP(0xC200) /* 16 slots of $10 bytes */
#define wTileMap            RAMP(0xC3A0) /* 20x18 screen tiles; tile id == charmap code */
#define wPlayerMonNumber    RAM8(0xCC2F) /* the party slot (0-5) of the POKéMON in battle */
#define wJoyIgnore          RAM8(0xCD6B) /* buttons the overworld ignores; non-zero while scripted */
#define wFontLoaded         RAM8(0xCFC4) /* bit 0: a person's or sign's text box is shown; never in battle */
#define wEnemyMonSpecies    RAM8(0xCFE5)
#define wEnemyMonHP         RAMP(0xCFE6) /* 2 bytes, big-endian */
#define wEnemyMonLevel      RAM8(0xCFF3)
#define wEnemyMonMaxHP      RAMP(0xCFF4) /* 2 bytes, big-endian */
#define wBattleMonSpecies   RAM8(0xD014)
#define wBattleMonHP        RAMP(0xD015) /* 2 bytes, big-endian */
#define wBattleMonLevel     RAM8(0xD022)
#define wBattleMonMaxHP     RAMP(0xD023) /* 2 bytes, big-endian */
#define wIsInBattle         RAM8(0xD057) /* 0 none, 1 wild, 2 trainer, $FF lost */
#define wPlayerName         RAMP(0xD158) /* charmap text ended by $50 */
#define wPartyCount         RAM8(0xD163)
#define wPartySpecies       RAMP(0xD164) /* species ids, ended by $FF */
#define wPartyMon1          RAMP(0xD16B) /* party_struct, $2C bytes a mon */
#define wPokedexOwned       RAMP(0xD2F7) /* 19 bytes, bit (dex - 1) */
#define wPokedexSeen        RAMP(0xD30A) /* 19 bytes, bit (dex - 1) */
#define wNumBagItems        RAM8(0xD31D)
#define wBagItems           RAMP(0xD31E) /* (item id, quantity) pairs, ended by $FF */
#define wPlayerMoney        RAMP(0xD347) /* 3 bytes BCD, big-endian */
#define wObtainedBadges     RAM8(0xD356) /* bit 0 BOULDERBADGE */
#define wCurMap             RAM8(0xD35E)
#define wYCoord             RAM8(0xD361)
#define wXCoord             RAM8(0xD362)
#define wLastMap            RAM8(0xD365) /* the outside map a warp to LAST_MAP returns to */
#define wCurMapTileset      RAM8(0xD367)
#define wCurMapHeight       RAM8(0xD368) /* in blocks of 2x2 cells; 0 until a map header is loaded */
#define wCurMapWidth        RAM8(0xD369) /* in blocks of 2x2 cells */
#define wCurMapConnections  RAM8(0xD370) /* bits: NORTH 8, SOUTH 4, WEST 2, EAST 1 */
#define wNorthConnectionHeader RAMP(0xD371) /* 11 bytes each; byte 0 the connected map */
#define wSouthConnectionHeader RAMP(0xD37C)
#define wNumberOfWarps      RAM8(0xD3AE)
#define wWarpEntries        RAMP(0xD3AF) /* 4 bytes a warp: y, x, destination warp, destination map */
#define wTilesetCollisionPtr RAMP(0xD530) /* little-endian pointer to walkable tile ids, ended by $FF */
#define wEventFlags         RAMP(0xD747) /* flag i is bit i%8 of byte i/8 */

/* Battery-backed cartridge RAM: Red's sPlayerName sits in SRAM bank 1, ours in our only bank. */
#define sPlayerName         RAMP(0xA598) /* a save exists when it holds a name ended by $50 */
#define NAME_LENGTH 11

/* Offsets inside party_struct (pret's macro in macros/ram.asm). */
#define MON_SPECIES  0x00
#define MON_HP       0x01 /* 2 bytes, big-endian */
#define MON_BOXLEVEL 0x03
#define MON_MOVES    0x08
#define MON_EXP      0x0E /* 3 bytes, big-endian */
#define MON_PP       0x1D
#define MON_LEVEL    0x21
#define MON_MAXHP    0x22 /* 2 bytes, big-endian */

/* Facing values of wSpritePlayerStateData1FacingDirection. */
#define FACING_DOWN  0x00
#define FACING_UP    0x04
#define FACING_LEFT  0x08
#define FACING_RIGHT 0x0C

/* Offsets in a sprite slot (pret's macros/ram.asm, spritestatedata1/2). */
#define SPRITESTATEDATA1_PICTUREID      0x0
#define SPRITESTATEDATA1_MOVEMENTSTATUS 0x1 /* 1: ready */
#define SPRITESTATEDATA1_IMAGEINDEX     0x2 /* $FF: not drawn (off screen or hidden) */
#define SPRITESTATEDATA1_YPIXELS        0x4 /* screen position, 4 pixels above the cell */
#define SPRITESTATEDATA1_XPIXELS        0x6
#define SPRITESTATEDATA1_FACINGDIRECTION 0x9
#define SPRITESTATEDATA2_MAPY           0x4 /* map position plus 4 */
#define SPRITESTATEDATA2_MAPX           0x5
#define SPRITESTATEDATA2_MOVEMENTBYTE1  0x6 /* $FF: STAY */
#define SPRITESTATE_SIZE 0x10
#define NUM_SPRITESTATEDATA_STRUCTS 16
#define PLAYER_SCREEN_Y 0x3C /* the player's sprite always sits here: cell (4, 4) of the screen */
#define PLAYER_SCREEN_X 0x40
#define STAY 0xFF

/* Picture ids from pret's constants/sprite_constants.asm. */
#define SPRITE_RED        0x01
#define SPRITE_OAK        0x03
#define SPRITE_COOLTRAINER_M 0x07
#define SPRITE_HIKER      0x0E
#define SPRITE_MOM        0x33
#define SPRITE_POKE_BALL  0x3D

/* Tileset ids from pret's constants/tileset_constants.asm. */
#define OVERWORLD    0x00
#define REDS_HOUSE_1 0x01
#define GYM          0x07

/* Map ids from pret's constants/map_constants.asm, chosen where the role matches. */
#define PALLET_TOWN   0x00
#define ROUTE_1       0x0C
#define REDS_HOUSE_1F 0x25
#define PEWTER_GYM    0x36
#define LAST_MAP      0xFF /* a warp's destination: the outside map in wLastMap */

/* Species ids (pret's internal index order) and their Pokédex numbers. */
#define ONIX     0x22
#define PIDGEY   0x24
#define RATTATA  0xA5
#define GEODUDE  0xA9
#define SQUIRTLE 0xB1
#define DEX_SQUIRTLE 7
#define DEX_PIDGEY   16
#define DEX_RATTATA  19
#define DEX_GEODUDE  74
#define DEX_ONIX     95

#define TACKLE 0x21 /* move id */
#define POTION 0x14 /* item id */

/* Event flag indices from pret's constants/event_constants.asm. */
#define EVENT_GOT_STARTER               34  /* $D74B bit 2 */
#define EVENT_BEAT_PEWTER_GYM_TRAINER_0 114 /* $D755 bit 2 */
#define EVENT_BEAT_BROCK                119 /* $D755 bit 7 */

/* wCurMapConnections bits (pret's constants/map_data_constants.asm). */
#define CONNECTION_NORTH 0x08
#define CONNECTION_SOUTH 0x04
#define CONNECTION_HEADER_SIZE 11
/* Offsets in a connection header (pret's map_connection_struct). */
#define CONNECTION_MAP         0
#define CONNECTION_WIDTH       6
#define CONNECTION_Y_ALIGNMENT 7
#define CONNECTION_X_ALIGNMENT 8

#define BIT_BOULDERBADGE 0
#define BATTLE_WILD    1
#define BATTLE_TRAINER 2
#define BATTLE_LOST    0xFF

#endif

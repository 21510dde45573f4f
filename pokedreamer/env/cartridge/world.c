/* The overworld: four maps, walking, doors, people, the item, healing. */
#include "game.h"
#include "hw.h"
#include "tiles.h"

/* Map slots. Each map is MAP_W x MAP_H cells; one cell is one player step. */
enum { HOUSE, TOWN, ROUTE, GYM_MAP, NUM_MAPS };
static const uint8_t map_ids[NUM_MAPS] = {REDS_HOUSE_1F, PALLET_TOWN, ROUTE_1, PEWTER_GYM};

/* Terrain: # wall, T tree, R roof, = table (all block); . floor, p path, , tall grass;
 * D door, M mat. Doors and mats are warps (see the headers below); the town's top and the route's
 * bottom edge lead on to each other by connections. */
static const char *const terrain[NUM_MAPS] = {
    "##########"
    "#........#"
    "#.==.....#"
    "#.==.....#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "####MM####",

    "TTTTppTTTT"
    "T...pp...T"
    "TRRRpp...T"
    "TRDRpp...T"
    "T.p.pp...T"
    "T.pppp...T"
    "T........T"
    "T........T"
    "T........T"
    "TTTTTTTTTT",

    "TTTRRRTTTT"
    "TTTRDRTTTT"
    "T...pp...T"
    "T,,,,,,,,T"
    "T,,,,,,,,T"
    "T,,,,,,,,T"
    "T...pp...T"
    "T...pp...T"
    "T...pp...T"
    "TTTTppTTTT",

    "##########"
    "#........#"
    "#.=....=.#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "####MM####",
};

/* Each map's header as Pokémon Red keeps it in WRAM: size in blocks of 2x2 cells, the tileset, the
 * warps (y, x, destination warp, destination map) and the connections. As in Red, a building's
 * exits lead to LAST_MAP: wherever the player came in from. */
#define MAP_BLOCKS_W (MAP_W / 2)
#define MAP_BLOCKS_H (MAP_H / 2)
#define NO_WARP 0xFF
struct red_warp {
    uint8_t y, x, to_warp, to_map;
};
static const struct red_warp house_warps[] = {{9, 4, 0, LAST_MAP}, {9, 5, 0, LAST_MAP}};
static const struct red_warp town_warps[] = {{3, 2, 0, REDS_HOUSE_1F}};
static const struct red_warp route_warps[] = {{1, 4, 0, PEWTER_GYM}};
static const struct red_warp gym_warps[] = {{9, 4, 0, LAST_MAP}, {9, 5, 0, LAST_MAP}};
struct map_header {
    const struct red_warp *warps;
    uint8_t num_warps, tileset, border, connections, north, south; /* north/south: map slots */
};
static const struct map_header headers[NUM_MAPS] = {
    {house_warps, 2, REDS_HOUSE_1, MT_WALL, 0, 0, 0},
    {town_warps, 1, OVERWORLD, MT_TREE, CONNECTION_NORTH, ROUTE, 0},
    {route_warps, 1, OVERWORLD, MT_TREE, CONNECTION_SOUTH, 0, TOWN},
    {gym_warps, 2, GYM, MT_WALL, 0, 0, 0},
};

/* The tilesets' collision lists (walkable tile ids, ended by $FF) and door tiles, as Red keeps them
 * in ROM bank 0 (data/tilesets/collision_tile_ids.asm, data/tilesets/door_tile_ids.asm). A map
 * cell's tile is the lower-left of its 2x2 tiles: its metatile's first tile + 2. */
static const uint8_t overworld_collision[] = {MT_FLOOR + 2, MT_PATH + 2, MT_GRASS + 2, MT_DOOR + 2, 0xFF};
static const uint8_t indoor_collision[] = {MT_FLOOR + 2, MT_MAT + 2, 0xFF};
static const uint8_t door_tiles[] = {MT_DOOR + 2, 0xFF};

/* People, the sign and the item; each map's sprites take slots 1.. in this order, as Red's
 * object_events do. The sign is a background event in Red, so it has no picture and no slot. */
enum { P_MOM, P_GUIDE, P_SIGN, P_ITEM, P_LEADER, P_CAMPER, NUM_PEOPLE };
struct person {
    uint8_t map, x, y, metatile, picture;
};
static const struct person people[NUM_PEOPLE] = {
    {HOUSE, 6, 2, MT_PERSON, SPRITE_MOM},
    {TOWN, 7, 2, MT_PERSON, SPRITE_OAK},
    {TOWN, 6, 5, MT_SIGN, 0},
    {ROUTE, 8, 6, MT_BALL, SPRITE_POKE_BALL},
    {GYM_MAP, 4, 1, MT_LEADER, SPRITE_HIKER},
    {GYM_MAP, 6, 4, MT_PERSON, SPRITE_COOLTRAINER_M},
};

/* The house spot in front of MOM, where a blackout brings the player back. */
#define HEAL_X 5
#define HEAL_Y 2

/* The player's cell on screen: tiles (8..9, 8..9) of wTileMap, as in Red. */
#define VIEW_ROW 4
#define VIEW_COL 4
#define VIEW_ROWS (SCREEN_H / 2)
#define VIEW_COLS (SCREEN_W / 2)

static uint8_t map_slot;
static uint8_t step_cooldown;
static uint8_t item_taken;

static const char text_mom_intro[] =
    "MOM: Good morning,\nRED!\f"
    "The GUIDE is in\ntown. Go see him.\f"
    "Come home to rest\nwhenever you like.";
static const char text_mom_heal[] =
    "MOM: RED, you look\ntired. Rest a bit.\f"
    "Your POK^MON are\nfully healed!";
static const char text_guide_starter[] =
    "GUIDE: Hello, RED!\nGoing out alone?\f"
    "It's not safe.\nTake this one!\f"
    "RED got SQUIRTLE!";
static const char text_guide_hint[] =
    "GUIDE: The GYM is\nnorth, past the\f"
    "tall grass. Train\nthere, rest at\f"
    "home, then win\nthe BOULDERBADGE!";
static const char text_guide_done[] = "GUIDE: A badge!\nWell done, RED!";
static const char text_guard[] =
    "GUIDE: Wait, RED!\nDon't go yet!\f"
    "Wild POK^MON hide\nin tall grass.\f"
    "Come and see me\nfirst!";
static const char text_sign[] = "DREAM TOWN\nEvery step counts.";
static const char text_item[] = "RED found POTION!";
static const char text_camper_pre[] = "CAMPER: Not so\nfast! Battle me!";
static const char text_camper_post[] = "CAMPER: The LEADER\nis tough. Rest up!";
static const char text_leader_pre[] =
    "SHALE: I am this\nGYM's LEADER!\f"
    "Show me what you\nhave learned!";
static const char text_leader_post[] = "SHALE: That badge\nsuits you, RED.";

static uint8_t cell_metatile(char c) {
    switch (c) {
    case '#': return MT_WALL;
    case 'T': return MT_TREE;
    case 'R': return MT_ROOF;
    case '=': return MT_TABLE;
    case ',': return MT_GRASS;
    case 'D': return MT_DOOR;
    case 'M': return MT_MAT;
    case 'p': return MT_PATH;
    default: return MT_FLOOR;
    }
}

static char terrain_at(uint8_t slot, uint8_t x, uint8_t y) { return terrain[slot][(uint8_t)(y * MAP_W + x)]; }

static char cell_at(uint8_t x, uint8_t y) { return terrain_at(map_slot, x, y); }

static uint8_t slot_of(uint8_t map_id) {
    uint8_t slot;
    for (slot = 0; slot < NUM_MAPS - 1; slot++)
        if (map_ids[slot] == map_id) break;
    return slot;
}

static uint8_t on_map(int8_t x, int8_t y) { return x >= 0 && x < MAP_W && y >= 0 && y < MAP_H; }

static uint8_t person_at(uint8_t x, uint8_t y) {
    /* index of the person (or sign, or item) standing on a cell, NUM_PEOPLE when none */
    uint8_t i;
    for (i = 0; i < NUM_PEOPLE; i++) {
        if (i == P_ITEM && item_taken) continue;
        if (people[i].map == map_slot && people[i].x == x && people[i].y == y) return i;
    }
    return NUM_PEOPLE;
}

static uint8_t ground_metatile(int8_t x, int8_t y) {
    /* A cell of the map or around it: beyond an edge with a connection lies the connected map's
     * strip (Red's LoadTileBlockMap copies it there), beyond any other edge the border block. */
    const struct map_header *header = &headers[map_slot];
    if (x >= 0 && x < MAP_W) {
        if (y >= 0 && y < MAP_H) return cell_metatile(cell_at(x, y));
        if (y < 0 && (header->connections & CONNECTION_NORTH))
            return cell_metatile(terrain_at(header->north, x, y + MAP_H));
        if (y >= MAP_H && (header->connections & CONNECTION_SOUTH))
            return cell_metatile(terrain_at(header->south, x, y - MAP_H));
    }
    return header->border;
}

static void put_metatile(uint8_t column, uint8_t row, uint8_t first) {
    volatile uint8_t *p = wTileMap + (uint16_t)(row * 2) * SCREEN_W + column * 2;
    p[0] = first;
    p[1] = first + 1;
    p[SCREEN_W] = first + 2;
    p[SCREEN_W + 1] = first + 3;
}

static uint8_t screen_tile(uint8_t row, uint8_t column) {
    /* the tile Red tests for a step cell on screen: its lower-left one */
    return wTileMap[(uint16_t)(row * 2 + 1) * SCREEN_W + column * 2];
}

static uint8_t in_list(const uint8_t *list, uint8_t tile) {
    for (; *list != 0xFF; list++)
        if (*list == tile) return 1;
    return 0;
}

static uint8_t tile_passable(uint8_t tile) {
    /* Red's CheckTilePassable: the tile must be in the list wTilesetCollisionPtr points to */
    return in_list((const uint8_t *)(wTilesetCollisionPtr[0] | (uint16_t)wTilesetCollisionPtr[1] << 8), tile);
}

static uint8_t player_metatile(void) {
    switch (wSpritePlayerStateData1FacingDirection) {
    case FACING_UP: return MT_PLAYER_UP;
    case FACING_LEFT: return MT_PLAYER_LEFT;
    case FACING_RIGHT: return MT_PLAYER_RIGHT;
    default: return MT_PLAYER_DOWN;
    }
}

static void update_sprites(void) {
    /* wSpriteStateData1/2 as Red's sprite engine keeps them: slot 0 the player, then the map's
     * people; a hidden or off-screen sprite has image index $FF. */
    volatile uint8_t *one = wSpriteStateData1, *two = wSpriteStateData2;
    int8_t dy, dx;
    uint8_t i;
    one[SPRITESTATEDATA1_PICTUREID] = SPRITE_RED;
    one[SPRITESTATEDATA1_MOVEMENTSTATUS] = 1;
    one[SPRITESTATEDATA1_IMAGEINDEX] = wSpritePlayerStateData1FacingDirection;
    one[SPRITESTATEDATA1_YPIXELS] = PLAYER_SCREEN_Y;
    one[SPRITESTATEDATA1_XPIXELS] = PLAYER_SCREEN_X;
    two[SPRITESTATEDATA2_MAPY] = wYCoord + 4;
    two[SPRITESTATEDATA2_MAPX] = wXCoord + 4;
    for (i = 0; i < NUM_PEOPLE; i++) {
        if (people[i].map != map_slot || !people[i].picture) continue;
        one += SPRITESTATE_SIZE;
        two += SPRITESTATE_SIZE;
        dy = (int8_t)(people[i].y - wYCoord);
        dx = (int8_t)(people[i].x - wXCoord);
        one[SPRITESTATEDATA1_PICTUREID] = people[i].picture;
        one[SPRITESTATEDATA1_MOVEMENTSTATUS] = 1;
        one[SPRITESTATEDATA1_IMAGEINDEX] =
            (i == P_ITEM && item_taken) || dy < -VIEW_ROW || dy >= VIEW_ROWS - VIEW_ROW ||
                    dx < -VIEW_COL || dx >= VIEW_COLS - VIEW_COL
                ? 0xFF
                : FACING_DOWN;
        one[SPRITESTATEDATA1_YPIXELS] = (uint8_t)(PLAYER_SCREEN_Y + dy * 16);
        one[SPRITESTATEDATA1_XPIXELS] = (uint8_t)(PLAYER_SCREEN_X + dx * 16);
        one[SPRITESTATEDATA1_FACINGDIRECTION] = FACING_DOWN;
        two[SPRITESTATEDATA2_MAPY] = people[i].y + 4;
        two[SPRITESTATEDATA2_MAPX] = people[i].x + 4;
        two[SPRITESTATEDATA2_MOVEMENTBYTE1] = STAY;
    }
}

void world_draw(void) {
    /* The screen follows the player, who stands in cell (4, 4), as in Red. */
    uint8_t row, column, who;
    int8_t x, y;
    for (row = 0; row < VIEW_ROWS; row++) {
        y = (int8_t)(wYCoord + row - VIEW_ROW);
        for (column = 0; column < VIEW_COLS; column++) {
            x = (int8_t)(wXCoord + column - VIEW_COL);
            who = on_map(x, y) ? person_at(x, y) : NUM_PEOPLE;
            put_metatile(column, row, who < NUM_PEOPLE ? people[who].metatile : ground_metatile(x, y));
        }
    }
    put_metatile(VIEW_COL, VIEW_ROW, player_metatile());
    update_sprites();
}

static void load_connection(volatile uint8_t *header, uint8_t slot, uint8_t y_alignment) {
    header[CONNECTION_MAP] = map_ids[slot];
    header[CONNECTION_WIDTH] = MAP_BLOCKS_W;
    header[CONNECTION_Y_ALIGNMENT] = y_alignment;
    header[CONNECTION_X_ALIGNMENT] = 0; /* our maps are equally wide and side by side */
}

static void load_map_header(uint8_t slot) {
    const struct map_header *header = &headers[slot];
    volatile uint8_t *entry = wWarpEntries;
    const uint8_t *collision;
    uint8_t i;
    wCurMapTileset = header->tileset;
    wCurMapHeight = MAP_BLOCKS_H;
    wCurMapWidth = MAP_BLOCKS_W;
    wCurMapConnections = header->connections;
    for (i = 0; i < CONNECTION_HEADER_SIZE; i++) {
        wNorthConnectionHeader[i] = 0;
        wSouthConnectionHeader[i] = 0;
    }
    /* Arriving from the north one lands on the connected map's bottom row, from the south on its
     * top row (Red's connection alignments). */
    if (header->connections & CONNECTION_NORTH) load_connection(wNorthConnectionHeader, header->north, MAP_H - 1);
    if (header->connections & CONNECTION_SOUTH) load_connection(wSouthConnectionHeader, header->south, 0);
    wNumberOfWarps = header->num_warps;
    for (i = 0; i < header->num_warps; i++, entry += 4) {
        entry[0] = header->warps[i].y;
        entry[1] = header->warps[i].x;
        entry[2] = header->warps[i].to_warp;
        entry[3] = header->warps[i].to_map;
    }
    collision = header->tileset == OVERWORLD ? overworld_collision : indoor_collision;
    wTilesetCollisionPtr[0] = (uint8_t)(uint16_t)collision;
    wTilesetCollisionPtr[1] = (uint8_t)((uint16_t)collision >> 8);
    for (i = 1; i < NUM_SPRITESTATEDATA_STRUCTS; i++) wSpriteStateData1[i * SPRITESTATE_SIZE] = 0;
}

static void warp_to(uint8_t slot, uint8_t x, uint8_t y) {
    load_map_header(slot);
    map_slot = slot;
    wCurMap = map_ids[slot];
    wXCoord = x;
    wYCoord = y;
    world_draw();
}

static uint8_t warp_at(uint8_t x, uint8_t y) {
    volatile uint8_t *entry = wWarpEntries;
    uint8_t i;
    for (i = 0; i < wNumberOfWarps; i++, entry += 4)
        if (entry[0] == y && entry[1] == x) return i;
    return NO_WARP;
}

static uint8_t facing_edge_of_map(void) {
    /* Red's IsPlayerFacingEdgeOfMap */
    switch (wSpritePlayerStateData1FacingDirection) {
    case FACING_DOWN: return wYCoord == (uint8_t)(wCurMapHeight * 2 - 1);
    case FACING_UP: return wYCoord == 0;
    case FACING_LEFT: return wXCoord == 0;
    default: return wXCoord == (uint8_t)(wCurMapWidth * 2 - 1);
    }
}

static uint8_t extra_warp_check(void) {
    /* Red's ExtraWarpCheck: indoors a warp that is no door takes a press toward the map's edge;
     * outdoors it takes a warp tile in front (IsWarpTileInFrontOfPlayer), and our outdoor
     * tileset has none: its only warps are doors. */
    if (wCurMapTileset == OVERWORLD) return 0;
    return facing_edge_of_map();
}

static void take_warp(uint8_t index) {
    /* Red's WarpFound2: leaving an outside map remembers it in wLastMap, and a warp to LAST_MAP
     * leads back there. One arrives on the destination warp's cell; on a door one steps out
     * downwards (PlayerStepOutFromDoor), on a mat one stays. */
    volatile uint8_t *entry = wWarpEntries + index * 4;
    uint8_t to_warp = entry[2], to_map = entry[3], slot;
    if (wCurMapTileset == OVERWORLD) wLastMap = wCurMap;
    else if (to_map == LAST_MAP) to_map = wLastMap;
    slot = slot_of(to_map);
    load_map_header(slot);
    map_slot = slot;
    wCurMap = to_map;
    entry = wWarpEntries + to_warp * 4;
    wYCoord = entry[0];
    wXCoord = entry[1];
    if (in_list(door_tiles, cell_metatile(cell_at(wXCoord, wYCoord)) + 2)) {
        wYCoord++;
        wSpritePlayerStateData1FacingDirection = FACING_DOWN;
    }
    world_draw();
}

static void enter_connection(volatile uint8_t *header, uint8_t across_x) {
    /* Red's CheckMapConnections for a north or south edge: the row becomes the alignment, the
     * column is shifted by the other. */
    uint8_t to_map = header[CONNECTION_MAP];
    uint8_t slot = slot_of(to_map);
    uint8_t y = header[CONNECTION_Y_ALIGNMENT];
    uint8_t x = across_x + header[CONNECTION_X_ALIGNMENT];
    warp_to(slot, x, y);
}

void heal_party(void) {
    volatile uint8_t *mon = wPartyMon1;
    uint8_t i;
    for (i = 0; i < wPartyCount; i++, mon += 0x2C) {
        mon[MON_HP] = mon[MON_MAXHP];
        mon[MON_HP + 1] = mon[MON_MAXHP + 1];
        mon[MON_PP] = 35; /* TACKLE's PP */
    }
}

void world_blackout(void) {
    heal_party();
    wSpritePlayerStateData1FacingDirection = FACING_RIGHT; /* facing MOM */
    wLastMap = PALLET_TOWN; /* as Red's SpecialWarpIn leaves it after a blackout */
    warp_to(HOUSE, HEAL_X, HEAL_Y);
}

void world_new_game(void) {
    /* The player's data and, as Pokémon Red's PrepareForSpecialWarp does before Oak speaks, the
     * new-game warp in wCurMap/wYCoord/wXCoord; the map itself is loaded by world_enter. */
    wPlayerMoney[0] = 0x00; /* $3000, BCD */
    wPlayerMoney[1] = 0x30;
    wPlayerMoney[2] = 0x00;
    wPartySpecies[0] = 0xFF; /* empty party and bag lists are terminated at once */
    wBagItems[0] = 0xFF;
    wSpritePlayerStateData1FacingDirection = FACING_DOWN;
    wLastMap = PALLET_TOWN; /* SpecialWarpIn's value for a new game */
    wCurMap = REDS_HOUSE_1F;
    wYCoord = 5;
    wXCoord = 3;
}

void world_enter(void) {
    /* the end of the intro: the new-game warp's map is loaded and the player walks */
    warp_to(HOUSE, wXCoord, wYCoord);
    game_mode = MODE_WALK;
}

static void give_starter(void) {
    volatile uint8_t *mon = wPartyMon1;
    wPartyCount = 1;
    wPartySpecies[0] = SQUIRTLE;
    wPartySpecies[1] = 0xFF;
    mon[MON_SPECIES] = SQUIRTLE;
    mon[MON_BOXLEVEL] = 5;
    mon[MON_LEVEL] = 5;
    mon[MON_MOVES] = TACKLE;
    mon[MON_EXP + 2] = 125; /* 5^3: the medium-fast curve at level 5 */
    put16(mon + MON_MAXHP, 20);
    heal_party();
    wPokedexOwned[(DEX_SQUIRTLE - 1) >> 3] |= (uint8_t)(1 << ((DEX_SQUIRTLE - 1) & 7));
    wPokedexSeen[(DEX_SQUIRTLE - 1) >> 3] |= (uint8_t)(1 << ((DEX_SQUIRTLE - 1) & 7));
    set_event(EVENT_GOT_STARTER);
}

static void take_item(void) {
    item_taken = 1;
    wNumBagItems = 1;
    wBagItems[0] = POTION;
    wBagItems[1] = 1;
    wBagItems[2] = 0xFF;
}

static void talk_to(uint8_t who) {
    switch (who) {
    case P_MOM:
        if (wPartyCount) {
            heal_party();
            text_show(text_mom_heal, AFTER_CLOSE);
        } else {
            text_show(text_mom_intro, AFTER_CLOSE);
        }
        break;
    case P_GUIDE:
        if (!wPartyCount) {
            give_starter();
            text_show(text_guide_starter, AFTER_CLOSE);
        } else {
            text_show(wObtainedBadges ? text_guide_done : text_guide_hint, AFTER_CLOSE);
        }
        break;
    case P_SIGN:
        text_show(text_sign, AFTER_CLOSE);
        break;
    case P_ITEM:
        take_item();
        text_show(text_item, AFTER_CLOSE);
        break;
    case P_CAMPER:
        if (check_event(EVENT_BEAT_PEWTER_GYM_TRAINER_0)) {
            text_show(text_camper_post, AFTER_CLOSE);
        } else {
            pending_trainer = 1;
            text_show(text_camper_pre, AFTER_TRAINER_BATTLE);
        }
        break;
    case P_LEADER:
        if (check_event(EVENT_BEAT_BROCK)) {
            text_show(text_leader_post, AFTER_CLOSE);
        } else {
            pending_trainer = 2;
            text_show(text_leader_pre, AFTER_TRAINER_BATTLE);
        }
        break;
    }
}

static void step(uint8_t facing) {
    /* Red's overworld loop for one press: the step cell's tile must be in the tileset's collision
     * list and no sprite may stand there (CollisionCheckOnLand). A blocked press still turns the
     * player, and standing on a warp it takes it when ExtraWarpCheck passes (CheckWarpsCollision).
     * A step onto a warp takes it at once on a door tile, else when ExtraWarpCheck passes with a
     * direction held (CheckWarpsNoCollision); a step off an edge with a connection enters the
     * connected map (CheckMapConnections). */
    int8_t x = (int8_t)wXCoord, y = (int8_t)wYCoord;
    uint8_t row = VIEW_ROW, column = VIEW_COL, tile, index;
    wSpritePlayerStateData1FacingDirection = facing;
    if (facing == FACING_UP) y--, row--;
    else if (facing == FACING_DOWN) y++, row++;
    else if (facing == FACING_LEFT) x--, column--;
    else x++, column++;
    tile = screen_tile(row, column);
    if (!tile_passable(tile) || (on_map(x, y) && person_at(x, y) < NUM_PEOPLE)) {
        index = warp_at(wXCoord, wYCoord);
        if (index != NO_WARP && extra_warp_check()) take_warp(index);
        else put_metatile(VIEW_COL, VIEW_ROW, player_metatile());
        return;
    }
    if (!on_map(x, y)) {
        if (map_slot == TOWN && !wPartyCount) {
            text_show(text_guard, AFTER_CLOSE); /* the guide stops a player with no POKéMON */
            return;
        }
        if (y < 0) enter_connection(wNorthConnectionHeader, (uint8_t)x);
        else enter_connection(wSouthConnectionHeader, (uint8_t)x);
        return;
    }
    wXCoord = (uint8_t)x;
    wYCoord = (uint8_t)y;
    index = warp_at(wXCoord, wYCoord);
    if (index != NO_WARP &&
        (in_list(door_tiles, tile) || (extra_warp_check() && (joy_held & (J_UP | J_DOWN | J_LEFT | J_RIGHT))))) {
        take_warp(index);
        return;
    }
    world_draw();
    if (cell_at(wXCoord, wYCoord) == ',' && wPartyCount && random() < 40) battle_start_wild();
}

void world_input(void) {
    uint8_t who, x = wXCoord, y = wYCoord;
    if (step_cooldown) {
        step_cooldown--;
        return;
    }
    if (joy_pressed & J_A) {
        switch (wSpritePlayerStateData1FacingDirection) {
        case FACING_UP: y--; break;
        case FACING_DOWN: y++; break;
        case FACING_LEFT: x--; break;
        default: x++; break;
        }
        who = (x < MAP_W && y < MAP_H) ? person_at(x, y) : NUM_PEOPLE;
        if (who < NUM_PEOPLE) talk_to(who);
        return;
    }
    /* One step per 12 frames while a direction is held: a press held for 8 frames walks one cell. */
    if (joy_held & J_UP) step(FACING_UP);
    else if (joy_held & J_DOWN) step(FACING_DOWN);
    else if (joy_held & J_LEFT) step(FACING_LEFT);
    else if (joy_held & J_RIGHT) step(FACING_RIGHT);
    else return;
    step_cooldown = 11;
}

void text_closed(uint8_t after) {
    if (after == AFTER_CLOSE) {
        wFontLoaded &= (uint8_t)~1;
        game_mode = MODE_WALK;
        world_draw();
    } else if (after >= AFTER_NAME_PROMPT) {
        intro_after(after);
    } else if (after == AFTER_TRAINER_BATTLE) {
        battle_start_trainer(pending_trainer);
    } else {
        battle_after(after);
    }
}

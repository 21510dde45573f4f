/* The overworld: four maps, walking, doors, people, the item, healing. */
#include "game.h"
#include "hw.h"
#include "tiles.h"

/* Map slots. Each map is MAP_W x MAP_H cells; one cell is one player step. */
enum { HOUSE, TOWN, ROUTE, GYM, NUM_MAPS };
static const uint8_t map_ids[NUM_MAPS] = {REDS_HOUSE_1F, PALLET_TOWN, ROUTE_1, PEWTER_GYM};

/* Terrain: # wall, T tree, R roof, = table (all block); . floor, p path, , tall grass;
 * D door, M mat, E map edge (walkable warps, see `warps`). */
static const char *const terrain[NUM_MAPS] = {
    "##########"
    "#........#"
    "#.==.....#"
    "#.==.....#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "####MM####",

    "TTTTEETTTT"
    "T...pp...T"
    "TRRRpp...T"
    "TRDRpp...T"
    "T.p.pp...T"
    "T.pppp...T"
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
    "TTTTEETTTT",

    "##########"
    "#........#"
    "#.=....=.#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "#........#"
    "####MM####",
};

struct warp {
    uint8_t map, x, y, to_map, to_x, to_y;
};
static const struct warp warps[] = {
    {HOUSE, 4, 8, TOWN, 2, 4}, {HOUSE, 5, 8, TOWN, 2, 4},
    {TOWN, 2, 3, HOUSE, 4, 7},
    {TOWN, 4, 0, ROUTE, 4, 7}, {TOWN, 5, 0, ROUTE, 5, 7},
    {ROUTE, 4, 8, TOWN, 4, 1}, {ROUTE, 5, 8, TOWN, 5, 1},
    {ROUTE, 4, 1, GYM, 4, 7},
    {GYM, 4, 8, ROUTE, 4, 2}, {GYM, 5, 8, ROUTE, 4, 2},
};
#define NUM_WARPS (sizeof(warps) / sizeof(warps[0]))

/* Each map's header as Pokémon Red keeps it in WRAM: size in blocks of 2x2 cells (our 9 cell rows
 * round up to 5 blocks), the warps a player can take (y, x, destination warp, destination map), and
 * the connections. The town and the route join at their edges, which Red calls connections, so
 * those edge cells are no warps in these lists. */
#define MAP_BLOCKS_W (MAP_W / 2)
#define MAP_BLOCKS_H ((MAP_H + 1) / 2)
struct red_warp {
    uint8_t y, x, to_warp, to_map;
};
static const struct red_warp house_warps[] = {{8, 4, 0, PALLET_TOWN}, {8, 5, 0, PALLET_TOWN}};
static const struct red_warp town_warps[] = {{3, 2, 0, REDS_HOUSE_1F}};
static const struct red_warp route_warps[] = {{1, 4, 0, PEWTER_GYM}};
static const struct red_warp gym_warps[] = {{8, 4, 0, ROUTE_1}, {8, 5, 0, ROUTE_1}};
struct map_header {
    const struct red_warp *warps;
    uint8_t num_warps, connections, north, south;
};
static const struct map_header headers[NUM_MAPS] = {
    {house_warps, 2, 0, 0, 0},
    {town_warps, 1, CONNECTION_NORTH, ROUTE_1, 0},
    {route_warps, 1, CONNECTION_SOUTH, 0, PALLET_TOWN},
    {gym_warps, 2, 0, 0, 0},
};

enum { P_MOM, P_GUIDE, P_SIGN, P_ITEM, P_CAMPER, P_LEADER, NUM_PEOPLE };
struct person {
    uint8_t map, x, y, metatile;
};
static const struct person people[NUM_PEOPLE] = {
    {HOUSE, 6, 2, MT_PERSON}, {TOWN, 7, 2, MT_PERSON}, {TOWN, 6, 5, MT_SIGN},
    {ROUTE, 8, 6, MT_BALL},   {GYM, 6, 4, MT_PERSON},  {GYM, 4, 1, MT_LEADER},
};

/* The house spot in front of MOM, where a blackout brings the player back. */
#define HEAL_X 5
#define HEAL_Y 2

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
    case 'p':
    case 'E': return MT_PATH;
    default: return MT_FLOOR;
    }
}

static char cell_at(uint8_t x, uint8_t y) { return terrain[map_slot][(uint8_t)(y * MAP_W + x)]; }

static uint8_t person_at(uint8_t x, uint8_t y) {
    /* index of the person (or sign, or item) standing on a cell, NUM_PEOPLE when none */
    uint8_t i;
    for (i = 0; i < NUM_PEOPLE; i++) {
        if (i == P_ITEM && item_taken) continue;
        if (people[i].map == map_slot && people[i].x == x && people[i].y == y) return i;
    }
    return NUM_PEOPLE;
}

static void put_metatile(uint8_t x, uint8_t y, uint8_t first) {
    volatile uint8_t *p = wTileMap + (uint16_t)(y * 2) * SCREEN_W + x * 2;
    p[0] = first;
    p[1] = first + 1;
    p[SCREEN_W] = first + 2;
    p[SCREEN_W + 1] = first + 3;
}

static uint8_t player_metatile(void) {
    switch (wSpritePlayerStateData1FacingDirection) {
    case FACING_UP: return MT_PLAYER_UP;
    case FACING_LEFT: return MT_PLAYER_LEFT;
    case FACING_RIGHT: return MT_PLAYER_RIGHT;
    default: return MT_PLAYER_DOWN;
    }
}

static void draw_cell(uint8_t x, uint8_t y) {
    uint8_t who = person_at(x, y);
    put_metatile(x, y, who < NUM_PEOPLE ? people[who].metatile : cell_metatile(cell_at(x, y)));
}

void world_draw(void) {
    uint8_t x, y;
    for (y = 0; y < MAP_H; y++)
        for (x = 0; x < MAP_W; x++) draw_cell(x, y);
    put_metatile(wXCoord, wYCoord, player_metatile());
}

static void load_map_header(uint8_t slot) {
    const struct map_header *header = &headers[slot];
    volatile uint8_t *entry = wWarpEntries;
    uint8_t i;
    wCurMapHeight = MAP_BLOCKS_H;
    wCurMapWidth = MAP_BLOCKS_W;
    wCurMapConnections = header->connections;
    for (i = 0; i < CONNECTION_HEADER_SIZE; i++) {
        wNorthConnectionHeader[i] = 0;
        wSouthConnectionHeader[i] = 0;
    }
    if (header->connections & CONNECTION_NORTH) wNorthConnectionHeader[0] = header->north;
    if (header->connections & CONNECTION_SOUTH) wSouthConnectionHeader[0] = header->south;
    wNumberOfWarps = header->num_warps;
    for (i = 0; i < header->num_warps; i++, entry += 4) {
        entry[0] = header->warps[i].y;
        entry[1] = header->warps[i].x;
        entry[2] = header->warps[i].to_warp;
        entry[3] = header->warps[i].to_map;
    }
}

static void warp_to(uint8_t slot, uint8_t x, uint8_t y) {
    load_map_header(slot);
    map_slot = slot;
    wCurMap = map_ids[slot];
    wXCoord = x;
    wYCoord = y;
    world_draw();
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

static uint8_t walkable(char c) { return c == '.' || c == 'p' || c == ',' || c == 'D' || c == 'M' || c == 'E'; }

static void step(uint8_t facing) {
    uint8_t x = wXCoord, y = wYCoord, i;
    char c;
    wSpritePlayerStateData1FacingDirection = facing; /* a blocked press still turns the player */
    if (facing == FACING_UP) {
        if (y == 0) goto blocked;
        y--;
    } else if (facing == FACING_DOWN) {
        if (y == MAP_H - 1) goto blocked;
        y++;
    } else if (facing == FACING_LEFT) {
        if (x == 0) goto blocked;
        x--;
    } else {
        if (x == MAP_W - 1) goto blocked;
        x++;
    }
    c = cell_at(x, y);
    if (!walkable(c) || person_at(x, y) < NUM_PEOPLE) goto blocked;
    for (i = 0; i < NUM_WARPS; i++) {
        if (warps[i].map != map_slot || warps[i].x != x || warps[i].y != y) continue;
        if (warps[i].to_map == ROUTE && !wPartyCount) {
            text_show(text_guard, AFTER_CLOSE); /* the guide stops a player with no POKéMON */
            return;
        }
        warp_to(warps[i].to_map, warps[i].to_x, warps[i].to_y);
        return;
    }
    draw_cell(wXCoord, wYCoord);
    wXCoord = x;
    wYCoord = y;
    put_metatile(x, y, player_metatile());
    if (c == ',' && wPartyCount && random() < 40) battle_start_wild();
    return;
blocked:
    put_metatile(wXCoord, wYCoord, player_metatile());
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

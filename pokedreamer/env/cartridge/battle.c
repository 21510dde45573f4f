/* Battles: a wild POKéMON from the tall grass or a trainer, a FIGHT/RUN menu, winning and losing.
 * As in Pokémon Red, a battle never sets wFontLoaded: its messages are printed like PrintText's
 * (speech_show) on rows 14 and 16, and its menu is a box of its own over an empty message box. */
#include "game.h"
#include "hw.h"
#include "tiles.h"

#define MAX_LEVEL 40
uint8_t pending_trainer; /* set before a trainer's speech: 1 CAMPER, 2 LEADER */
static uint8_t battle_trainer; /* 0 wild, else as pending_trainer */
static uint8_t menu_cursor;    /* 0 FIGHT, 1 RUN */

/* Pokémon Red's ReadPlayerMonCurHPAndStatus: the battle HP goes back to the party slot only at
 * the start of each turn and when either POKéMON faints, so the slot lags behind in between. */
static void copy_hp_to_party(void) {
    volatile uint8_t *mon = wPartyMon1 + (uint16_t)wPlayerMonNumber * 0x2C;
    mon[MON_HP] = wBattleMonHP[0];
    mon[MON_HP + 1] = wBattleMonHP[1];
}

static const char *const trainer_names[3] = {"", "CAMPER", "SHALE"};

static const char *species_name(uint8_t species) {
    switch (species) {
    case RATTATA: return "RATTATA";
    case PIDGEY: return "PIDGEY";
    case GEODUDE: return "GEODUDE";
    case ONIX: return "ONIX";
    default: return "SQUIRTLE";
    }
}

static uint8_t dex_number(uint8_t species) {
    switch (species) {
    case RATTATA: return DEX_RATTATA;
    case PIDGEY: return DEX_PIDGEY;
    case GEODUDE: return DEX_GEODUDE;
    case ONIX: return DEX_ONIX;
    default: return DEX_SQUIRTLE;
    }
}

static void draw_hp(void) {
    put_num(4, 3, get16(wEnemyMonHP), 3);
    put_num(8, 3, get16(wEnemyMonMaxHP), 3);
    put_num(12, 9, get16(wBattleMonHP), 3);
    put_num(16, 9, get16(wBattleMonMaxHP), 3);
}

static void draw_battle(void) {
    uint8_t i;
    fill_screen(TILE_SPACE);
    put_text(1, 1, species_name(wEnemyMonSpecies));
    put_text(1, 2, "Lv");
    put_num(3, 2, wEnemyMonLevel, 2);
    put_text(1, 3, "HP    /");
    put_text(9, 7, species_name(wBattleMonSpecies));
    put_text(9, 8, "Lv");
    put_num(11, 8, wBattleMonLevel, 2);
    put_text(9, 9, "HP    /");
    for (i = 0; i < 4; i++) { /* the two POKéMON, as 16x16 pictures */
        put_tile(15 + (i & 1), 2 + (i >> 1), MT_MON + i);
        put_tile(3 + (i & 1), 8 + (i >> 1), MT_MON + i);
    }
    draw_hp();
    draw_box();
}

static void see(uint8_t species) {
    uint8_t dex = dex_number(species) - 1;
    wPokedexSeen[dex >> 3] |= (uint8_t)(1 << (dex & 7));
}

static void begin(uint8_t kind, uint8_t species, uint8_t level, uint8_t bonus_hp) {
    volatile uint8_t *mon = wPartyMon1;
    wFontLoaded &= (uint8_t)~1; /* Red's CloseTextDisplay as a trainer's speech ends; first, so
                                   no frame sees the battle begun with the bit still set */
    wIsInBattle = kind;
    wEnemyMonSpecies = species;
    wEnemyMonLevel = level;
    put16(wEnemyMonMaxHP, 8 + 2 * level + bonus_hp);
    put16(wEnemyMonHP, 8 + 2 * level + bonus_hp);
    wBattleMonSpecies = mon[MON_SPECIES];
    wBattleMonLevel = mon[MON_LEVEL];
    wBattleMonHP[0] = mon[MON_HP];
    wBattleMonHP[1] = mon[MON_HP + 1];
    wBattleMonMaxHP[0] = mon[MON_MAXHP];
    wBattleMonMaxHP[1] = mon[MON_MAXHP + 1];
    see(species);
    wPlayerMonNumber = 0;
    menu_cursor = 0;
    draw_battle();
}

static void buf_go(void) {
    buf_str("\fGo! ");
    buf_str(species_name(wBattleMonSpecies));
    buf_str("!");
}

void battle_start_wild(void) {
    uint8_t r = random();
    battle_trainer = 0;
    if (r < 150)
        begin(BATTLE_WILD, RATTATA, 3, 0);
    else
        begin(BATTLE_WILD, PIDGEY, 4, 0);
    buf_clear();
    buf_str("Wild ");
    buf_str(species_name(wEnemyMonSpecies));
    buf_str("\nappeared!");
    buf_go();
    speech_show(text_buf, AFTER_BATTLE_MENU);
}

void battle_start_trainer(uint8_t trainer) {
    battle_trainer = trainer;
    if (trainer == 1)
        begin(BATTLE_TRAINER, GEODUDE, 6, 0);
    else
        begin(BATTLE_TRAINER, ONIX, 7, 2);
    buf_clear();
    buf_str(trainer_names[trainer]);
    buf_str(" wants\nto fight!\f");
    buf_str(trainer_names[trainer]);
    buf_str(" sent\nout ");
    buf_str(species_name(wEnemyMonSpecies));
    buf_str("!");
    buf_go();
    speech_show(text_buf, AFTER_BATTLE_MENU);
}

/* Pokémon Red's battle menu (BATTLE_MENU_TEMPLATE): an empty message box, then a box from (8,12)
 * to (19,17) with FIGHT at (10,14) and RUN at (16,16) and the cursor left of the entry. Red's PkMn
 * and ITEM cells stay empty: this game has neither a second POKéMON nor a usable item in battle. */
static void draw_menu(void) {
    uint8_t x, y;
    draw_box();
    for (y = 12; y < 18; y++) {
        for (x = 8; x < SCREEN_W; x++) {
            uint8_t edge = y == 12 || y == 17;
            uint8_t tile = edge ? 0x7A : (x == 8 || x == SCREEN_W - 1 ? 0x7C : TILE_SPACE);
            if (x == 8 && edge) tile = y == 12 ? 0x79 : 0x7D;
            if (x == SCREEN_W - 1 && edge) tile = y == 12 ? 0x7B : 0x7E;
            put_tile(x, y, tile);
        }
    }
    put_text(10, 14, "FIGHT");
    put_text(16, 16, "RUN");
    if (menu_cursor)
        put_tile(15, 16, TILE_ARROW_RIGHT);
    else
        put_tile(9, 14, TILE_ARROW_RIGHT);
}

/* Subtracts damage from a 2-byte HP, stopping at 0; returns the HP left. */
static uint16_t hurt(volatile uint8_t *hp, uint8_t damage) {
    uint16_t left = get16(hp);
    left = left > damage ? left - damage : 0;
    put16(hp, left);
    return left;
}

static void buf_used_tackle(uint8_t enemy) {
    buf_clear();
    if (enemy) buf_str("Enemy ");
    buf_str(species_name(enemy ? wEnemyMonSpecies : wBattleMonSpecies));
    buf_str(enemy ? "\nused TACKLE!" : " used\nTACKLE!");
}

static void player_attack(void) {
    uint8_t damage = wBattleMonLevel - 1 + random() % 3;
    uint16_t left = hurt(wEnemyMonHP, damage);
    draw_hp();
    buf_used_tackle(0);
    speech_show(text_buf, left ? AFTER_ENEMY_TURN : AFTER_ENEMY_FAINTED);
}

static void enemy_attack(void) {
    uint8_t damage = 1 + wEnemyMonLevel / 2 + random() % 3;
    uint16_t left = hurt(wBattleMonHP, damage);
    draw_hp();
    buf_used_tackle(1);
    speech_show(text_buf, left ? AFTER_BATTLE_MENU : AFTER_PLAYER_FAINTED);
}

static uint16_t cube(uint8_t n) { return (uint16_t)n * n * n; }

/* Adds BCD-encoded money (e.g. 0x0120 for $120) to the 3-byte BCD wPlayerMoney. */
static void add_money(uint16_t bcd) {
    uint8_t add[3], i, carry = 0;
    add[0] = 0;
    add[1] = (uint8_t)(bcd >> 8);
    add[2] = (uint8_t)bcd;
    for (i = 3; i-- > 0;) {
        uint8_t lo = (wPlayerMoney[i] & 0x0F) + (add[i] & 0x0F) + carry;
        uint8_t hi = (wPlayerMoney[i] >> 4) + (add[i] >> 4);
        if (lo > 9) {
            lo -= 10;
            hi++;
        }
        carry = hi > 9;
        if (carry) hi -= 10;
        wPlayerMoney[i] = (uint8_t)((hi << 4) | lo);
    }
    if (carry) { /* the game caps money at $999999 */
        wPlayerMoney[0] = wPlayerMoney[1] = wPlayerMoney[2] = 0x99;
    }
}

static void enemy_fainted(void) {
    volatile uint8_t *mon = wPartyMon1;
    uint8_t gained = wEnemyMonLevel * 16;
    uint16_t exp = get16(mon + MON_EXP + 1) + gained; /* our levels stay below 2^16 exp */
    copy_hp_to_party(); /* Red's FaintEnemyPokemon, before the level-ups add to both */
    put16(mon + MON_EXP + 1, exp);
    buf_clear();
    buf_str("Enemy ");
    buf_str(species_name(wEnemyMonSpecies));
    buf_str("\nfainted!\f");
    buf_str(species_name(wBattleMonSpecies));
    buf_str(" gained\n");
    buf_num(gained);
    buf_str(" EXP. Points!");
    while (mon[MON_LEVEL] < MAX_LEVEL && exp >= cube(mon[MON_LEVEL] + 1)) {
        mon[MON_LEVEL]++;
        mon[MON_BOXLEVEL] = mon[MON_LEVEL];
        put16(mon + MON_MAXHP, get16(mon + MON_MAXHP) + 2);
        put16(mon + MON_HP, get16(mon + MON_HP) + 2);
        wBattleMonLevel = mon[MON_LEVEL];
        put16(wBattleMonMaxHP, get16(mon + MON_MAXHP));
        put16(wBattleMonHP, get16(mon + MON_HP));
        buf_str("\f");
        buf_str(species_name(wBattleMonSpecies));
        buf_str(" grew\nto level ");
        buf_num(mon[MON_LEVEL]);
        buf_str("!");
    }
    if (battle_trainer) {
        buf_str("\f");
        buf_str(trainer_names[battle_trainer]);
        buf_str(" was\ndefeated!\fRED got $");
        if (battle_trainer == 1) {
            add_money(0x0120);
            buf_str("120");
            set_event(EVENT_BEAT_PEWTER_GYM_TRAINER_0);
        } else {
            add_money(0x0700);
            buf_str("700");
            set_event(EVENT_BEAT_BROCK);
            wObtainedBadges |= 1 << BIT_BOULDERBADGE;
        }
        buf_str("\nfor winning!");
        if (battle_trainer == 2) buf_str("\fRED received the\nBOULDERBADGE!");
    }
    speech_show(text_buf, AFTER_BATTLE_END);
}

static void player_fainted(void) {
    copy_hp_to_party(); /* Red's RemoveFaintedPlayerMon, before "fainted!" */
    wIsInBattle = BATTLE_LOST;
    buf_clear();
    buf_str(species_name(wBattleMonSpecies));
    buf_str("\nfainted!\fRED is out of\nusable POK^MON!\fRED blacked out!");
    speech_show(text_buf, AFTER_BLACKOUT);
}

static void battle_end(void) {
    wIsInBattle = 0;
    game_mode = MODE_WALK;
}

void battle_after(uint8_t after) {
    switch (after) {
    case AFTER_BATTLE_MENU: /* Red's MainInBattleLoop: a turn begins */
        copy_hp_to_party();
        game_mode = MODE_MENU;
        draw_menu();
        break;
    case AFTER_ENEMY_TURN: enemy_attack(); break;
    case AFTER_ENEMY_FAINTED: enemy_fainted(); break;
    case AFTER_PLAYER_FAINTED: player_fainted(); break;
    case AFTER_BLACKOUT:
        battle_end();
        world_blackout();
        break;
    default:
        battle_end();
        world_draw();
        break;
    }
}

void battle_menu_input(void) {
    if (joy_pressed & (J_LEFT | J_RIGHT | J_UP | J_DOWN)) {
        menu_cursor ^= 1;
        draw_menu();
    } else if (joy_pressed & J_A) {
        if (!menu_cursor) {
            player_attack();
        } else if (!battle_trainer) {
            speech_show("Got away safely!", AFTER_BATTLE_END);
        } else {
            speech_show("No! There's no\nrunning from a\ftrainer battle!", AFTER_BATTLE_MENU);
        }
    }
}

/* The new-game intro, shaped like Pokémon Red's: a title screen, the main menu, a speech printed
 * without wFontLoaded while the new-game warp is already in wCurMap/wYCoord/wXCoord and no map
 * header is loaded, a naming menu of preset names, and only then the map and the player's control. */
#include "game.h"
#include "hw.h"

#define TILE_BOX_TOP_LEFT 0x79
#define TILE_BOX_TOP 0x7A
#define TILE_BOX_TOP_RIGHT 0x7B
#define TILE_BOX_SIDE 0x7C
#define TILE_BOX_BOTTOM_LEFT 0x7D
#define TILE_BOX_BOTTOM_RIGHT 0x7E
#define TERMINATOR 0x50 /* pret's "@" after a name */
/* The buttons Pokémon Red's joypad byte calls D-pad, START and SELECT: the speech takes A and B only. */
#define JOY_IGNORE_SPEECH 0xFC

enum { ITEM_CONTINUE, ITEM_NEW_GAME, ITEM_OPTION, MAIN_MENU_ITEMS };
#define NAMING_ITEMS 4 /* NEW NAME and three preset names */

static const char *const naming_items[NAMING_ITEMS] = {"NEW NAME", "RED", "ASH", "JACK"};
/* The preset names in pret's charmap, each ended by the terminator. */
static const uint8_t preset_names[NAMING_ITEMS - 1][5] = {
    {0x91, 0x84, 0x83, TERMINATOR},       /* RED */
    {0x80, 0x92, 0x87, TERMINATOR},       /* ASH */
    {0x89, 0x80, 0x82, 0x8A, TERMINATOR}, /* JACK */
};

static const char text_welcome[] =
    "Hello there! This\nis a world of\f"
    "POK^MON, seen in\na long dream.\f"
    "First, what is\nyour name?";
static const char text_legend[] =
    "Your very own\nPOK^MON legend\f"
    "is about to\nunfold. Go on!";

static uint8_t menu_items;
static uint8_t menu_item; /* the cursor's row */
static uint8_t menu_column;
static uint8_t menu_first; /* ITEM_CONTINUE with a save, else ITEM_NEW_GAME */

static void draw_frame(uint8_t x0, uint8_t y0, uint8_t w, uint8_t h) {
    uint8_t x, y, tile;
    for (y = y0; y < y0 + h; y++) {
        for (x = x0; x < x0 + w; x++) {
            if (y == y0)
                tile = x == x0 ? TILE_BOX_TOP_LEFT : (x == x0 + w - 1 ? TILE_BOX_TOP_RIGHT : TILE_BOX_TOP);
            else if (y == y0 + h - 1)
                tile = x == x0 ? TILE_BOX_BOTTOM_LEFT : (x == x0 + w - 1 ? TILE_BOX_BOTTOM_RIGHT : TILE_BOX_TOP);
            else
                tile = (x == x0 || x == x0 + w - 1) ? TILE_BOX_SIDE : TILE_SPACE;
            put_tile(x, y, tile);
        }
    }
}

static void draw_cursor(void) {
    uint8_t i;
    for (i = 0; i < menu_items; i++)
        put_tile(menu_column, 2 + 2 * i, i == menu_item ? TILE_ARROW_RIGHT : TILE_SPACE);
}

static void open_menu(uint8_t items, uint8_t mode) {
    menu_items = items;
    menu_column = 1;
    menu_item = 0;
    game_mode = mode;
    draw_cursor();
}

void intro_start(void) {
    fill_screen(TILE_SPACE);
    put_text(6, 4, "DREAMER");
    put_text(4, 6, "FIXTURE GAME");
    put_text(5, 12, "PRESS START");
    game_mode = MODE_TITLE;
}

static uint8_t save_found(void) {
    /* Pokémon Red's CheckForPlayerNameInSRAM: a terminator within the saved name's length */
    uint8_t i;
    for (i = 0; i < NAME_LENGTH; i++)
        if (sPlayerName[i] == TERMINATOR) return 1;
    return 0;
}

static void main_menu(void) {
    /* Pokémon Red's MainMenu: CONTINUE first when the battery save holds a game */
    uint8_t row = 2;
    menu_first = save_found() ? ITEM_CONTINUE : ITEM_NEW_GAME;
    fill_screen(TILE_SPACE);
    draw_frame(0, 0, 15, 2 + 2 * (MAIN_MENU_ITEMS - menu_first));
    if (menu_first == ITEM_CONTINUE) {
        put_text(2, row, "CONTINUE");
        row += 2;
    }
    put_text(2, row, "NEW GAME");
    put_text(2, row + 2, "OPTION");
    open_menu(MAIN_MENU_ITEMS - menu_first, MODE_MAIN_MENU);
}

static void continue_game(void) {
    /* the saved player's name, straight into the house without the speech */
    uint8_t i = 0;
    world_new_game();
    do {
        wPlayerName[i] = sPlayerName[i];
    } while (sPlayerName[i++] != TERMINATOR && i < NAME_LENGTH);
    world_enter();
}

static void new_game(void) {
    world_new_game();
    wJoyIgnore = JOY_IGNORE_SPEECH;
    fill_screen(TILE_SPACE);
    speech_show(text_welcome, AFTER_NAME_PROMPT);
}

static void naming_menu(void) {
    /* the naming list of Pokémon Red's ChoosePlayerName, drawn over the speech's screen */
    uint8_t i;
    draw_frame(0, 0, 11, 2 + 2 * NAMING_ITEMS);
    put_text(3, 0, "NAME");
    for (i = 0; i < NAMING_ITEMS; i++) put_text(2, 2 + 2 * i, naming_items[i]);
    open_menu(NAMING_ITEMS, MODE_NAMING);
}

static void choose_name(uint8_t item) {
    const uint8_t *name = preset_names[item - 1];
    uint8_t i = 0;
    do {
        wPlayerName[i] = name[i];
    } while (name[i++] != TERMINATOR);
    fill_screen(TILE_SPACE);
    buf_clear();
    buf_str("Right! So your\nname is ");
    buf_str(naming_items[item]);
    buf_str("!\f");
    buf_str(text_legend);
    speech_show(text_buf, AFTER_INTRO_END);
}

void intro_input(void) {
    if (game_mode == MODE_TITLE) {
        if (joy_pressed & (J_A | J_START)) main_menu();
        return;
    }
    if ((joy_pressed & J_UP) && menu_item > 0) {
        menu_item--;
        draw_cursor();
    } else if ((joy_pressed & J_DOWN) && menu_item + 1 < menu_items) {
        menu_item++;
        draw_cursor();
    } else if (joy_pressed & J_A) {
        if (game_mode == MODE_MAIN_MENU) {
            if (menu_item + menu_first == ITEM_NEW_GAME) new_game();
            if (menu_item + menu_first == ITEM_CONTINUE) continue_game();
        } else if (menu_item > 0) {
            choose_name(menu_item); /* NEW NAME would need a keyboard, which we lack */
        }
    }
}

void intro_after(uint8_t after) {
    if (after == AFTER_NAME_PROMPT) {
        naming_menu();
    } else {
        wJoyIgnore = 0;
        world_enter();
    }
}

/* Shared declarations of the fixture cartridge's modules. */
#ifndef GAME_H
#define GAME_H
#include <stdint.h>
#include "pret.h"

#define SCREEN_W 20
#define SCREEN_H 18
#define MAP_W 10 /* map cells (16x16 px, one player step) */
#define MAP_H 10
#define TEXT_BUF_SIZE 176

#define TILE_SPACE 0x7F
#define TILE_ARROW_RIGHT 0xED /* ▶ */
#define TILE_ARROW_DOWN 0xEE  /* ▼ */

/* What the buttons drive this frame. */
enum { MODE_WALK, MODE_TEXT, MODE_MENU, MODE_TITLE, MODE_MAIN_MENU, MODE_NAMING };

/* What happens when a text box closes. */
enum {
    AFTER_CLOSE,
    AFTER_TRAINER_BATTLE,
    AFTER_BATTLE_MENU,
    AFTER_ENEMY_TURN,
    AFTER_ENEMY_FAINTED,
    AFTER_PLAYER_FAINTED,
    AFTER_BLACKOUT,
    AFTER_BATTLE_END,
    AFTER_NAME_PROMPT,
    AFTER_INTRO_END
};

extern uint8_t game_mode;
extern uint8_t joy_held, joy_pressed;

/* main.c */
uint8_t random(void);
uint16_t get16(volatile uint8_t *p);
void put16(volatile uint8_t *p, uint16_t value);
void set_event(uint8_t index);
uint8_t check_event(uint8_t index);

/* text.c */
extern char text_buf[TEXT_BUF_SIZE];
void buf_clear(void);
void buf_str(const char *s);
void buf_num(uint16_t value);
void put_text(uint8_t x, uint8_t y, const char *s);
void put_num(uint8_t x, uint8_t y, uint16_t value, uint8_t width);
void put_tile(uint8_t x, uint8_t y, uint8_t tile);
void fill_screen(uint8_t tile);
void draw_box(void);
void text_show(const char *text, uint8_t after);
void speech_show(const char *text, uint8_t after);
void text_input(void);

/* intro.c */
void intro_start(void);
void intro_input(void);
void intro_after(uint8_t after);

/* world.c */
void world_new_game(void);
void world_enter(void);
void world_draw(void);
void world_input(void);
void world_blackout(void);
void heal_party(void);
void text_closed(uint8_t after);

/* battle.c */
extern uint8_t pending_trainer;
void battle_start_wild(void);
void battle_start_trainer(uint8_t trainer);
void battle_after(uint8_t after);
void battle_menu_input(void);

#endif

/* Start-up, the frame loop, joypad and random numbers of the fixture cartridge. */
#include "game.h"
#include "hw.h"
#include "tiles.h"

uint8_t game_mode;
uint8_t joy_held, joy_pressed;
/* The random generator's state. Tools may write it (symbol _rng_state) to seed a run. */
uint16_t rng_state;
/* Shared with the VBlank handler in crt0.s. */
volatile uint8_t vbl_done;
volatile uint8_t vbl_phase;

uint8_t random(void) {
    /* xorshift16 (7, 9, 8): full period over the 65535 non-zero states. */
    uint16_t x = rng_state;
    x ^= x << 7;
    x ^= x >> 9;
    x ^= x << 8;
    rng_state = x;
    return (uint8_t)(x ^ (x >> 8));
}

uint16_t get16(volatile uint8_t *p) { return ((uint16_t)p[0] << 8) | p[1]; }

void put16(volatile uint8_t *p, uint16_t value) {
    p[0] = (uint8_t)(value >> 8);
    p[1] = (uint8_t)value;
}

void set_event(uint8_t index) { wEventFlags[index >> 3] |= (uint8_t)(1 << (index & 7)); }

uint8_t check_event(uint8_t index) { return wEventFlags[index >> 3] & (uint8_t)(1 << (index & 7)); }

static uint8_t read_joypad(void) {
    uint8_t dpad, buttons;
    rP1 = 0x20; /* select the direction keys; reading twice lets the lines settle */
    dpad = rP1;
    dpad = rP1;
    rP1 = 0x10; /* select the buttons */
    buttons = rP1;
    buttons = rP1;
    buttons = rP1;
    rP1 = 0x30;
    return (uint8_t)~(((buttons & 0x0F) << 4) | (dpad & 0x0F));
}

static void wait_vblank(void) {
    vbl_done = 0;
    while (!vbl_done) {
        __asm__("halt");
    }
}

static void lcd_init(void) {
    uint16_t i;
    while (rLY < 144) {
    } /* the LCD may only be switched off during VBlank */
    rLCDC = 0;
    for (i = 0; i < 4096; i++) VRAM_TILES[i] = tile_data[i];
    for (i = 0; i < 1024; i++) VRAM_BGMAP[i] = TILE_SPACE;
    rBGP = 0xE4;
    rSCX = 0;
    rSCY = 0;
}

static void copy_screen_now(void) {
    /* Only while the LCD is off: the VBlank handler streams six rows a frame afterwards. */
    uint8_t x, y;
    for (y = 0; y < SCREEN_H; y++)
        for (x = 0; x < SCREEN_W; x++) VRAM_BGMAP[(uint16_t)y * 32 + x] = wTileMap[(uint16_t)y * SCREEN_W + x];
}

void main(void) {
    uint8_t last = 0;
    lcd_init();
    rng_state = 0x1D2B;
    intro_start();
    copy_screen_now();
    rIF = 0;
    rIE = 0x01; /* VBlank only */
    rLCDC = 0x91; /* LCD on, BG on, tiles at $8000, map at $9800 */
    __asm__("ei");
    for (;;) {
        uint8_t joy;
        wait_vblank();
        joy = read_joypad();
        joy_pressed = joy & (uint8_t)~last;
        joy_held = joy;
        last = joy;
        random(); /* one draw a frame, so outcomes depend on timing as on hardware */
        if (game_mode == MODE_WALK)
            world_input();
        else if (game_mode == MODE_TEXT)
            text_input();
        else if (game_mode == MODE_MENU)
            battle_menu_input();
        else
            intro_input();
    }
}

/* Text on screen: pret's charmap, the six-row text box, paged dialog. */
#include "game.h"
#include "hw.h"

char text_buf[TEXT_BUF_SIZE];
static uint8_t buf_len;
static const char *text_ptr; /* start of the next page, or 0 when the text is done */
static uint8_t text_after;

/* ASCII in our C strings -> pret charmap code (== tile id). '^' stands for é, '>' for ▶. */
static uint8_t char_code(char c) {
    if (c >= 'A' && c <= 'Z') return (uint8_t)(0x80 + (c - 'A'));
    if (c >= 'a' && c <= 'z') return (uint8_t)(0xA0 + (c - 'a'));
    if (c >= '0' && c <= '9') return (uint8_t)(0xF6 + (c - '0'));
    switch (c) {
    case '!': return 0xE7;
    case '.': return 0xE8;
    case ',': return 0xF4;
    case '?': return 0xE6;
    case '\'': return 0xE0;
    case '-': return 0xE3;
    case ':': return 0x9C;
    case '/': return 0xF3;
    case '(': return 0x9A;
    case ')': return 0x9B;
    case '$': return 0xF0;
    case '^': return 0xBA;
    case '>': return TILE_ARROW_RIGHT;
    default: return TILE_SPACE;
    }
}

void buf_clear(void) {
    buf_len = 0;
    text_buf[0] = 0;
}

void buf_str(const char *s) {
    while (*s && buf_len < TEXT_BUF_SIZE - 1) text_buf[buf_len++] = *s++;
    text_buf[buf_len] = 0;
}

void buf_num(uint16_t value) {
    char digits[6];
    uint8_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n && buf_len < TEXT_BUF_SIZE - 1) text_buf[buf_len++] = digits[--n];
    text_buf[buf_len] = 0;
}

void put_tile(uint8_t x, uint8_t y, uint8_t tile) { wTileMap[(uint16_t)y * SCREEN_W + x] = tile; }

void put_text(uint8_t x, uint8_t y, const char *s) {
    while (*s) put_tile(x++, y, char_code(*s++));
}

void put_num(uint8_t x, uint8_t y, uint16_t value, uint8_t width) {
    /* right-aligned in `width` cells, so a shorter number leaves no stale digits */
    uint8_t i = width;
    do {
        put_tile(x + --i, y, char_code((char)('0' + value % 10)));
        value /= 10;
    } while (value && i);
    while (i) put_tile(x + --i, y, TILE_SPACE);
}

void fill_screen(uint8_t tile) {
    uint16_t i;
    for (i = 0; i < SCREEN_W * SCREEN_H; i++) wTileMap[i] = tile;
}

void draw_box(void) {
    /* rows 12-17 as in Pokémon Red: ┌─┐ │ │ └─┘ with text lines at (1,14) and (1,16) */
    uint8_t x, y;
    for (y = 12; y < 18; y++) {
        for (x = 1; x < SCREEN_W - 1; x++) put_tile(x, y, (y == 12 || y == 17) ? 0x7A : TILE_SPACE);
        put_tile(0, y, y == 12 ? 0x79 : (y == 17 ? 0x7D : 0x7C));
        put_tile(SCREEN_W - 1, y, y == 12 ? 0x7B : (y == 17 ? 0x7E : 0x7C));
    }
}

static void draw_page(void) {
    const char *p = text_ptr;
    uint8_t x = 1, y = 14;
    draw_box();
    while (*p && *p != '\f') {
        if (*p == '\n') {
            x = 1;
            y = 16;
        } else if (x < SCREEN_W - 1) {
            put_tile(x++, y, char_code(*p));
        }
        p++;
    }
    if (*p == '\f') {
        text_ptr = p + 1;
        put_tile(18, 16, TILE_ARROW_DOWN); /* more pages follow */
    } else {
        text_ptr = 0;
    }
}

void speech_show(const char *text, uint8_t after) {
    /* Pokémon Red's PrintText: the box and its pages, and wFontLoaded left as it is */
    text_ptr = text;
    text_after = after;
    game_mode = MODE_TEXT;
    draw_page();
}

void text_show(const char *text, uint8_t after) {
    /* Pokémon Red's DisplayTextIDInit sets wFontLoaded before a person's or a sign's text */
    wFontLoaded |= 1;
    speech_show(text, after);
}

void text_input(void) {
    if (!(joy_pressed & (J_A | J_B))) return;
    if (text_ptr) {
        draw_page();
        return;
    }
    text_closed(text_after);
}

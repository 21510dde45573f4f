/* Game Boy hardware registers used by the fixture cartridge. */
#ifndef HW_H
#define HW_H
#include <stdint.h>

#define REG(addr) (*(volatile uint8_t *)(addr))
#define rP1   REG(0xFF00)
#define rIF   REG(0xFF0F)
#define rLCDC REG(0xFF40)
#define rSCY  REG(0xFF42)
#define rSCX  REG(0xFF43)
#define rLY   REG(0xFF44)
#define rBGP  REG(0xFF47)
#define rIE   REG(0xFFFF)
#define VRAM_TILES ((volatile uint8_t *)0x8000)
#define VRAM_BGMAP ((volatile uint8_t *)0x9800)

/* Joypad bits as returned by read_joypad(). */
#define J_RIGHT  0x01
#define J_LEFT   0x02
#define J_UP     0x04
#define J_DOWN   0x08
#define J_A      0x10
#define J_B      0x20
#define J_SELECT 0x40
#define J_START  0x80

#endif

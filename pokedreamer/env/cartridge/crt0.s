; Start-up code and the VBlank handler of the fixture cartridge (sdasgb syntax).
;
; The header at $0104-$014F is left to makebin, which writes our title and fixes the
; checksums; it is run with -yN so that no Nintendo logo is ever put into the ROM.

	.module crt0
	.globl _main
	.globl _vbl_done
	.globl _vbl_phase

	.area _HEADER (ABS)

	.org 0x0040		; VBlank
	jp vblank
	.org 0x0048		; LCD STAT
	reti
	.org 0x0050		; timer
	reti
	.org 0x0058		; serial
	reti
	.org 0x0060		; joypad
	reti

	.org 0x0100
	nop
	jp start

	.org 0x0150
start:
	di
	ld sp, #0xE000
	; Zero all of work RAM, so every Pokémon Red variable starts from a known value.
	ld hl, #0xC000
	ld bc, #0x2000
00001$:
	xor a
	ld (hl+), a
	dec bc
	ld a, b
	or c
	jr nz, 00001$
	; Zero high RAM ($FF80-$FFFE).
	ld hl, #0xFF80
	ld b, #0x7F
	xor a
00002$:
	ld (hl+), a
	dec b
	jr nz, 00002$
	call gsinit
	call _main
00003$:
	halt
	jr 00003$

; Copies six rows of the shadow screen wTileMap ($C3A0, 20x18) into the BG map ($9800,
; 32 wide) each VBlank, so the whole screen is refreshed every three frames. VRAM is only
; writable outside LCD mode 3, and six unrolled rows fit in the ~1,100 cycles of VBlank.
vblank:
	push af
	push bc
	push de
	push hl
	ld a, (_vbl_phase)
	add a, a
	add a, a
	ld c, a
	ld b, #0
	ld hl, #vblank_rows
	add hl, bc
	ld a, (hl+)
	ld e, a
	ld a, (hl+)
	ld d, a			; de = first row in wTileMap
	ld a, (hl+)
	ld c, a
	ld b, (hl)		; bc = first row in the BG map
	ld h, d
	ld l, e
	ld d, b
	ld e, c
	ld b, #6
vblank_row:
	.rept 20
	ld a, (hl+)
	ld (de), a
	inc e			; never carries: a row starts at a multiple of 32 and is 20 long
	.endm
	ld a, e
	add a, #12
	ld e, a
	adc a, d
	sub a, e
	ld d, a
	dec b
	jr nz, vblank_row
	ld a, (_vbl_phase)
	inc a
	cp a, #3
	jr nz, 00004$
	xor a
00004$:
	ld (_vbl_phase), a
	ld a, #1
	ld (_vbl_done), a
	pop hl
	pop de
	pop bc
	pop af
	reti

vblank_rows:
	.dw 0xC3A0, 0x9800
	.dw 0xC3A0 + 6 * 20, 0x9800 + 6 * 32
	.dw 0xC3A0 + 12 * 20, 0x9800 + 12 * 32

	.area _HOME
	.area _CODE
	.area _INITIALIZER
	.area _GSINIT
gsinit::
	; Copy initialised globals from ROM to RAM (the C code keeps none, but stays correct if it does).
	ld de, #s__INITIALIZED
	ld hl, #s__INITIALIZER
	ld bc, #l__INITIALIZER
00005$:
	ld a, b
	or c
	jr z, 00006$
	ld a, (hl+)
	ld (de), a
	inc de
	dec bc
	jr 00005$
00006$:
	.area _GSFINAL
	ret

	.area _DATA
	.area _INITIALIZED
	.area _BSEG
	.area _BSS
	.area _HEAP

/* Second-stage boot loader (the first 256 bytes of flash; the boot ROM copies it to SRAM, checks
 * its CRC-32 in bytes 252-255, written by tools/uf2.py, and runs it). It sets the flash interface
 * (SSI) to plain serial reads (command 0x03, 24-bit address), which every SPI flash answers, so
 * the code runs in place; then it starts the image at 0x10000100. Position independent: only
 * PC-relative literals. */
    .syntax unified
    .cpu cortex-m0plus
    .thumb
    .section .boot2, "ax"
    .global boot2_entry
    .type boot2_entry, %function
    .thumb_func
boot2_entry:
    ldr r3, =0x18000000          /* XIP_SSI */
    movs r1, #0
    str r1, [r3, #0x08]          /* SSIENR: off while configuring */
    movs r1, #4
    str r1, [r3, #0x14]          /* BAUDR: clk_sys / 4 */
    ldr r1, =((31 << 16) | (3 << 8))
    str r1, [r3, #0x00]          /* CTRLR0: 32-bit frames, EEPROM read mode, standard SPI */
    ldr r1, =((0x03 << 24) | (2 << 8) | (6 << 2))
    ldr r2, =0xF4
    str r1, [r3, r2]             /* SPI_CTRLR0: command 0x03, 8-bit instruction, 24-bit address */
    movs r1, #0
    str r1, [r3, #0x04]          /* CTRLR1: one data frame per transfer */
    movs r1, #1
    str r1, [r3, #0x08]          /* SSIENR: on */
    ldr r0, =0x10000100          /* the image's vector table */
    ldr r1, =0xE000ED08          /* VTOR */
    str r0, [r1]
    ldmia r0!, {r1, r2}          /* initial stack pointer, reset handler */
    msr msp, r1
    bx r2
    .ltorg

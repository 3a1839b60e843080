/* The waveform bridge (docs/waveform-bridge.md): an RP2040 that programs the waveform ATM90E36
 * into DMA mode, receives its sample sets as an SPI slave (PIO state machine 0, DMA into a ring)
 * and sends them framed over USB CDC.
 *
 * Clocks: 12 MHz crystal; PLL_USB at 1200 MHz / 5 / 5 = 48 MHz drives both clk_sys and clk_usb.
 * The microsecond timer ticks from clk_ref (the crystal). */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "rp2040.h"
#include "usb.h"

#define PIN_SCLK 2u     /* chip SCLK: our output while configuring, the chip's in DMA mode */
#define PIN_DATA 3u     /* chip SDO: register reads, then the sample stream */
#define PIN_MOSI 4u     /* chip SDI, while configuring */
#define PIN_CS 5u       /* chip CS: ours while configuring, the chip's in DMA mode */
#define PIN_DMA_CTRL 6u /* high: DMA mode */
#define PIN_RESET 7u    /* low: chip in reset */
#define PIN_PM0 8u
#define PIN_PM1 9u

#define ATM_DMACTRL 0x0Eu
#define ATM_LASTSPIDATA 0x0Fu

#define SET_BITS (WB_SET_BYTES * 8u) /* 168 clocks per set */
#define RING_SLOT (WB_SET_BYTES + 1u) /* the PIO adds a status byte: 0 framing intact, 1 lost */
#define RING_BYTES 32768u             /* 1489 sets, 186 ms; the DMA ring needs a power of two */
#define TXQ_BYTES 65536u              /* 94 frames, 0.38 s */
#define STALL_US 100000u              /* no set for this long: the chip is reprogrammed */

#define TIMER_RAWL 0x40054028u
#define WATCHDOG_TICK 0x4005802Cu
#define RESET_TIMER (1u << 21)

static uint8_t ring[RING_BYTES] __attribute__((aligned(RING_BYTES)));
static uint8_t txq[TXQ_BYTES];
static uint32_t tx_in, tx_out; /* bytes ever queued / sent */
static uint32_t dma_done;      /* DMA ring passes completed */
static uint32_t consumed;      /* ring bytes ever taken */
static struct wb_framer framer;

/* The SPI slave (mode 3: data valid on the rising SCLK edge, MSB first): per CS-low window exactly
 * 168 bits pushed as bytes, then a status byte: 0 when CS rose within ~3 us after the last bit,
 * 1 when it did not (a clock too many, a set cut short and joined to the next, CS stuck low).
 * X counts bits (preloaded from OSR), Y times the end-of-set check; JMP_PIN is CS. */
static const uint16_t spi_slave_program[] = {
    0x2085, /* 0  start: wait 1 gpio CS      ; idle between sets */
    0x2005, /* 1         wait 0 gpio CS      ; a set begins */
    0xA027, /* 2         mov x, osr          ; 167 */
    0x2002, /* 3  bit:   wait 0 gpio SCLK */
    0x2082, /* 4         wait 1 gpio SCLK    ; rising edge: sample */
    0x4001, /* 5         in pins, 1          ; autopush every 8 bits */
    0x0043, /* 6         jmp x-- bit */
    0xE05F, /* 7         set y, 31 */
    0x00CD, /* 8  tail:  jmp pin good        ; CS high: the set ended where it should */
    0x0388, /* 9         jmp y-- tail [3] */
    0xE041, /* 10        set y, 1            ; CS still low: framing lost */
    0x4048, /* 11        in y, 8             ; status 1 */
    0x0000, /* 12        jmp start */
    0x4068, /* 13 good:  in null, 8          ; status 0 */
};

static uint32_t now_us(void)
{
    return REG(TIMER_RAWL);
}

static void delay_us(uint32_t us)
{
    uint32_t t0 = now_us();
    while (now_us() - t0 < us) {
    }
}

static void unreset(uint32_t mask)
{
    REG_CLR(RESETS_RESET) = mask;
    while ((REG(RESETS_DONE) & mask) != mask) {
    }
}

static void clocks_init(void)
{
    REG(XOSC_STARTUP) = 47u; /* (12 MHz / 1000 + 128) / 256: about 1 ms */
    REG(XOSC_CTRL) = 0xAA0u | (0xFABu << 12); /* 1-15 MHz range, enable */
    while (!(REG(XOSC_STATUS) & XOSC_STABLE)) {
    }
    REG(CLK_REF_CTRL) = 2u; /* clk_ref from the crystal */
    while (!(REG(CLK_REF_SELECTED) & (1u << 2))) {
    }
    REG(CLK_SYS_CTRL) = 0u; /* clk_sys from clk_ref while the PLL starts */
    while (!(REG(CLK_SYS_SELECTED) & 1u)) {
    }
    REG_SET(RESETS_RESET) = RESET_PLL_USB;
    unreset(RESET_PLL_USB);
    REG(PLL_CS) = 1u;      /* reference divider 1 */
    REG(PLL_FBDIV) = 100u; /* VCO 1200 MHz */
    REG_CLR(PLL_PWR) = PLL_PWR_PD | PLL_PWR_VCOPD;
    while (!(REG(PLL_CS) & PLL_LOCK)) {
    }
    REG(PLL_PRIM) = (5u << 16) | (5u << 12); /* 1200 / 5 / 5 = 48 MHz */
    REG_CLR(PLL_PWR) = PLL_PWR_POSTDIVPD;
    REG(CLK_SYS_CTRL) = 1u << 5;             /* aux source: PLL_USB (glitch-free while on clk_ref) */
    REG(CLK_SYS_CTRL) = (1u << 5) | 1u;      /* clk_sys from the aux source */
    while (!(REG(CLK_SYS_SELECTED) & (1u << 1))) {
    }
    REG(CLK_USB_CTRL) = CLK_ENABLE; /* clk_usb from PLL_USB */
    REG(CLK_USB_DIV) = 1u << 8;
    REG(WATCHDOG_TICK) = (1u << 9) | 12u; /* 1 us ticks from the 12 MHz clk_ref */
    unreset(RESET_TIMER);
}

static void pin_out(uint32_t pin, int high)
{
    REG(high ? SIO_OUT_SET : SIO_OUT_CLR) = 1u << pin;
    REG(SIO_OE_SET) = 1u << pin;
    REG(GPIO_CTRL(pin)) = FUNC_SIO;
}

static void pin_level(uint32_t pin, int high)
{
    REG(high ? SIO_OUT_SET : SIO_OUT_CLR) = 1u << pin;
}

/* One 32-clock frame of the chip's register interface, mode 3 at about 200 kHz; the bits read
 * while the second word is clocked out. */
static uint16_t atm_frame(uint16_t first, uint16_t second)
{
    uint32_t out = ((uint32_t)first << 16) | second, in = 0;
    pin_level(PIN_CS, 0);
    delay_us(5);
    for (int i = 31; i >= 0; i--) {
        pin_level(PIN_SCLK, 0);
        pin_level(PIN_MOSI, (int)((out >> i) & 1u));
        delay_us(2);
        pin_level(PIN_SCLK, 1);
        in = (in << 1) | ((REG(SIO_IN) >> PIN_DATA) & 1u);
        delay_us(2);
    }
    pin_level(PIN_CS, 1);
    delay_us(5);
    return (uint16_t)in;
}

/* Reset the chip and program DMACtrl, checked through LastSPIData and a read-back. */
static int chip_configure(void)
{
    pin_out(PIN_DMA_CTRL, 0);
    pin_out(PIN_PM0, 1);
    pin_out(PIN_PM1, 1);
    pin_out(PIN_CS, 1);
    pin_out(PIN_SCLK, 1);
    pin_out(PIN_MOSI, 0);
    REG(GPIO_CTRL(PIN_DATA)) = FUNC_SIO;
    REG(SIO_OE_CLR) = 1u << PIN_DATA;
    pin_out(PIN_RESET, 0);
    delay_us(1000);
    pin_level(PIN_RESET, 1);
    delay_us(20000);
    atm_frame(ATM_DMACTRL, WB_DMA_CTRL);
    if (atm_frame(0x8000u | ATM_LASTSPIDATA, 0) != WB_DMA_CTRL)
        return 0;
    return atm_frame(0x8000u | ATM_DMACTRL, 0) == WB_DMA_CTRL;
}

static void dma_channel(uint32_t ch, uint32_t other, int trigger)
{
    uint32_t ctrl = DMA_EN | DMA_INCR_WRITE | DMA_RING_SEL_WRITE | (15u << DMA_RING_SIZE_LSB)
                    | (other << DMA_CHAIN_TO_LSB) | (DREQ_PIO0_RX0 << DMA_TREQ_SEL_LSB); /* bytes */
    REG(DMA_READ_ADDR(ch)) = PIO_RXF0;
    REG(DMA_WRITE_ADDR(ch)) = (uint32_t)(uintptr_t)ring;
    REG(DMA_TRANS_COUNT(ch)) = RING_BYTES;
    if (trigger)
        REG(DMA_CTRL_TRIG(ch)) = ctrl;
    else
        REG(DMA_AL1_CTRL(ch)) = ctrl;
}

static int queue_frame(void *ctx, const uint8_t *frame, size_t len)
{
    (void)ctx;
    if (TXQ_BYTES - (tx_in - tx_out) < len)
        return 0;
    for (size_t i = 0; i < len; i++)
        txq[(tx_in + i) & (TXQ_BYTES - 1u)] = frame[i];
    tx_in += (uint32_t)len;
    return 1;
}

/* Hand the bus to the chip and start receiving: the chip drives SCLK and CS from now on. */
static void stream_start(void)
{
    REG(SIO_OE_CLR) = (1u << PIN_SCLK) | (1u << PIN_MOSI) | (1u << PIN_CS);
    REG(GPIO_CTRL(PIN_SCLK)) = FUNC_PIO0;
    REG(GPIO_CTRL(PIN_DATA)) = FUNC_PIO0;
    REG(GPIO_CTRL(PIN_CS)) = FUNC_PIO0;
    REG_SET(RESETS_RESET) = RESET_PIO0 | RESET_DMA;
    unreset(RESET_PIO0 | RESET_DMA);
    for (uint32_t i = 0; i < sizeof spi_slave_program / sizeof spi_slave_program[0]; i++)
        REG(PIO_INSTR_MEM(i)) = spi_slave_program[i];
    REG(PIO_SM0_CLKDIV) = 1u << 16;
    REG(PIO_SM0_EXECCTRL) = (PIN_CS << 24) | (13u << 12) | (0u << 7); /* JMP_PIN, wrap 13 -> 0 */
    REG(PIO_SM0_SHIFTCTRL) = (1u << 31) | (8u << 20) | (1u << 16);   /* RX join, push 8, autopush, left */
    REG(PIO_SM0_PINCTRL) = PIN_DATA << 15;                            /* IN_BASE */
    REG(PIO_TXF0) = SET_BITS - 1u;
    REG(PIO_SM0_INSTR) = 0x80A0u; /* pull block: OSR = 167 */
    REG(PIO_SM0_INSTR) = 0x0000u; /* jmp start */
    dma_done = 0;
    consumed = 0;
    dma_channel(1, 0, 0);
    dma_channel(0, 1, 1);
    REG_SET(PIO_CTRL) = 1u; /* SM0 on */
    pin_level(PIN_DMA_CTRL, 1);
    wb_framer_init(&framer, queue_frame, 0); /* indices from 0, RESTART on the first frame */
}

/* Bytes the DMA has written into the ring since the stream started (never more than it did). */
static uint32_t produced(void)
{
    uint32_t intr = REG(DMA_INTR) & 3u;
    for (uint32_t ch = 0; ch < 2u; ch++) {
        if (intr & (1u << ch)) { /* a pass finished: the channel waits, re-armed, for the next */
            REG(DMA_INTR) = 1u << ch;
            REG(DMA_WRITE_ADDR(ch)) = (uint32_t)(uintptr_t)ring;
            REG(DMA_TRANS_COUNT(ch)) = RING_BYTES;
            dma_done++;
        }
    }
    for (uint32_t ch = 0; ch < 2u; ch++)
        if (REG(DMA_CTRL_TRIG(ch)) & DMA_BUSY)
            return dma_done * RING_BYTES + (RING_BYTES - REG(DMA_TRANS_COUNT(ch)));
    return dma_done * RING_BYTES;
}

/* Take every whole set out of the ring into the framer; returns the number taken. */
static uint32_t take_sets(void)
{
    uint32_t have = produced(), n = 0;
    if (have - consumed > RING_BYTES - RING_SLOT) { /* the ring was lapped: those sets are gone */
        uint32_t lost = (have - consumed - RING_BYTES / 2u) / RING_SLOT;
        consumed += lost * RING_SLOT;
        wb_framer_skip(&framer, lost);
    }
    uint8_t set[RING_SLOT];
    while (have - consumed >= RING_SLOT) {
        for (uint32_t i = 0; i < RING_SLOT; i++)
            set[i] = ring[(consumed + i) & (RING_BYTES - 1u)];
        consumed += RING_SLOT;
        wb_framer_set(&framer, set, set[WB_SET_BYTES] == 0u);
        n++;
    }
    return n;
}

static void pump_usb(void)
{
    static int was_ready;
    int ready = usb_ready();
    if (ready && !was_ready)
        tx_out = tx_in; /* a program opened the port: fresh frames only */
    was_ready = ready;
    if (!ready || !usb_tx_idle() || tx_in == tx_out)
        return;
    uint8_t packet[USB_PACKET];
    uint32_t n = tx_in - tx_out;
    if (n > USB_PACKET)
        n = USB_PACKET;
    for (uint32_t i = 0; i < n; i++)
        packet[i] = txq[(tx_out + i) & (TXQ_BYTES - 1u)];
    usb_tx(packet, n);
    tx_out += n;
}

int main(void)
{
    clocks_init();
    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0);
    usb_init();
    int streaming = 0;
    uint32_t last_set = now_us(), last_try = 0;
    for (;;) {
        usb_poll();
        if (!streaming && now_us() - last_try > 1000000u) {
            last_try = now_us();
            if (chip_configure()) {
                stream_start();
                streaming = 1;
                last_set = now_us();
            }
        }
        if (streaming) {
            if (take_sets() != 0u)
                last_set = now_us();
            else if (now_us() - last_set > STALL_US) {
                REG_CLR(PIO_CTRL) = 1u; /* the chip stopped streaming: program it again */
                streaming = 0;
                last_try = now_us() - 1000000u;
            }
        }
        pump_usb();
    }
}

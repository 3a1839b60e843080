/* Framing of the waveform bridge (docs/waveform-bridge.md): sample sets in, frames out.
 *
 * Portable C (no hardware): the firmware uses it on the RP2040, frame_selftest on the build host,
 * whose output the meter's decoder checks. */
#ifndef WB_FRAME_H
#define WB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WB_CHANNELS 7u
#define WB_WIDTH 3u /* bytes per sample: DMACtrl CH_BITWIDTH = 01 (24 bit) */
#define WB_SET_BYTES (WB_CHANNELS * WB_WIDTH) /* 21 */
#define WB_SETS_PER_FRAME 32u                 /* 4 ms at 8 kHz */
#define WB_HEADER_BYTES 16u
#define WB_CRC_BYTES 4u
#define WB_FRAME_MAX (WB_HEADER_BYTES + WB_SETS_PER_FRAME * WB_SET_BYTES + WB_CRC_BYTES) /* 692 */
#define WB_DMA_CTRL 0xFE44u /* all seven channels, 24 bit, SCLK 16.384 MHz / 10 */

#define WB_FLAG_SYNC_LOST 0x01u
#define WB_FLAG_OVERRUN 0x02u
#define WB_FLAG_RESTART 0x04u

/* Where a finished frame goes: returns 1 when it was taken, 0 when there is no room (then its
 * sets are lost and the next frame says OVERRUN). */
typedef int (*wb_emit_fn)(void *ctx, const uint8_t *frame, size_t len);

struct wb_framer {
    uint32_t next_index;  /* index of the next set the chip clocks out */
    uint32_t first_index; /* index of the first set in buf */
    uint16_t seq;         /* sequence number of the next frame sent */
    uint8_t flags;        /* flags the next frame carries */
    uint8_t sync_losses;  /* framing losses since start, wraps at 256 */
    uint32_t n_sets;      /* sets in buf */
    uint32_t frames_sent;
    uint32_t sets_dropped;
    wb_emit_fn emit;
    void *ctx;
    uint8_t buf[WB_FRAME_MAX];
};

uint32_t wb_crc32(uint32_t crc, const uint8_t *data, size_t len);
void wb_framer_init(struct wb_framer *f, wb_emit_fn emit, void *ctx);
/* One set as clocked out (21 bytes), or a set whose framing was wrong (ok = 0: dropped). */
void wb_framer_set(struct wb_framer *f, const uint8_t *set, int ok);
/* n sets the bridge could not keep (its receive ring overran): dropped, counted in the index. */
void wb_framer_skip(struct wb_framer *f, uint32_t n);

#endif

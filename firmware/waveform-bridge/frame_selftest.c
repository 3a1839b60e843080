/* Host check of the firmware's framing: frames of known sets on stdout, decoded by the meter's
 * decoder in tests/unit/pq/test_waveform_bridge_firmware.py.
 *
 * Set k, channel c carries the 24-bit two's complement value (k * 7 + c) * 1021 - 4194304.
 * Script: sets 0-39; set 40 has lost framing; sets 41-100; sets 101-110 overrun (skipped); sets
 * 111-210, where the frame of sets 111-142 finds no room. Frames out: 0-31, 32-39, 41-72, 73-100,
 * 143-174 (OVERRUN), 175-206; sets 207-210 wait for more. */
#include <stdio.h>

#include "frame.h"

static int refuse_next;

static int emit(void *ctx, const uint8_t *frame, size_t len)
{
    (void)ctx;
    if (refuse_next) {
        refuse_next = 0;
        return 0;
    }
    return fwrite(frame, 1, len, stdout) == len;
}

static void set_of(uint32_t k, uint8_t *set)
{
    for (uint32_t c = 0; c < WB_CHANNELS; c++) {
        int32_t v = (int32_t)((k * 7u + c) * 1021u) - 4194304;
        uint32_t u = (uint32_t)v & 0xFFFFFFu;
        set[c * 3u] = (uint8_t)(u >> 16);
        set[c * 3u + 1u] = (uint8_t)(u >> 8);
        set[c * 3u + 2u] = (uint8_t)u;
    }
}

int main(void)
{
    static struct wb_framer f;
    uint8_t set[WB_SET_BYTES];
    uint32_t k = 0;
    wb_framer_init(&f, emit, NULL);
    for (; k < 40u; k++) {
        set_of(k, set);
        wb_framer_set(&f, set, 1);
    }
    wb_framer_set(&f, set, 0);
    k++;
    for (; k < 101u; k++) {
        set_of(k, set);
        wb_framer_set(&f, set, 1);
    }
    wb_framer_skip(&f, 10u);
    k += 10u;
    for (; k < 211u; k++) {
        refuse_next = k == 142u; /* completes the frame of sets 111 ... 142 */
        set_of(k, set);
        wb_framer_set(&f, set, 1);
    }
    fflush(stdout);
    fprintf(stderr, "frames %u, sets dropped %u\n", (unsigned)f.frames_sent, (unsigned)f.sets_dropped);
    return 0;
}

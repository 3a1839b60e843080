/* Framing of the waveform bridge; see frame.h and docs/waveform-bridge.md. */
#include "frame.h"

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256u; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* CRC-32 as IEEE 802.3 and zlib: reflected polynomial 0x04C11DB7, initial value and final XOR
 * 0xFFFFFFFF. Pass 0 as crc for a new computation; pass a previous result to continue one. */
uint32_t wb_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    if (crc_table[1] == 0u)
        crc_init();
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *data++) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v);
    put16(p + 2, v >> 16);
}

void wb_framer_init(struct wb_framer *f, wb_emit_fn emit, void *ctx)
{
    f->next_index = 0;
    f->first_index = 0;
    f->seq = 0;
    f->flags = WB_FLAG_RESTART;
    f->sync_losses = 0;
    f->n_sets = 0;
    f->frames_sent = 0;
    f->sets_dropped = 0;
    f->emit = emit;
    f->ctx = ctx;
}

/* Send the sets in buf as one frame (a whole frame, or fewer sets before a gap). */
static void flush(struct wb_framer *f)
{
    if (f->n_sets == 0u)
        return;
    uint8_t *h = f->buf;
    size_t payload = f->n_sets * WB_SET_BYTES;
    h[0] = 'W';
    h[1] = 'B';
    h[2] = 1u;
    h[3] = f->flags;
    put16(h + 4, f->seq);
    h[6] = (uint8_t)f->n_sets;
    h[7] = (uint8_t)WB_WIDTH;
    put32(h + 8, f->first_index);
    put16(h + 12, WB_DMA_CTRL);
    h[14] = f->sync_losses;
    h[15] = 0u;
    size_t len = WB_HEADER_BYTES + payload;
    put32(h + len, wb_crc32(0u, h, len));
    if (f->emit(f->ctx, h, len + WB_CRC_BYTES)) {
        f->seq = (uint16_t)(f->seq + 1u);
        f->flags = 0u;
        f->frames_sent++;
    } else {
        f->flags |= WB_FLAG_OVERRUN; /* no room: these sets are lost, the next frame says so */
        f->sets_dropped += f->n_sets;
    }
    f->n_sets = 0;
}

void wb_framer_set(struct wb_framer *f, const uint8_t *set, int ok)
{
    if (!ok) {
        flush(f); /* a frame holds consecutive sets only */
        f->next_index++;
        f->sync_losses++;
        f->flags |= WB_FLAG_SYNC_LOST;
        f->sets_dropped++;
        return;
    }
    if (f->n_sets == 0u)
        f->first_index = f->next_index;
    uint8_t *dst = f->buf + WB_HEADER_BYTES + f->n_sets * WB_SET_BYTES;
    for (uint32_t i = 0; i < WB_SET_BYTES; i++)
        dst[i] = set[i];
    f->n_sets++;
    f->next_index++;
    if (f->n_sets == WB_SETS_PER_FRAME)
        flush(f);
}

void wb_framer_skip(struct wb_framer *f, uint32_t n)
{
    if (n == 0u)
        return;
    flush(f);
    f->next_index += n;
    f->sets_dropped += n;
    f->flags |= WB_FLAG_OVERRUN;
}

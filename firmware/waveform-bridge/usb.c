/* USB CDC-ACM device on the RP2040 (see usb.h): descriptors, control transfers on endpoint 0,
 * notification endpoint 1 (never used), bulk endpoints 2 OUT and 2 IN. */
#include "usb.h"

#include "rp2040.h"

#define EP0_BUF (USB_DPRAM + 0x100u)
#define EP1_IN_BUF (USB_DPRAM + 0x180u)
#define EP2_OUT_BUF (USB_DPRAM + 0x1C0u)
#define EP2_IN_BUF (USB_DPRAM + 0x200u)

static const uint8_t device_desc[18] = {
    18, 1, 0x00, 0x02, /* USB 2.0 */
    0x02, 0x00, 0x00,  /* class CDC */
    64,                /* EP0 packet */
    0x8A, 0x2E,        /* Raspberry Pi vendor id */
    0x0A, 0x00,        /* product id of its CDC devices */
    0x00, 0x01,        /* device release 1.00 */
    1, 2, 3,           /* strings: manufacturer, product, serial */
    1,                 /* one configuration */
};

static const uint8_t config_desc[67] = {
    9, 2, 67, 0, 2, 1, 0, 0x80, 50,  /* 2 interfaces, bus powered, 100 mA */
    9, 4, 0, 0, 1, 0x02, 0x02, 0x00, 0, /* interface 0: communication, ACM */
    5, 0x24, 0x00, 0x10, 0x01,       /* header, CDC 1.10 */
    5, 0x24, 0x01, 0x00, 1,          /* call management: data on interface 1 */
    4, 0x24, 0x02, 0x02,             /* ACM: line coding and control line state */
    5, 0x24, 0x06, 0, 1,             /* union: 0 controls 1 */
    7, 5, 0x81, 0x03, 8, 0, 16,      /* EP1 IN interrupt, 8 bytes, 16 ms */
    9, 4, 1, 0, 2, 0x0A, 0, 0, 0,    /* interface 1: data */
    7, 5, 0x02, 0x02, 64, 0, 0,      /* EP2 OUT bulk */
    7, 5, 0x82, 0x02, 64, 0, 0,      /* EP2 IN bulk */
};

static const char *const strings[] = {"PMM", "PMM waveform bridge", "WB1"};

static struct {
    uint8_t configured, dtr, pending_address, line_coding_out;
    uint8_t ep0_pid, ep2_in_pid, ep2_out_pid, ep2_in_busy;
    const uint8_t *ep0_data;
    uint32_t ep0_left;
    uint8_t line_coding[7];
    uint8_t scratch[USB_PACKET];
} usb;

static void buf_ctrl(uint32_t reg, uint32_t value)
{
    /* the AVAILABLE bit goes in last, a few cycles after the rest (datasheet advice) */
    REG(reg) = value & ~BUF_AVAILABLE;
    __asm volatile("nop\n nop\n nop\n nop\n nop\n nop");
    REG(reg) = value;
}

static void copy_to(uint32_t dst, const uint8_t *src, uint32_t len)
{
    volatile uint8_t *d = (volatile uint8_t *)(uintptr_t)dst;
    for (uint32_t i = 0; i < len; i++)
        d[i] = src[i];
}

static void ep0_in_packet(void)
{
    uint32_t n = usb.ep0_left < USB_PACKET ? usb.ep0_left : USB_PACKET;
    copy_to(EP0_BUF, usb.ep0_data, n);
    usb.ep0_data += n;
    usb.ep0_left -= n;
    buf_ctrl(EP_IN_BUF_CTRL(0), n | BUF_FULL | (usb.ep0_pid ? BUF_DATA1 : 0u) | BUF_AVAILABLE);
    usb.ep0_pid ^= 1u;
}

static void ep0_send(const uint8_t *data, uint32_t len, uint32_t w_length)
{
    usb.ep0_data = data;
    usb.ep0_left = len < w_length ? len : w_length;
    usb.ep0_pid = 1u;
    ep0_in_packet();
}

static void ep0_status_in(void)
{
    usb.ep0_left = 0;
    usb.ep0_pid = 1u;
    buf_ctrl(EP_IN_BUF_CTRL(0), BUF_FULL | BUF_DATA1 | BUF_AVAILABLE);
}

static void ep0_stall(void)
{
    REG(USB_EP_STALL_ARM) = 3u;
    REG(EP_IN_BUF_CTRL(0)) = BUF_STALL;
    REG(EP_OUT_BUF_CTRL(0)) = BUF_STALL;
}

static void ep2_out_arm(void)
{
    buf_ctrl(EP_OUT_BUF_CTRL(2), USB_PACKET | (usb.ep2_out_pid ? BUF_DATA1 : 0u) | BUF_AVAILABLE);
    usb.ep2_out_pid ^= 1u;
}

static void configure_endpoints(void)
{
    REG(EP_IN_CONTROL(1)) = EP_CTRL_ENABLE | EP_CTRL_INT_PER_BUFFER | EP_TYPE_INTERRUPT | (EP1_IN_BUF - USB_DPRAM);
    REG(EP_OUT_CONTROL(2)) = EP_CTRL_ENABLE | EP_CTRL_INT_PER_BUFFER | EP_TYPE_BULK | (EP2_OUT_BUF - USB_DPRAM);
    REG(EP_IN_CONTROL(2)) = EP_CTRL_ENABLE | EP_CTRL_INT_PER_BUFFER | EP_TYPE_BULK | (EP2_IN_BUF - USB_DPRAM);
    usb.ep2_in_pid = 0;
    usb.ep2_out_pid = 0;
    usb.ep2_in_busy = 0;
    ep2_out_arm();
}

static void send_string(uint32_t index, uint32_t w_length)
{
    uint8_t *d = usb.scratch;
    if (index == 0u) {
        d[0] = 4;
        d[1] = 3;
        d[2] = 0x09; /* English (US) */
        d[3] = 0x04;
    } else if (index <= sizeof strings / sizeof strings[0]) {
        const char *s = strings[index - 1u];
        uint32_t n = 0;
        while (s[n] != '\0' && 2u + 2u * (n + 1u) <= USB_PACKET)
            n++;
        d[0] = (uint8_t)(2u + 2u * n);
        d[1] = 3;
        for (uint32_t i = 0; i < n; i++) {
            d[2u + 2u * i] = (uint8_t)s[i];
            d[3u + 2u * i] = 0;
        }
    } else {
        ep0_stall();
        return;
    }
    ep0_send(d, d[0], w_length);
}

static void handle_setup(void)
{
    const volatile uint8_t *p = (const volatile uint8_t *)(uintptr_t)USB_DPRAM;
    uint8_t type = p[0], request = p[1];
    uint32_t value = (uint32_t)p[2] | ((uint32_t)p[3] << 8);
    uint32_t length = (uint32_t)p[6] | ((uint32_t)p[7] << 8);
    usb.line_coding_out = 0;
    if ((type & 0x60u) == 0x20u) { /* class requests of the ACM interface */
        if (request == 0x20u) {    /* SET_LINE_CODING: 7 bytes follow */
            usb.line_coding_out = 1;
            buf_ctrl(EP_OUT_BUF_CTRL(0), USB_PACKET | BUF_DATA1 | BUF_AVAILABLE);
        } else if (request == 0x21u) { /* GET_LINE_CODING */
            ep0_send(usb.line_coding, sizeof usb.line_coding, length);
        } else if (request == 0x22u) { /* SET_CONTROL_LINE_STATE: bit 0 DTR */
            usb.dtr = (uint8_t)(value & 1u);
            ep0_status_in();
        } else {
            ep0_stall();
        }
        return;
    }
    switch (request) {
    case 0x06: /* GET_DESCRIPTOR */
        if ((value >> 8) == 1u)
            ep0_send(device_desc, sizeof device_desc, length);
        else if ((value >> 8) == 2u)
            ep0_send(config_desc, sizeof config_desc, length);
        else if ((value >> 8) == 3u)
            send_string(value & 0xFFu, length);
        else
            ep0_stall();
        break;
    case 0x05: /* SET_ADDRESS: applied after the status stage */
        usb.pending_address = (uint8_t)(value & 0x7Fu);
        ep0_status_in();
        break;
    case 0x09: /* SET_CONFIGURATION */
        configure_endpoints();
        usb.configured = value != 0u;
        ep0_status_in();
        break;
    case 0x08: /* GET_CONFIGURATION */
        usb.scratch[0] = usb.configured;
        ep0_send(usb.scratch, 1, length);
        break;
    case 0x00: /* GET_STATUS */
        usb.scratch[0] = 0;
        usb.scratch[1] = 0;
        ep0_send(usb.scratch, 2, length);
        break;
    case 0x01: /* CLEAR_FEATURE */
    case 0x03: /* SET_FEATURE */
    case 0x0B: /* SET_INTERFACE */
        ep0_status_in();
        break;
    default:
        ep0_stall();
    }
}

static void bus_reset(void)
{
    REG(USB_ADDR_ENDP) = 0;
    usb.pending_address = 0;
    usb.configured = 0;
    usb.dtr = 0;
    usb.ep2_in_busy = 0;
}

void usb_init(void)
{
    REG_SET(RESETS_RESET) = RESET_USBCTRL;
    REG_CLR(RESETS_RESET) = RESET_USBCTRL;
    while (!(REG(RESETS_DONE) & RESET_USBCTRL)) {
    }
    for (uint32_t a = USB_DPRAM; a < USB_DPRAM + 4096u; a += 4u)
        REG(a) = 0;
    static const uint8_t coding[7] = {0x00, 0xC2, 0x01, 0x00, 0, 0, 8}; /* 115200 8N1, ignored */
    for (uint32_t i = 0; i < sizeof coding; i++)
        usb.line_coding[i] = coding[i];
    REG(USB_MUXING) = USB_MUXING_TO_PHY | USB_MUXING_SOFTCON;
    REG(USB_PWR) = USB_PWR_VBUS_DETECT | USB_PWR_VBUS_DETECT_OVERRIDE_EN;
    REG(USB_MAIN_CTRL) = USB_MAIN_CONTROLLER_EN;
    REG(USB_SIE_CTRL) = USB_SIE_EP0_INT_1BUF;
    REG(USB_INTE) = USB_INT_BUFF_STATUS | USB_INT_BUS_RESET | USB_INT_SETUP_REQ;
    REG_SET(USB_SIE_CTRL) = USB_SIE_PULLUP_EN;
}

void usb_poll(void)
{
    uint32_t ints = REG(USB_INTS);
    if (ints & USB_INT_BUS_RESET) {
        REG(USB_SIE_STATUS) = USB_SIE_BUS_RESET; /* write 1 to clear */
        bus_reset();
    }
    if (ints & USB_INT_SETUP_REQ) {
        REG(USB_SIE_STATUS) = USB_SIE_SETUP_REC;
        handle_setup();
    }
    if (ints & USB_INT_BUFF_STATUS) {
        uint32_t done = REG(USB_BUFF_STATUS);
        REG(USB_BUFF_STATUS) = done; /* write 1 to clear */
        if (done & (1u << 0)) {      /* EP0 IN */
            if (usb.pending_address != 0u && usb.ep0_left == 0u) {
                REG(USB_ADDR_ENDP) = usb.pending_address;
                usb.pending_address = 0;
            } else if (usb.ep0_left != 0u) {
                ep0_in_packet();
            } else {
                /* data stage done: take the host's zero-length status packet */
                buf_ctrl(EP_OUT_BUF_CTRL(0), BUF_DATA1 | BUF_AVAILABLE);
            }
        }
        if (done & (1u << 1)) { /* EP0 OUT */
            if (usb.line_coding_out) {
                const volatile uint8_t *b = (const volatile uint8_t *)(uintptr_t)EP0_BUF;
                for (uint32_t i = 0; i < sizeof usb.line_coding; i++)
                    usb.line_coding[i] = b[i];
                usb.line_coding_out = 0;
                ep0_status_in();
            }
        }
        if (done & (1u << 4)) /* EP2 IN: packet sent */
            usb.ep2_in_busy = 0;
        if (done & (1u << 5)) /* EP2 OUT: host data, ignored */
            ep2_out_arm();
    }
}

int usb_ready(void)
{
    return usb.configured && usb.dtr;
}

int usb_tx_idle(void)
{
    return usb.configured && !usb.ep2_in_busy;
}

void usb_tx(const uint8_t *data, size_t len)
{
    if (len > USB_PACKET)
        len = USB_PACKET;
    copy_to(EP2_IN_BUF, data, (uint32_t)len);
    usb.ep2_in_busy = 1;
    buf_ctrl(EP_IN_BUF_CTRL(2), (uint32_t)len | BUF_FULL | (usb.ep2_in_pid ? BUF_DATA1 : 0u) | BUF_AVAILABLE);
    usb.ep2_in_pid ^= 1u;
}

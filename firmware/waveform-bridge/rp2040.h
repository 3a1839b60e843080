/* The RP2040 registers the bridge uses (RP2040 datasheet; addresses and bits by name). */
#ifndef WB_RP2040_H
#define WB_RP2040_H

#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define REG_SET(addr) REG((addr) + 0x2000u) /* atomic bit set alias */
#define REG_CLR(addr) REG((addr) + 0x3000u) /* atomic bit clear alias */

#define CLOCKS_BASE 0x40008000u
#define CLK_REF_CTRL (CLOCKS_BASE + 0x30u)
#define CLK_REF_SELECTED (CLOCKS_BASE + 0x38u)
#define CLK_SYS_CTRL (CLOCKS_BASE + 0x3Cu)
#define CLK_SYS_SELECTED (CLOCKS_BASE + 0x44u)
#define CLK_USB_CTRL (CLOCKS_BASE + 0x54u)
#define CLK_USB_DIV (CLOCKS_BASE + 0x58u)
#define CLK_ENABLE (1u << 11)

#define RESETS_BASE 0x4000C000u
#define RESETS_RESET (RESETS_BASE + 0x0u)
#define RESETS_DONE (RESETS_BASE + 0x8u)
#define RESET_DMA (1u << 2)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_PIO0 (1u << 10)
#define RESET_PLL_USB (1u << 13)
#define RESET_USBCTRL (1u << 24)

#define IO_BANK0_BASE 0x40014000u
#define GPIO_CTRL(n) (IO_BANK0_BASE + 0x4u + 8u * (n))
#define FUNC_SIO 5u
#define FUNC_PIO0 6u

#define XOSC_BASE 0x40024000u
#define XOSC_CTRL (XOSC_BASE + 0x0u)
#define XOSC_STATUS (XOSC_BASE + 0x4u)
#define XOSC_STARTUP (XOSC_BASE + 0xCu)
#define XOSC_STABLE (1u << 31)

#define PLL_USB_BASE 0x4002C000u
#define PLL_CS (PLL_USB_BASE + 0x0u)
#define PLL_PWR (PLL_USB_BASE + 0x4u)
#define PLL_FBDIV (PLL_USB_BASE + 0x8u)
#define PLL_PRIM (PLL_USB_BASE + 0xCu)
#define PLL_LOCK (1u << 31)
#define PLL_PWR_PD (1u << 0)
#define PLL_PWR_POSTDIVPD (1u << 3)
#define PLL_PWR_VCOPD (1u << 5)

#define SIO_BASE 0xD0000000u
#define SIO_IN (SIO_BASE + 0x004u)
#define SIO_OUT_SET (SIO_BASE + 0x014u)
#define SIO_OUT_CLR (SIO_BASE + 0x018u)
#define SIO_OE_SET (SIO_BASE + 0x024u)
#define SIO_OE_CLR (SIO_BASE + 0x028u)

#define DMA_BASE 0x50000000u
#define DMA_CH(n) (DMA_BASE + 0x40u * (n))
#define DMA_READ_ADDR(n) (DMA_CH(n) + 0x00u)
#define DMA_WRITE_ADDR(n) (DMA_CH(n) + 0x04u)
#define DMA_TRANS_COUNT(n) (DMA_CH(n) + 0x08u)
#define DMA_CTRL_TRIG(n) (DMA_CH(n) + 0x0Cu)
#define DMA_AL1_CTRL(n) (DMA_CH(n) + 0x10u)
#define DMA_INTR (DMA_BASE + 0x400u)
#define DMA_EN (1u << 0)
#define DMA_INCR_WRITE (1u << 5)
#define DMA_RING_SIZE_LSB 6u
#define DMA_RING_SEL_WRITE (1u << 10)
#define DMA_CHAIN_TO_LSB 11u
#define DMA_TREQ_SEL_LSB 15u
#define DMA_BUSY (1u << 24)
#define DREQ_PIO0_RX0 4u

#define USB_DPRAM 0x50100000u
#define USB_REGS 0x50110000u
#define USB_ADDR_ENDP (USB_REGS + 0x00u)
#define USB_MAIN_CTRL (USB_REGS + 0x40u)
#define USB_SIE_CTRL (USB_REGS + 0x4Cu)
#define USB_SIE_STATUS (USB_REGS + 0x50u)
#define USB_BUFF_STATUS (USB_REGS + 0x58u)
#define USB_EP_STALL_ARM (USB_REGS + 0x68u)
#define USB_MUXING (USB_REGS + 0x74u)
#define USB_PWR (USB_REGS + 0x78u)
#define USB_INTE (USB_REGS + 0x90u)
#define USB_INTS (USB_REGS + 0x98u)
#define USB_MAIN_CONTROLLER_EN (1u << 0)
#define USB_SIE_PULLUP_EN (1u << 16)
#define USB_SIE_EP0_INT_1BUF (1u << 29)
#define USB_SIE_SETUP_REC (1u << 17)
#define USB_SIE_BUS_RESET (1u << 19)
#define USB_MUXING_TO_PHY (1u << 0)
#define USB_MUXING_SOFTCON (1u << 3)
#define USB_PWR_VBUS_DETECT (1u << 2)
#define USB_PWR_VBUS_DETECT_OVERRIDE_EN (1u << 3)
#define USB_INT_BUFF_STATUS (1u << 4)
#define USB_INT_BUS_RESET (1u << 12)
#define USB_INT_SETUP_REQ (1u << 16)
/* DPRAM: endpoint control (EPn IN at 0x08 + 8(n-1), OUT at +4), buffer control (EPn IN at 0x80 + 8n,
 * OUT at +4) */
#define EP_IN_CONTROL(n) (USB_DPRAM + 0x08u + 8u * ((n) - 1u))
#define EP_OUT_CONTROL(n) (USB_DPRAM + 0x0Cu + 8u * ((n) - 1u))
#define EP_IN_BUF_CTRL(n) (USB_DPRAM + 0x80u + 8u * (n))
#define EP_OUT_BUF_CTRL(n) (USB_DPRAM + 0x84u + 8u * (n))
#define EP_CTRL_ENABLE (1u << 31)
#define EP_CTRL_INT_PER_BUFFER (1u << 29)
#define EP_TYPE_BULK (2u << 26)
#define EP_TYPE_INTERRUPT (3u << 26)
#define BUF_FULL (1u << 15)
#define BUF_LAST (1u << 14)
#define BUF_DATA1 (1u << 13)
#define BUF_STALL (1u << 11)
#define BUF_AVAILABLE (1u << 10)

#define PIO0_BASE 0x50200000u
#define PIO_CTRL (PIO0_BASE + 0x000u)
#define PIO_TXF0 (PIO0_BASE + 0x010u)
#define PIO_RXF0 (PIO0_BASE + 0x020u)
#define PIO_INSTR_MEM(n) (PIO0_BASE + 0x048u + 4u * (n))
#define PIO_SM0_CLKDIV (PIO0_BASE + 0x0C8u)
#define PIO_SM0_EXECCTRL (PIO0_BASE + 0x0CCu)
#define PIO_SM0_SHIFTCTRL (PIO0_BASE + 0x0D0u)
#define PIO_SM0_INSTR (PIO0_BASE + 0x0D8u)
#define PIO_SM0_PINCTRL (PIO0_BASE + 0x0DCu)

#endif

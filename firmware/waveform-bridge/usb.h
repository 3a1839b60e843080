/* A USB CDC-ACM device on the RP2040's controller, polled: the bridge's frames go out on the bulk
 * IN endpoint; what the host writes is accepted and ignored. */
#ifndef WB_USB_H
#define WB_USB_H

#include <stddef.h>
#include <stdint.h>

#define USB_PACKET 64u

void usb_init(void);
/* Handle what the controller reports: bus reset, SETUP packets, finished buffers. */
void usb_poll(void);
/* 1 when the host configured the device and holds DTR (a program has the port open). */
int usb_ready(void);
/* 1 when the bulk IN endpoint can take a packet. */
int usb_tx_idle(void);
/* Queue one packet of at most USB_PACKET bytes on the bulk IN endpoint. */
void usb_tx(const uint8_t *data, size_t len);

#endif

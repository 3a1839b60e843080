/* Start-up of the bridge image: vector table, .data and .bss, then main(). */
#include <stddef.h>
#include <stdint.h>

extern uint32_t __stack_top, __data_start__, __data_end__, __data_load__, __bss_start__, __bss_end__;
int main(void);

void reset_handler(void);
void default_handler(void);

void default_handler(void)
{
    for (;;) {
    }
}

void reset_handler(void)
{
    const uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;)
        *dst++ = 0u;
    main();
    for (;;) {
    }
}

/* 16 system exceptions, 32 interrupts; everything is polled, so all but reset just stop. */
__attribute__((section(".vectors"), used)) static void (*const vectors[48])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top,
    reset_handler,
    default_handler, default_handler, 0, 0, 0, 0, 0, 0, 0, default_handler, 0, 0, default_handler,
    default_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, default_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler,
};

/* The compiler may call these for copies and clears. */
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

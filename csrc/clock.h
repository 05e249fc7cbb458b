/* The core's clocks for C (clock.c); the Lua face is core.now_ms, time and
 * sleep_ms. */
#ifndef MSAL_CLOCK_H
#define MSAL_CLOCK_H

#include <stdint.h>

/* Milliseconds on the monotonic clock: deadlines and timeouts. */
int64_t msal_now_ms(void);
/* Sleeps ms milliseconds (nothing when ms <= 0 or NaN); a signal only
 * shortens the wait. */
void msal_sleep_ms(double ms);

#endif

/* Clocks for the loop and the token expiry checks: Lua's os.time() has
 * whole seconds only and os.clock() is CPU time, neither fit to wait on. */
#include <errno.h>
#include <time.h>

#include "clock.h"
#include "compat.h"
#include "core.h"

int64_t msal_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void msal_sleep_ms(double ms)
{
    struct timespec ts;
    if (!(ms > 0))
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    /* A signal only shortens the wait: nanosleep leaves the rest in ts. */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/***
 * Milliseconds on a clock that never jumps back, for timers and
 * timeouts.
 * @function now_ms
 * @treturn number
 */
static int l_now_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
    return 1;
}

/***
 * Wall-clock Unix time in seconds, with a fraction: token lifetimes.
 * @function time
 * @treturn number
 */
static int l_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/***
 * Sleeps without burning CPU; a signal only shortens the wait.
 * @function sleep_ms
 * @tparam number ms
 */
static int l_sleep_ms(lua_State *L)
{
    msal_sleep_ms((double)luaL_checknumber(L, 1));
    return 0;
}

void msal_open_clock(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"now_ms", l_now_ms}, {"time", l_time}, {"sleep_ms", l_sleep_ms}, {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}

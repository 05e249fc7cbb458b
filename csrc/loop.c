/* msal.core.loop: placeholder until its issue lands; see csrc/core.c. */
#include "compat.h"
#include "core.h"

void msal_open_loop(lua_State *L)
{
    lua_newtable(L);
}

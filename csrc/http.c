/* msal.core.http: placeholder until its issue lands; see csrc/core.c. */
#include "compat.h"
#include "core.h"

void msal_open_http(lua_State *L)
{
    lua_newtable(L);
}

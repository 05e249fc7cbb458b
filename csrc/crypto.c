/* msal.core.crypto: placeholder until its issue lands; see csrc/core.c. */
#include "compat.h"
#include "core.h"

void msal_open_crypto(lua_State *L)
{
    lua_newtable(L);
}

/* msal.core.fileio: placeholder until its issue lands; see csrc/core.c. */
#include "compat.h"
#include "core.h"

void msal_open_fileio(lua_State *L)
{
    lua_newtable(L);
}

/* Openers of msal.core's parts. */
#ifndef MSAL_CORE_H
#define MSAL_CORE_H

#include <lua.h>

int luaopen_msal_core(lua_State *L);
/* Adds its functions to the table on top of the stack. */
void msal_open_clock(lua_State *L);
/* Pushes the store module table. */
void msal_open_store(lua_State *L);

#endif

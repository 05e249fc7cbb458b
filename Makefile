# Builds msal.core for Lua 5.4 and for LuaJIT (the 5.1 ABI of OpenResty and
# Neovim) from one source tree, plus an ASan+UBSan build for the tests.
# `make test` is the whole suite; `make example` the main job (see README).

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -std=c99 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
DEFS = -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
LUA54_INC ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
LIBS = -lcurl -lssl -lcrypto

SRC = $(wildcard csrc/*.c)
HDR = $(wildcard csrc/*.h)
SO = msal/core.so

all: build/lua5.4/$(SO) build/luajit/$(SO)

build/lua5.4/$(SO): $(SRC) $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(DEFS) -fPIC -shared -I$(LUA54_INC) $(SRC) -o $@ $(LIBS)

build/luajit/$(SO): $(SRC) $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(DEFS) -fPIC -shared -I$(LUAJIT_INC) $(SRC) -o $@ $(LIBS)

asan: build/asan/$(SO)
build/asan/$(SO): $(SRC) $(HDR) Makefile
	@mkdir -p $(@D)
	$(CC) -O1 -g $(SANITIZE) $(WARN) $(DEFS) -fPIC -shared -I$(LUA54_INC) $(SRC) -o $@ $(LIBS)

test:
	scripts/test

example:
	scripts/example

bench: all
	scripts/bench

# The man page, from the same text as `msal --help` (checked in; a spec
# checks it is current).
man:
	LUA_PATH="lua/?.lua;;" lua5.4 man/gen_man.lua > man/msal.1

clean:
	rm -rf build

# The LuaLS stubs (types/) from the LDoc comments and the option checkers
# (checked in; docs_spec checks they are current).
types: build/lua5.4/$(SO)
	scripts/gen-types

.PHONY: all asan test example bench man clean docs types

# API reference from the LDoc comments (Debian: lua-ldoc); config in config.ld.
docs:
	ldoc -c config.ld .


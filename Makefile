# Builds msal.core and msal.core.http for Lua 5.4 and for LuaJIT (the 5.1 ABI of OpenResty and
# Neovim) from one source tree, plus an ASan+UBSan build for the tests.
# `make test` is the whole suite; `make example` the main job (see README).

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -std=c99 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
DEFS = -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
LUA54_INC ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Two shared objects: msal.core (store, crypto, loop, files, Redis,
# loopback) and msal.core.http (libcurl), so that a process that never
# makes a request never loads libcurl's ~30 libraries (bench/README.md).
# HTTP_SRC: http.c and the helpers it shares with the core.
SRC = $(wildcard csrc/*.c)
HDR = $(wildcard csrc/*.h)
HTTP_SRC = csrc/http.c csrc/core.c csrc/clock.c csrc/buf.c csrc/hugemem.c csrc/poller.c csrc/http1.c
CORE_SRC = $(filter-out csrc/http.c,$(SRC))
CORE_LIBS = -lssl -lcrypto
HTTP_LIBS = -lcurl
SO = msal/core.so
HTTP_SO = msal/core/http.so
BUILDS = lua5.4 luajit asan

all: build/lua5.4/$(SO) build/lua5.4/$(HTTP_SO) build/luajit/$(SO) build/luajit/$(HTTP_SO)

# per build: its compiler flags
FLAGS_lua5.4 = $(CFLAGS) -I$(LUA54_INC)
FLAGS_luajit = $(CFLAGS) -I$(LUAJIT_INC)
FLAGS_asan = -O1 -g $(SANITIZE) -I$(LUA54_INC)

define shared_objects
build/$(1)/$(SO): $(CORE_SRC) $(HDR) Makefile
	@mkdir -p $$(@D)
	$$(CC) $$(FLAGS_$(1)) $$(WARN) $$(DEFS) -fPIC -shared $$(CORE_SRC) -o $$@ $$(CORE_LIBS)
build/$(1)/$(HTTP_SO): $(HTTP_SRC) $(HDR) Makefile
	@mkdir -p $$(@D)
	$$(CC) $$(FLAGS_$(1)) $$(WARN) $$(DEFS) -fPIC -shared $$(HTTP_SRC) -o $$@ $$(HTTP_LIBS)
endef
$(foreach b,$(BUILDS),$(eval $(call shared_objects,$(b))))

asan: build/asan/$(SO) build/asan/$(HTTP_SO)

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

# `make print-CORE_SRC`: a variable's words, one a line (rockspec_spec
# checks the rockspec builds what this file builds)
print-%:
	@printf '%s\n' $($*)

# API reference from the LDoc comments (Debian: lua-ldoc); config in config.ld.
docs:
	ldoc -c config.ld .


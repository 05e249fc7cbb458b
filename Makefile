# Builds msal.core and its parts for Lua 5.4 and for LuaJIT (the 5.1 ABI of OpenResty and
# Neovim) from one source tree, plus an ASan+UBSan build for the tests.
# `make test` is the whole suite; `make example` the main job (see README).

CC ?= cc
CFLAGS ?= -O2 -g
WARN = -std=c99 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
DEFS = -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
LUA54_INC ?= /usr/include/lua5.4
LUAJIT_INC ?= /usr/include/luajit-2.1
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Four shared objects: msal.core (store, loop, files, loopback) and, loaded
# on first use, msal.core.http (libcurl), msal.core.crypto (libcrypto) and
# msal.core.redis (libssl): a process that makes no request and verifies
# nothing never loads those libraries (bench/README.md, the command line).
# Each of the three has its file(s) and the helpers it shares with the core.
SRC = $(wildcard csrc/*.c)
HDR = $(wildcard csrc/*.h)
SHARED_SRC = csrc/core.c csrc/clock.c csrc/buf.c csrc/hugemem.c csrc/poller.c
HTTP_SRC = csrc/http.c csrc/http1.c $(SHARED_SRC)
CRYPTO_SRC = csrc/crypto.c csrc/jws.c csrc/jwt.c csrc/b64.c $(SHARED_SRC)
REDIS_SRC = csrc/redis.c csrc/resp.c csrc/stream.c $(SHARED_SRC)
CORE_SRC = $(filter-out csrc/http.c csrc/crypto.c csrc/jws.c csrc/jwt.c csrc/redis.c csrc/resp.c csrc/stream.c,$(SRC))
CORE_LIBS =
HTTP_LIBS = -lcurl
CRYPTO_LIBS = -lcrypto
REDIS_LIBS = -lssl -lcrypto
SO = msal/core.so
PARTS = http crypto redis
BUILDS = lua5.4 luajit asan

SOS = $(SO) $(foreach p,$(PARTS),msal/core/$(p).so)
all: $(addprefix build/lua5.4/,$(SOS)) $(addprefix build/luajit/,$(SOS))

# per build: its compiler flags
FLAGS_lua5.4 = $(CFLAGS) -I$(LUA54_INC)
FLAGS_luajit = $(CFLAGS) -I$(LUAJIT_INC)
FLAGS_asan = -O1 -g $(SANITIZE) -I$(LUA54_INC)

define shared_objects
build/$(1)/$(SO): $(CORE_SRC) $(HDR) Makefile
	@mkdir -p $$(@D)
	$$(CC) $$(FLAGS_$(1)) $$(WARN) $$(DEFS) -fPIC -shared $$(CORE_SRC) -o $$@ $$(CORE_LIBS)
endef
# build, part (http, crypto, redis)
define part_object
build/$(1)/msal/core/$(2).so: $$($(3)_SRC) $(HDR) Makefile
	@mkdir -p $$(@D)
	$$(CC) $$(FLAGS_$(1)) $$(WARN) $$(DEFS) -fPIC -shared $$($(3)_SRC) -o $$@ $$($(3)_LIBS)
endef
$(foreach b,$(BUILDS),$(eval $(call shared_objects,$(b))))
$(foreach b,$(BUILDS),$(eval $(call part_object,$(b),http,HTTP)))
$(foreach b,$(BUILDS),$(eval $(call part_object,$(b),crypto,CRYPTO)))
$(foreach b,$(BUILDS),$(eval $(call part_object,$(b),redis,REDIS)))

asan: $(addprefix build/asan/,$(SOS))

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


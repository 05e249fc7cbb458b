rockspec_format = "3.0"
package = "lua-msal"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-msal/lua-msal.git",
}
description = {
  summary = "OAuth 2.0 / OpenID Connect tokens the way Microsoft's MSAL gets them",
  detailed = [[
Silent token acquisition from an MSAL-compatible token cache (shared with
msal-node, msal-python and the Azure CLI), with promises, accounts and
events, over a C core (token store, libcurl, OpenSSL).]],
  license = "MIT",
  labels = { "oauth", "openid", "msal", "entra", "azure" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1, < 3",
}
external_dependencies = {
  -- libraries only: Debian keeps curl.h in a multiarch directory that
  -- LuaRocks 3.8's header check does not search
  LIBCURL = { library = "curl" },
  OPENSSL = { library = "ssl" },
}
build = {
  type = "builtin",
  modules = {
    -- four shared objects, as the Makefile builds them: msal.core needs
    -- neither OpenSSL nor libcurl, which its parts load on first use
    ["msal.core"] = {
      sources = {
        "csrc/b64.c", "csrc/bigalloc.c", "csrc/blockarena.c", "csrc/buf.c", "csrc/clock.c", "csrc/core.c",
        "csrc/fileio.c", "csrc/http1.c", "csrc/hugemem.c", "csrc/json.c", "csrc/lockfile.c", "csrc/loop.c",
        "csrc/loopback.c", "csrc/lstore.c", "csrc/open_core.c", "csrc/poller.c", "csrc/store.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      incdirs = { "csrc" },
    },
    ["msal.core.http"] = {
      sources = { "csrc/http.c", "csrc/http1.c", "csrc/core.c", "csrc/clock.c", "csrc/buf.c", "csrc/hugemem.c", "csrc/poller.c" },
      defines = { "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      libraries = { "curl" },
      incdirs = { "csrc", "$(LIBCURL_INCDIR)" },
      libdirs = { "$(LIBCURL_LIBDIR)" },
    },
    ["msal.core.crypto"] = {
      sources = { "csrc/crypto.c", "csrc/jws.c", "csrc/jwt.c", "csrc/b64.c", "csrc/core.c", "csrc/clock.c", "csrc/buf.c",
        "csrc/hugemem.c", "csrc/poller.c" },
      defines = { "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      libraries = { "crypto" },
      incdirs = { "csrc", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)" },
    },
    ["msal.core.redis"] = {
      sources = { "csrc/redis.c", "csrc/resp.c", "csrc/stream.c", "csrc/core.c", "csrc/clock.c", "csrc/buf.c",
        "csrc/hugemem.c", "csrc/poller.c" },
      defines = { "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      libraries = { "ssl", "crypto" },
      incdirs = { "csrc", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)" },
    },
    ["msal"] = "lua/msal/init.lua",
    ["msal.application"] = "lua/msal/application.lua",
    ["msal.lazy"] = "lua/msal/lazy.lua",
    ["msal.cache.fetch_lock"] = "lua/msal/cache/fetch_lock.lua",
    ["msal.application.confidential"] = "lua/msal/application/confidential.lua",
    ["msal.client_credential"] = "lua/msal/client_credential.lua",
    ["msal.flows.client_credential"] = "lua/msal/flows/client_credential.lua",
    ["msal.flows.obo"] = "lua/msal/flows/obo.lua",
    ["msal.authority"] = "lua/msal/authority.lua",
    ["msal.cache"] = "lua/msal/cache/init.lua",
    ["msal.config"] = "lua/msal/config.lua",
    ["msal.errors"] = "lua/msal/errors.lua",
    ["msal.events"] = "lua/msal/events.lua",
    ["msal.flows.silent"] = "lua/msal/flows/silent.lua",
    ["msal.id_token"] = "lua/msal/id_token.lua",
    ["msal.logger"] = "lua/msal/logger.lua",
    ["msal.loop"] = "lua/msal/loop.lua",
    ["msal.promise"] = "lua/msal/promise.lua",
    ["msal.request"] = "lua/msal/request.lua",
    ["msal.request_options"] = "lua/msal/request_options.lua",
    ["msal.transport.curl"] = "lua/msal/transport/curl.lua",
    ["msal.network"] = "lua/msal/network.lua",
    ["msal.token_response"] = "lua/msal/token_response.lua",
    ["msal.url"] = "lua/msal/url.lua",
    ["msal.cache.refresh_lock"] = "lua/msal/cache/refresh_lock.lua",
    ["msal.flows.refresh"] = "lua/msal/flows/refresh.lua",
    ["msal.flows.device_code"] = "lua/msal/flows/device_code.lua",
    ["msal.flows.authorize"] = "lua/msal/flows/authorize.lua",
    ["msal.flows.popup"] = "lua/msal/flows/popup.lua",
    ["msal.flows.logout"] = "lua/msal/flows/logout.lua",
    ["msal.state_store"] = "lua/msal/state_store.lua",
    ["msal.loopback"] = "lua/msal/loopback.lua",
    ["msal.cache.save"] = "lua/msal/cache/save.lua",
    ["msal.cache.accounts"] = "lua/msal/cache/accounts.lua",
    ["msal.cache.account_filter"] = "lua/msal/cache/account_filter.lua",
    ["msal.cache.active_account"] = "lua/msal/cache/active_account.lua",
    ["msal.cache.file"] = "lua/msal/cache/file.lua",
    ["msal.cache.redis"] = "lua/msal/cache/redis.lua",
    ["msal.cache.redis_router"] = "lua/msal/cache/redis_router.lua",
    ["msal.cache.redis_cosocket"] = "lua/msal/cache/redis_cosocket.lua",
    ["msal.jwks"] = "lua/msal/jwks.lua",
    ["msal.jwt"] = "lua/msal/jwt.lua",
    ["msal.cache.merge"] = "lua/msal/cache/merge.lua",
    ["msal.cache.partition"] = "lua/msal/cache/partition.lua",
    ["msal.transport.common"] = "lua/msal/transport/common.lua",
    ["msal.cache.shared_dict"] = "lua/msal/cache/shared_dict.lua",
    ["msal.openresty"] = "lua/msal/openresty.lua",
    ["msal.transport.openresty"] = "lua/msal/transport/openresty.lua",
    ["msal.transport.http1"] = "lua/msal/transport/http1.lua",
    ["msal.nvim"] = "lua/msal/nvim.lua",
    ["msal.request_options"] = "lua/msal/request_options.lua",
    ["msal.flows.auth_code"] = "lua/msal/flows/auth_code.lua",
    ["msal.credential_chain"] = "lua/msal/credential_chain.lua",
    ["msal.cli.accounts"] = "lua/msal/cli/accounts.lua",
    ["msal.cli.args"] = "lua/msal/cli/args.lua",
    ["msal.cli.bytecode"] = "lua/msal/cli/bytecode.lua",
    ["msal.cli.commands"] = "lua/msal/cli/commands.lua",
    ["msal.cli.context"] = "lua/msal/cli/context.lua",
    ["msal.cli.decode"] = "lua/msal/cli/decode.lua",
    ["msal.cli.exit_codes"] = "lua/msal/cli/exit_codes.lua",
    ["msal.cli.git_credential"] = "lua/msal/cli/git_credential.lua",
    ["msal.cli.help"] = "lua/msal/cli/help.lua",
    ["msal.cli.interact"] = "lua/msal/cli/interact.lua",
    ["msal.cli.logout"] = "lua/msal/cli/logout.lua",
    ["msal.cli.main"] = "lua/msal/cli/main.lua",
    ["msal.cli.output"] = "lua/msal/cli/output.lua",
    ["msal.cli.settings"] = "lua/msal/cli/settings.lua",
    ["msal.cli.system"] = "lua/msal/cli/system.lua",
    ["msal.cli.token"] = "lua/msal/cli/token.lua",
    ["msal.application.managed_identity"] = "lua/msal/application/managed_identity.lua",
    ["msal.flows.managed_identity"] = "lua/msal/flows/managed_identity.lua",
    ["msal.managed_identity.config"] = "lua/msal/managed_identity/config.lua",
    ["msal.managed_identity.sources"] = "lua/msal/managed_identity/sources.lua",
    ["msal.managed_identity.retry"] = "lua/msal/managed_identity/retry.lua",
    ["msal.managed_identity.arc"] = "lua/msal/managed_identity/arc.lua",
    ["msal.managed_identity.response"] = "lua/msal/managed_identity/response.lua",
  },
  install = {
    bin = { msal = "bin/msal" },
  },
  copy_directories = { "man", "types", "docs" },
}
-- bin/msal is installed as it is, not behind luarocks' wrapper: the wrapper
-- loads luarocks.loader, which runs `gcc -print-multiarch` through a shell,
-- and that made a cache hit three times as slow. bin/msal starts the right
-- Lua and puts its tree on the module paths itself (bench/README.md, the
-- command line).
deploy = {
  wrap_bin_scripts = false,
}
test = {
  type = "command",
  command = "make test",
}

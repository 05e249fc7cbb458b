-- What scripts/gen-types cannot read from the code: the shapes the library
-- hands back (results, accounts, errors: built in flows, not checked), the
-- names of the classes made from the checkers' tables, and the few places
-- where an LDoc `table` or `Promise` is one of those classes. Field lists of
-- the configuration and request classes come from the checkers themselves
-- (msal.config, msal.request_options, …); only their types and descriptions
-- may be refined here. docs_spec checks every class covers its checker.
local M = {}

-- Classes written out: {name, parent, desc, fields = {{name, type, desc}}}.
-- A field named `name?` is optional.
M.classes = {
  { name = "msal.TenantProfile", desc = "One tenant's view of an account (`account.tenant_profiles[tenant_id]`).",
    fields = {
      { "tenant_id", "string" }, { "local_account_id", "string", "the user's object id in that tenant" },
      { "name?", "string" }, { "username", "string" }, { "login_hint?", "string" }, { "upn?", "string" },
      { "is_home_tenant", "boolean" },
    } },
  { name = "msal.AccountInfo", desc = "An account (MSAL's AccountInfo in snake_case): one user in one cloud, seen from one tenant.",
    fields = {
      { "home_account_id", "string", "`<object id>.<home tenant id>` on Entra" },
      { "environment", "string", "the cloud's host (login.microsoftonline.com)" },
      { "tenant_id", "string" }, { "username", "string" }, { "local_account_id", "string" },
      { "name?", "string" }, { "authority_type", "string", "\"MSSTS\" (Entra) or \"Generic\" (OIDC)" },
      { "tenant_profiles", "table<string, msal.TenantProfile>", "by tenant id, read when first used" },
      { "id_token_claims?", "table<string, any>", "that tenant's id token's claims, decoded when first read" },
    } },
  { name = "msal.AuthenticationResult", desc = "What a token request resolves to (MSAL's AuthenticationResult in snake_case).",
    fields = {
      { "access_token", "string" }, { "token_type", "string", "\"Bearer\" (or \"pop\")" },
      { "scopes", "string[]", "the scopes the token has" },
      { "expires_on", "number", "seconds since the epoch" }, { "ext_expires_on?", "number" },
      { "refresh_on?", "number", "when a silent call refreshes it ahead of expiry" },
      { "id_token?", "string" }, { "id_token_claims?", "table<string, any>" },
      { "account?", "msal.AccountInfo", "nil for app-only tokens (client credential, managed identity)" },
      { "tenant_id?", "string" }, { "from_cache", "boolean" }, { "correlation_id?", "string" },
      { "authority?", "string" },
    } },
  { name = "msal.CredentialChainResult", parent = "msal.AuthenticationResult",
    desc = "CredentialChain:get_token's result.",
    fields = { { "credential", "string", "the step that got it: \"environment\", \"managed_identity\", \"shared_cache\", \"interactive\"" } } },
  { name = "msal.Error", desc = "The error object every rejection carries (msal.errors); `tostring(err)` gives one line.",
    fields = {
      { "name", "string", "the class: \"InteractionRequiredAuthError\", \"ServerError\", \"ClientAuthError\", \"ClientConfigurationError\", \"BrowserAuthError\", \"ManagedIdentityError\", \"TokenValidationError\"" },
      { "error_code", "string", "MSAL's code (docs/errors.md)" }, { "error_message", "string" },
      { "suberror?", "string" }, { "claims?", "string", "a claims challenge to pass as the next request's `claims`" },
      { "correlation_id?", "string" }, { "trace_id?", "string" }, { "timestamp?", "string" },
      { "error_no?", "string", "the server's first `error_codes` entry (AADSTS number)" },
      { "status?", "integer", "HTTP status of the answer" },
      { "source?", "string", "ManagedIdentityError: the managed identity source" },
      { "attempts?", "{name: string, error: msal.Error}[]", "credential_chain: each step's failure" },
    },
    methods = { "---@return string\nfunction Error:tostring() end" } },
  { name = "msal.DeviceCodeInfo", desc = "What a request's `device_code_callback` receives (RFC 8628's names).",
    fields = {
      { "user_code", "string" }, { "device_code", "string" }, { "verification_uri", "string" },
      { "verification_uri_complete?", "string" }, { "expires_in", "number" }, { "interval", "number" },
      { "message", "string", "the sentence to show the user" },
    } },
  { name = "msal.CachePlugin", desc = "A cache plugin (MSAL's ICachePlugin): `cache = plugin`.",
    fields = {
      { "before_cache_access", "fun(ctx: msal.TokenCacheContext)|fun(self: msal.CachePlugin, ctx: msal.TokenCacheContext)" },
      { "after_cache_access", "fun(ctx: msal.TokenCacheContext)|fun(self: msal.CachePlugin, ctx: msal.TokenCacheContext)" },
    } },
  { name = "msal.TokenCacheContext", desc = "The argument of a cache plugin's hooks.",
    fields = {
      { "token_cache", "msal.TokenCache" }, { "cache_has_changed", "boolean" }, { "will_write", "boolean" },
      { "partition_key?", "string" },
    } },
  { name = "msal.RedirectStart", desc = "What acquire_token_redirect/login_redirect resolve to.",
    fields = { { "url", "string", "the authorize URL to send the user to" },
      { "state", "string", "the state handle_redirect_promise will check" } } },
  { name = "msal.EventMessage", desc = "What an event callback receives (msal-browser's EventMessage in snake_case).",
    fields = {
      { "event_type", "string", "an msal.EventType value" },
      { "interaction_type?", "string", "\"silent\", \"popup\", \"redirect\", \"device_code\"…" },
      { "payload?", "any", "the result or account, by event" }, { "error?", "msal.Error" },
      { "timestamp", "number" }, { "correlation_id?", "string" },
    } },
  { name = "msal.LogoutResult", desc = "What logout_redirect/logout_popup resolve to.",
    fields = { { "url", "string", "the end-session URL" } } },
  { name = "msal.JwtClaims", desc = "A verified token's claims (the JWT's payload); these are the usual ones.",
    fields = {
      { "iss", "string" }, { "aud", "string" }, { "exp", "number" }, { "nbf?", "number" }, { "iat?", "number" },
      { "sub?", "string" }, { "oid?", "string" }, { "tid?", "string" }, { "scp?", "string" }, { "roles?", "string[]" },
      { "appid?", "string" }, { "azp?", "string" }, { "[string]", "any" },
    } },
}

-- Classes whose fields come from a checker's key table (`key -> "type"` or
-- `key -> true`), by the path gen-types reads them from.
M.checked = {
  { name = "msal.Configuration", from = "msal.config", path = { "SCHEMA" },
    desc = "PublicClientApplication.new's and ConfidentialClientApplication.new's configuration.",
    required = { auth = true } },
  { name = "msal.AuthOptions", from = "msal.config", path = { "SCHEMA", "auth" }, required = { client_id = true },
    desc = "`auth`: the application's registration; the credential keys are for confidential clients only." },
  { name = "msal.OIDCOptions", from = "msal.config", path = { "SCHEMA", "auth", "oidc_options" }, desc = "`auth.oidc_options`." },
  { name = "msal.SystemOptions", from = "msal.config", path = { "SCHEMA", "system" }, desc = "`system`: the host's hooks." },
  { name = "msal.FileCacheOptions", from = "msal.config", path = { "CACHE_KEYS", "file" },
    desc = "`cache = {location = \"file\", …}`: the MSAL cache file shared with msal-node, msal-python, the Azure CLI." },
  { name = "msal.RedisCacheOptions", from = "msal.config", path = { "CACHE_KEYS", "redis" },
    desc = "`cache = {location = \"redis\", …}`: a token cache shared by processes and hosts." },
  { name = "msal.MemoryCacheOptions", from = "msal.config", path = { "CACHE_KEYS", "memory" }, desc = "`cache = {location = \"memory\"}` (the default)." },
  { name = "msal.ManagedIdentityConfiguration", from = "msal.managed_identity.config", path = { "SCHEMA" },
    desc = "ManagedIdentityApplication.new's configuration." },
  { name = "msal.ManagedIdentityId", from = "msal.managed_identity.config", path = { "SCHEMA", "managed_identity" },
    desc = "`managed_identity`: one user-assigned id, or none for the system-assigned identity." },
  { name = "msal.ManagedIdentitySystemOptions", from = "msal.managed_identity.config", path = { "SCHEMA", "system" },
    desc = "A ManagedIdentityApplication's `system`." },
  { name = "msal.AccountFilter", from = "msal.cache.account_filter", path = { "KEYS" },
    desc = "get_account/get_all_accounts's filter (msal-browser's AccountFilter in snake_case)." },
  { name = "msal.JwtOptions", from = "msal.jwt", path = { "OPTIONS" }, doc = "msal.jwt.verifier", required = { audience = true },
    desc = "msal.jwt.verify's and msal.jwt.verifier's options." },
  { name = "msal.CredentialChainOptions", from = "msal.credential_chain", path = { "OPTIONS" },
    desc = "msal.credential_chain's options." },
}

-- The request classes, by request_options.METHODS key (a key missing here
-- gets a class named after it). Keys with the same set share a class.
M.requests = {
  acquire_token_silent = "msal.SilentRequest", acquire_token_popup = "msal.PopupRequest",
  login_popup = "msal.PopupRequest", acquire_token_redirect = "msal.RedirectRequest",
  login_redirect = "msal.RedirectRequest", acquire_token_by_device_code = "msal.DeviceCodeRequest",
  logout_redirect = "msal.EndSessionRequest", logout_popup = "msal.EndSessionPopupRequest",
  acquire_token_by_refresh_token = "msal.RefreshTokenRequest", get_auth_code_url = "msal.AuthorizationUrlRequest",
  acquire_token_by_code = "msal.AuthorizationCodeRequest", ["acquire_token managed_identity"] = "msal.ManagedIdentityRequest",
  acquire_token_by_client_credential = "msal.ClientCredentialRequest",
  acquire_token_on_behalf_of = "msal.OnBehalfOfRequest",
  ["acquire_token popup"] = "msal.AcquireTokenPopupRequest", ["acquire_token redirect"] = "msal.AcquireTokenRedirectRequest",
  ["acquire_token device_code"] = "msal.AcquireTokenDeviceCodeRequest",
}

-- Field types finer than the checker's Lua type, by field name (any class).
M.field_types = {
  scopes = "string[]", extra_scopes_to_consent = "string[]", known_authorities = "string[]",
  client_capabilities = "string[]", default_scopes = "string[]", required_scopes = "string[]",
  required_roles = "string[]", allowed_tenants = "string[]", algorithms = "string[]",
  account = "msal.AccountInfo", device_code_callback = "fun(info: msal.DeviceCodeInfo)",
  extra_query_parameters = "table<string, string|number>", extra_body_parameters = "table<string, string|number>",
  token_body_parameters = "table<string, string|number>",
  ["msal.Configuration.cache"] = "msal.MemoryCacheOptions|msal.FileCacheOptions|msal.RedisCacheOptions|msal.CachePlugin|\"memory\"|\"file\"|\"redis\"",
  ["msal.ManagedIdentityConfiguration.cache"] = "msal.MemoryCacheOptions|msal.FileCacheOptions|msal.RedisCacheOptions|msal.CachePlugin|\"memory\"|\"file\"|\"redis\"",
  ["msal.Configuration.auth"] = "msal.AuthOptions", ["msal.Configuration.system"] = "msal.SystemOptions",
  ["msal.AuthOptions.oidc_options"] = "msal.OIDCOptions", ["msal.AuthOptions.protocol_mode"] = "\"aad\"|\"oidc\"",
  ["msal.AuthOptions.client_certificate"] = "{private_key: string, thumbprint?: string, thumbprint_sha256?: string, certificate?: string}",
  ["msal.AuthOptions.client_assertion"] = "string|fun(): string",
  ["msal.ManagedIdentityConfiguration.managed_identity"] = "msal.ManagedIdentityId",
  ["msal.ManagedIdentityConfiguration.system"] = "msal.ManagedIdentitySystemOptions",
  ["msal.SystemOptions.open_browser"] = "fun(url: string): boolean?", ["msal.SystemOptions.clock"] = "fun(): number",
  ["msal.ManagedIdentitySystemOptions.clock"] = "fun(): number", ["msal.ManagedIdentitySystemOptions.env"] = "table<string, string>",
  ["msal.JwtOptions.clock"] = "fun(): number", ["msal.JwtOptions.protocol_mode"] = "\"aad\"|\"oidc\"",
  prompt = "\"login\"|\"none\"|\"consent\"|\"select_account\"|\"create\"|string",
  cache_lookup_policy = "integer", audience = "string|string[]", issuer = "string|string[]", max_age = "integer",
  code_challenge_method = "\"S256\"", partition = "\"account\"|\"app\"",
  -- msal.config.CACHE_KEYS gives names only
  location = "string", path = "string", encrypt = "{key?: string, key_file?: string}", lock = "boolean",
  refresh_lock_wait_ms = "number", url = "string", ttl_slack_s = "number", local_ttl_ms = "number",
  key_prefix = "string", timeout_ms = "number", refresh_token_ttl_s = "number", local_max_partitions = "integer",
  tls = "{ca_file?: string, ca_path?: string, server_name?: string, cert_file?: string, key_file?: string}",
  -- credential_chain.OPTIONS gives names only
  ["msal.CredentialChainOptions.client_id"] = "string", ["msal.CredentialChainOptions.authority"] = "string",
  ["msal.CredentialChainOptions.protocol_mode"] = "\"aad\"|\"oidc\"",
  ["msal.CredentialChainOptions.cache"] = "string|msal.FileCacheOptions|msal.RedisCacheOptions|msal.CachePlugin",
  ["msal.CredentialChainOptions.account"] = "string", ["msal.CredentialChainOptions.exclude"] = "string[]",
  ["msal.CredentialChainOptions.interactive"] = "\"browser\"|\"device_code\"|\"never\"",
  ["msal.CredentialChainOptions.system"] = "msal.SystemOptions",
  ["msal.CredentialChainOptions.env"] = "fun(name: string): string?",
  ["msal.CredentialChainOptions.imds_probe"] = "\"azure\"|\"always\"|\"never\"",
  ["msal.CredentialChainOptions.imds_probe_timeout_ms"] = "number",
  ["msal.CredentialChainOptions.azure_vm_tag_file"] = "string",
  ["msal.MemoryCacheOptions.location"] = "\"memory\"", ["msal.FileCacheOptions.location"] = "\"file\"",
  ["msal.RedisCacheOptions.location"] = "\"redis\"",
}

-- Field descriptions where the checker has none (jwt's come from its LDoc).
M.field_desc = {
  client_id = "the application (client) id", authority = "the authority URL (default https://login.microsoftonline.com/common)",
  redirect_uri = "where the authorize endpoint sends the code (a loopback URL for desktop apps)",
  scopes = "the scopes asked for", claims = "a claims request (JSON), such as a claims challenge",
  correlation_id = "sent as client-request-id", force_refresh = "skip the cached access token",
  account = "the account (app:get_all_accounts())", cache_lookup_policy = "msal.CacheLookupPolicy",
  client_secret = "confidential clients", client_assertion = "a signed JWT, or a function making one",
  token_renewal_offset = "seconds before expiry a cached token counts as expired (300)",
  http_timeout_ms = "per HTTP request (30000)", loopback_timeout = "seconds to wait for the browser (300)",
  transport = "the HTTP transport (msal.transport.curl by default)", logger = "`{level, pii, callback}`",
  validate_id_token_signature = "check the id token against the issuer's keys", path = "the cache file",
  url = "redis://[user:pass@]host:port/db or rediss://", partition = "one cache entry set per account or per app",
  interactive = "the last step's kind (default: browser when there is a display)",
  ["msal.CredentialChainOptions.account"] = "the username to pick from the shared cache",
  ["msal.CredentialChainOptions.cache"] = "a cache file path, a cache configuration or a plugin (default: the shared cache file)",
  ["msal.CredentialChainOptions.env"] = "a getenv (default os.getenv)",
  ["msal.CredentialChainOptions.imds_probe"] = "when to probe IMDS: on an Azure VM (default, or MSAL_IMDS_PROBE), always, never",
  ["msal.CredentialChainOptions.imds_probe_timeout_ms"] = "how long the IMDS probe waits (default 1000)",
  ["msal.CredentialChainOptions.azure_vm_tag_file"] = "the SMBIOS chassis asset tag file that marks an Azure VM",
  exclude = "steps to skip: environment, managed_identity, shared_cache, interactive",
}

-- Param and return types finer than the LDoc's `table`/`Promise`, by the
-- public_api name; `req` params of the methods named in M.requests are
-- typed by it without a line here.
M.params = {
  ["msal.PublicClientApplication.new"] = { cfg = "msal.Configuration" },
  ["msal.ConfidentialClientApplication.new"] = { cfg = "msal.Configuration" },
  ["msal.ManagedIdentityApplication.new"] = { cfg = "msal.ManagedIdentityConfiguration" },
  ["msal.nvim.PublicClientApplication.new"] = { cfg = "msal.Configuration" },
  ["msal.nvim.ManagedIdentityApplication.new"] = { cfg = "msal.ManagedIdentityConfiguration" },
  ["msal.openresty.PublicClientApplication.new"] = { cfg = "msal.Configuration" },
  ["msal.openresty.ConfidentialClientApplication.new"] = { cfg = "msal.Configuration" },
  ["msal.openresty.ManagedIdentityApplication.new"] = { cfg = "msal.ManagedIdentityConfiguration" },
  ["msal.credential_chain"] = { opts = "msal.CredentialChainOptions" },
  ["msal.credential_chain.new"] = { opts = "msal.CredentialChainOptions" },
  ["msal.jwt.verify"] = { opts = "msal.JwtOptions" }, ["msal.jwt.verifier"] = { opts = "msal.JwtOptions" },
  ["msal.openresty.jwt.verify"] = { opts = "msal.JwtOptions" }, ["msal.openresty.jwt.verifier"] = { opts = "msal.JwtOptions" },
  ["msal.nvim.acquire_token_by_device_code"] = { app = "msal.PublicClientApplication", req = "msal.DeviceCodeRequest" },
  ["CredentialChain:get_token"] = { req = "{scopes: string[], claims?: string, force_refresh?: boolean, correlation_id?: string}" },
  ["msal.nvim.device_code_callback"] = { info = "msal.DeviceCodeInfo" },
  ["PublicClientApplication:acquire_token"] = {
    req = "msal.AcquireTokenPopupRequest|msal.AcquireTokenRedirectRequest|msal.AcquireTokenDeviceCodeRequest",
    opts = "{interaction: \"popup\"|\"device_code\"|\"redirect\"}" },
  ["PublicClientApplication:add_event_callback"] = { fn = "fun(event: msal.EventMessage)", event_types = "string[]" },
  ["ConfidentialClientApplication:add_event_callback"] = { fn = "fun(event: msal.EventMessage)", event_types = "string[]" },
  ["PublicClientApplication:on"] = { fn = "fun(event: msal.EventMessage)" },
  ["ConfidentialClientApplication:on"] = { fn = "fun(event: msal.EventMessage)" },
  ["msal.openresty.redis_cache"] = { opts = "msal.RedisCacheOptions" },
  ["TokenCache:own"] = { acct = "msal.AccountInfo" }, ["TokenCache:owns"] = { acct = "msal.AccountInfo" },
  ["TokenCache:account_for"] = { acct = "msal.AccountInfo" },
  ["PublicClientApplication:get_account"] = { filter = "msal.AccountFilter" },
  ["PublicClientApplication:get_all_accounts"] = { filter = "msal.AccountFilter" },
  ["ConfidentialClientApplication:get_account"] = { filter = "msal.AccountFilter" },
  ["ConfidentialClientApplication:get_all_accounts"] = { filter = "msal.AccountFilter" },
  ["TokenCache:find_accounts"] = { filter = "msal.AccountFilter" },
  ["PublicClientApplication:set_active_account"] = { account = "msal.AccountInfo" },
  ["PublicClientApplication:remove_account"] = { account = "msal.AccountInfo" },
  ["ConfidentialClientApplication:remove_account"] = { account = "msal.AccountInfo" },
  ["TokenCache:remove_account"] = { acct = "msal.AccountInfo" },
  ["TokenCache:set_active_account"] = { acct = "msal.AccountInfo" },
}

-- Return types: a list by position. "X" for a Promise return means a
-- promise resolving to X (a class `msal.Promise<X>` is made for it).
M.returns = {
  ["msal.PublicClientApplication.new"] = { "msal.PublicClientApplication" },
  ["msal.nvim.PublicClientApplication.new"] = { "msal.PublicClientApplication" },
  ["msal.openresty.PublicClientApplication.new"] = { "msal.PublicClientApplication" },
  ["msal.openresty.ConfidentialClientApplication.new"] = { "msal.ConfidentialClientApplication" },
  ["msal.ConfidentialClientApplication.new"] = { "msal.ConfidentialClientApplication" },
  ["msal.ManagedIdentityApplication.new"] = { "msal.ManagedIdentityApplication" },
  ["msal.nvim.ManagedIdentityApplication.new"] = { "msal.ManagedIdentityApplication" },
  ["msal.openresty.ManagedIdentityApplication.new"] = { "msal.ManagedIdentityApplication" },
  ["msal.credential_chain"] = { "msal.CredentialChain" }, ["msal.credential_chain.new"] = { "msal.CredentialChain" },
  ["msal.jwt.verifier"] = { "msal.JwtVerifier" }, ["msal.openresty.jwt.verifier"] = { "msal.JwtVerifier" },
  ["msal.jwt.verify"] = { "msal.JwtClaims" }, ["msal.openresty.jwt.verify"] = { "msal.JwtClaims" },
  ["JwtVerifier:verify"] = { "msal.JwtClaims" },
  ["CredentialChain:get_token"] = { "msal.CredentialChainResult" },
  ["PublicClientApplication:get_auth_code_url"] = { "string" },
  ["ConfidentialClientApplication:get_auth_code_url"] = { "string" },
  ["PublicClientApplication:logout_redirect"] = { "msal.LogoutResult" },
  ["PublicClientApplication:logout_popup"] = { "msal.LogoutResult" },
  ["PublicClientApplication:acquire_token_redirect"] = { "msal.RedirectStart" },
  ["PublicClientApplication:login_redirect"] = { "msal.RedirectStart" },
  ["PublicClientApplication:login_popup"] = { "msal.AuthenticationResult" },
  ["PublicClientApplication:acquire_token"] = { "msal.AuthenticationResult|msal.RedirectStart" },
  ["PublicClientApplication:get_account"] = { "msal.AccountInfo" },
  ["ConfidentialClientApplication:get_account"] = { "msal.AccountInfo" },
  ["PublicClientApplication:get_active_account"] = { "msal.AccountInfo" },
  ["TokenCache:get_active_account"] = { "msal.AccountInfo" },
  ["TokenCache:get_account_by_home_id"] = { "msal.AccountInfo" },
  ["TokenCache:get_account_by_local_id"] = { "msal.AccountInfo" },
  ["TokenCache:get_account_by_username"] = { "msal.AccountInfo" },
  ["TokenCache:account_at"] = { "msal.AccountInfo" }, ["TokenCache:own"] = { "msal.AccountInfo" },
  ["msal.credential_chain.ensure_cache_dir"] = { nil, "msal.Error" }, ["TokenCache:account_for"] = { "msal.AccountInfo" },
  ["msal.pkce"] = { "{verifier: string, challenge: string, method: \"S256\"}" },
  ["PublicClientApplication:handle_redirect_promise"] = { "msal.AuthenticationResult?" },
  ["PublicClientApplication:get_token_cache"] = { "msal.TokenCache" },
  ["ConfidentialClientApplication:get_token_cache"] = { "msal.TokenCache" },
  ["ManagedIdentityApplication:get_token_cache"] = { "msal.TokenCache" },
  ["PublicClientApplication:get_all_accounts"] = { "msal.AccountInfo[]" },
  ["ConfidentialClientApplication:get_all_accounts"] = { "msal.AccountInfo[]" },
  ["TokenCache:get_all_accounts"] = { "msal.AccountInfo[]" },
  ["TokenCache:find_accounts"] = { "msal.AccountInfo[]" },
  ["msal.nvim.acquire_token_by_device_code"] = { "msal.AuthenticationResult" },
  ["msal.openresty.redis_cache"] = { "msal.CachePlugin" }, ["msal.openresty.shared_dict_cache"] = { "msal.CachePlugin" },
  ["msal.BrowserAuthError"] = { "msal.Error" }, ["msal.ClientAuthError"] = { "msal.Error" },
  ["msal.ClientConfigurationError"] = { "msal.Error" }, ["msal.InteractionRequiredAuthError"] = { "msal.Error" },
  ["msal.ManagedIdentityError"] = { "msal.Error" }, ["msal.ServerError"] = { "msal.Error" },
  ["msal.TokenValidationError"] = { "msal.Error" },
}
-- Every app method that returns a promise of a token resolves to an
-- AuthenticationResult unless M.returns says otherwise.
M.token_methods = "^acquire_token"
M.app_classes = { PublicClientApplication = true, ConfidentialClientApplication = true, ManagedIdentityApplication = true }

return M

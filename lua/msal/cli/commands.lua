--- The commands of `msal`, their options and their help text: the one
-- source the argument parser, `--help` and the man page (man/msal.1) are
-- made from.
--
-- An option is `{name, arg = "VALUE" (nil: a flag), short, repeatable,
-- choices, env (its environment variable), config (its key in the
-- configuration file), help}`.
-- @module msal.cli.commands
local commands = {}

local O = {
  help = { "help", short = "h", help = "show this help and exit" },
  verbose = { "verbose", short = "v", help = "log what msal does, on stderr (never tokens; no usernames)" },
  color = { "color", arg = "WHEN", choices = { "auto", "always", "never" },
    help = "color the messages on stderr: auto (default: when stderr is a terminal and NO_COLOR is not set), " ..
      "always or never" },
  client_id = { "client-id", arg = "ID", env = "MSAL_CLIENT_ID", config = "client_id",
    help = "the application (client) id; default 04b07795-8ddb-461a-bbee-02f9e1bf7b46, the Azure CLI's public " ..
      "client, whose tokens the Azure CLI's cache holds" },
  tenant = { "tenant", arg = "TENANT", env = "MSAL_TENANT", config = "tenant",
    help = "the tenant (a GUID, a domain, organizations, common or consumers) on the authority's host" },
  authority = { "authority", arg = "URL", env = "MSAL_AUTHORITY", config = "authority",
    help = "the authority URL; default https://login.microsoftonline.com/organizations" },
  protocol_mode = { "protocol-mode", arg = "MODE", choices = { "aad", "oidc" }, env = "MSAL_PROTOCOL_MODE",
    config = "protocol_mode", help = "aad (Microsoft Entra, the default) or oidc (any OpenID provider)" },
  cache = { "cache", arg = "PATH", env = "MSAL_CACHE", config = "cache",
    help = "the token cache file (MSAL's unified format); default $XDG_CACHE_HOME/msal/token_cache.json, " ..
      "else ~/.cache/msal/token_cache.json" },
  azure_cli_cache = { "azure-cli-cache", config = "azure_cli_cache",
    help = "use the Azure CLI's cache, ~/.azure/msal_token_cache.json" },
  config = { "config", arg = "PATH", env = "MSAL_CONFIG",
    help = "the configuration file; default $XDG_CONFIG_HOME/msal/config.json, else ~/.config/msal/config.json" },
  scope = { "scope", short = "s", arg = "SCOPE", repeatable = true, env = "MSAL_SCOPE", config = "scope",
    help = "a scope the token is for (repeat for more; MSAL_SCOPE takes a list separated by spaces or commas)" },
  -- git-credential's: the environment's and the file's scope are for
  -- `msal token`; git's own settings choose per host
  git_scope = { "scope", short = "s", arg = "SCOPE", repeatable = true,
    help = "a scope the token is for (repeat for more); default 499b84ac-1321-427f-aa17-267ca6975798/.default " ..
      "(Azure DevOps), else git's msal.scope setting" },
  account = { "account", arg = "USER", env = "MSAL_ACCOUNT", config = "account",
    help = "the cached account to use, by username; needed when the cache holds several" },
  interactive = { "interactive", arg = "HOW", choices = { "browser", "device-code", "never" },
    env = "MSAL_INTERACTIVE", config = "interactive",
    help = "how to sign in when the cache cannot answer: browser (default when there is a display: $DISPLAY, " ..
      "$WAYLAND_DISPLAY or macOS), device-code (default otherwise) or never (default when CI is set)" },
  credential = { "credential", arg = "NAME", repeatable = true,
    choices = { "environment", "managed_identity", "shared_cache", "interactive" },
    help = "try only these steps of the credential chain (repeat for more); default all, in the order " ..
      "environment, managed_identity, shared_cache, interactive" },
}
commands.OPTIONS = O

-- The options about where tokens come from.
local SOURCE = { O.client_id, O.tenant, O.authority, O.protocol_mode, O.cache, O.azure_cli_cache, O.config }
local GENERAL = { O.verbose, O.color, O.help }

local function list(...)
  local out = {}
  for _, group in ipairs({ ... }) do
    for _, o in ipairs(group) do out[#out + 1] = o end
  end
  return out
end

--- The commands, in the order the help lists them.
commands.LIST = {
  {
    name = "token", module = "token",
    synopsis = "--scope SCOPE [--scope SCOPE...] [--account USER] [--output token|json|header|env] " ..
      "[--interactive browser|device-code|never] [options]",
    summary = "print an access token",
    description = {
      "Prints an access token for the scopes on stdout, and nothing else. The token comes from the first step of " ..
        "the credential chain that can give one: a service principal from the environment (AZURE_CLIENT_ID, " ..
        "AZURE_TENANT_ID and AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE), " ..
        "a managed identity, the shared token cache (silently: a cached token, else its refresh token), then an " ..
        "interactive sign-in whose tokens are saved in the cache.",
      "The environment step gets an app token for its service principal (scope <resource>/.default). The " ..
        "managed-identity step finds App Service, Azure Arc, Service Fabric and Cloud Shell by their variables, " ..
        "and probes IMDS (one request, 1 s) on an Azure VM or with AZURE_POD_IDENTITY_AUTHORITY_HOST set. A step " ..
        "that cannot be used says why (with --verbose) and the chain moves on.",
      "The device code's message and a countdown go to stderr.",
    },
    options = list({ O.scope, O.account,
      { "output", short = "o", arg = "FORMAT", choices = { "token", "json", "header", "env" }, env = "MSAL_OUTPUT",
        config = "output", help = "token (the token alone, the default), json (access_token, expires_on, scopes, " ..
          "token_type, account), header (\"Authorization: Bearer ...\", for curl -H @-) or env " ..
          "(MSAL_ACCESS_TOKEN=... lines, for eval or an env file)" },
      O.interactive, O.credential }, SOURCE, GENERAL),
    positionals = { min = 0, max = 0 },
    examples = {
      "msal token -s User.Read -o header | curl -H @- https://graph.microsoft.com/v1.0/me",
      "TOKEN=$(msal token --scope https://management.azure.com/.default --azure-cli-cache)",
      "eval \"$(msal token --scope api://my-api/.default --output env)\"",
    },
  },
  {
    name = "accounts", module = "accounts",
    synopsis = "[--output text|json] [options]",
    summary = "list the accounts in the token cache",
    description = {
      "Lists the cache's accounts, one a line: username, home account id and tenant, separated by tabs; " ..
        "or a JSON array with --output json.",
    },
    options = list({ { "output", short = "o", arg = "FORMAT", choices = { "text", "json" }, help = "text (default) or json" } },
      SOURCE, GENERAL),
    positionals = { min = 0, max = 0 },
  },
  {
    name = "logout", module = "logout",
    synopsis = "[--account USER | --all] [options]",
    summary = "remove an account and its tokens from the cache",
    description = {
      "Removes the account named by --account (or the cache's only account) and all its tokens from the cache; " ..
        "--all removes every account. Nothing is sent to the authority.",
    },
    options = list({ O.account, { "all", help = "remove every account" } }, SOURCE, GENERAL),
    positionals = { min = 0, max = 0 },
  },
  {
    name = "decode", module = "decode",
    synopsis = "[TOKEN | -]",
    summary = "show a JWT's header and claims (no verification)",
    description = {
      "Prints the header and the claims of a JSON Web Token as JSON, for debugging; the token is read from the " ..
        "argument, or from stdin when it is - or missing. The signature is NOT verified: never trust what this shows.",
    },
    options = GENERAL,
    positionals = { min = 0, max = 1 },
  },
  {
    name = "git-credential", module = "git_credential",
    synopsis = "[--scope SCOPE] [options] get|store|erase",
    summary = "a git credential helper (Azure DevOps over HTTPS)",
    description = {
      "Speaks git's credential-helper protocol: for get it reads protocol=... and host=... lines on stdin and " ..
        "answers username=... and password=<access token> for an https remote; store does nothing; erase drops " ..
        "the cached access token git says was refused, so the next get refreshes it.",
      "The scope defaults to Azure DevOps' (499b84ac-1321-427f-aa17-267ca6975798/.default); --scope, or git's " ..
        "msal.scope setting (matched against the remote's URL, so per host), changes it. git's msal.clientId, " ..
        "msal.tenant, msal.authority and msal.account settings apply too (below the options, above the " ..
        "environment).",
      "Set it up with: git config --global credential.https://dev.azure.com.helper \"!msal git-credential\"",
    },
    options = list({ O.git_scope, O.account, O.interactive }, SOURCE, GENERAL),
    positionals = { min = 1, max = 1, choices = { "get", "store", "erase" } },
  },
}

commands.BY_NAME = {}
for _, c in ipairs(commands.LIST) do commands.BY_NAME[c.name] = c end

--- Text about the environment, the configuration file and precedence.
commands.ENVIRONMENT = {
  { "MSAL_CLIENT_ID, MSAL_TENANT, MSAL_AUTHORITY, MSAL_PROTOCOL_MODE, MSAL_CACHE, MSAL_SCOPE, MSAL_ACCOUNT, " ..
      "MSAL_OUTPUT, MSAL_INTERACTIVE, MSAL_CONFIG", "the options of the same names" },
  { "CI", "when set (and not 0 or false), --interactive defaults to never" },
  { "DISPLAY, WAYLAND_DISPLAY", "when one is set, --interactive defaults to browser" },
  { "NO_COLOR", "when set and not empty, no colors (unless --color always)" },
  { "XDG_CACHE_HOME, XDG_CONFIG_HOME, HOME", "where the default cache and configuration files are" },
  { "AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, " ..
      "AZURE_FEDERATED_TOKEN_FILE", "the environment step of the credential chain" },
  { "IDENTITY_ENDPOINT, IDENTITY_HEADER, IMDS_ENDPOINT, MSI_ENDPOINT, AZURE_POD_IDENTITY_AUTHORITY_HOST",
      "the managed-identity step" },
  { "MSAL_IMDS_PROBE", "azure (the default: probe IMDS on an Azure VM only), always or never" },
  { "MSAL_BYTECODE_CACHE", "0 (or off, false): do not keep msal's compiled modules between runs" },
}

commands.PRECEDENCE = "Settings come from the options, then the environment variables, then the configuration " ..
  "file, then the defaults. --tenant replaces the tenant of an authority given at a lower level; an authority " ..
  "given at a higher level than a tenant wins. The configuration file is a JSON object whose keys are the long " ..
  "options' names with underscores: client_id, tenant, authority, protocol_mode, cache, azure_cli_cache, scope " ..
  "(a string or a list), account, output, interactive. It is read as data, never run."

return commands

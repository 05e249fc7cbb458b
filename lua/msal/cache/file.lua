--- The file cache: MSAL's unified JSON in one file that msal-node (with
-- msal-node-extensions' file persistence), msal-python and the Azure CLI can
-- share. A cache plugin (`before_cache_access` / `after_cache_access`):
-- reads re-load the file only when it changed, without the lock (an empty
-- or unreadable file is read again under it: other libraries rewrite the
-- file in place); writes take the lock file msal-node-extensions uses
-- (`<path>.lockfile`, with stale-lock recovery), re-read what others wrote,
-- and replace the file atomically (mode 0600). Optionally encrypted at rest
-- with AES-256-GCM; a key file must be readable by its owner only.
--
-- Processes that share the file also share refreshes: before a token
-- request, `lock_refresh` takes a lock file for that request beside the
-- cache (same PID and staleness rules as the cache's lock), so of eight
-- processes needing the same refresh one sends it and the others find its
-- token in the file. With rotating refresh tokens the losers of a race would
-- otherwise hold a redeemed refresh token and fail with invalid_grant.
-- @module msal.cache.file
local core = require("msal.core")
local errors = require("msal.errors")
local refresh_lock = require("msal.cache.refresh_lock")

local fileio = core.fileio

local file = {}

local Plugin = {}
Plugin.__index = Plugin

-- Encrypted files start with this, then AES-256-GCM's iv, ciphertext, tag.
local MAGIC = "LUAMSAL-AES256GCM-1\n"
local AAD = "lua-msal token cache"

local function fail(code, msg)
  error(errors.ClientAuthError(code, msg), 0)
end

-- A key is 32 raw bytes or 64 hex digits.
local function parse_key(k, where)
  if type(k) ~= "string" then fail("invalid_cache_key", where .. " must be a string") end
  k = k:gsub("^%s+", ""):gsub("%s+$", "")
  if #k == 64 and k:match("^%x+$") then
    return (k:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
  end
  if #k == 32 then return k end
  fail("invalid_cache_key", where .. " must be 32 bytes or 64 hex digits")
end

local function load_key(enc)
  if enc.key ~= nil then return parse_key(enc.key, "cache.encrypt.key") end
  if type(enc.key_file) ~= "string" then fail("invalid_cache_key", "cache.encrypt needs key or key_file") end
  local ok, err = fileio.check_private(enc.key_file)
  if not ok then fail("cache_file_insecure", err) end
  local content, st = fileio.read(enc.key_file)
  if not content then fail("cache_io_error", "cannot read the cache key file: " .. tostring(st)) end
  -- check_private refuses files others can write; a key must not be
  -- readable by them either (mode % 64: the group and other bits)
  if st.mode % 64 ~= 0 then
    fail("cache_file_insecure", ("cache key file %s can be read by others (mode %04o); make it 0600")
      :format(enc.key_file, st.mode))
  end
  return parse_key(content, "the key in " .. enc.key_file)
end

--- Makes a file cache plugin.
-- @tparam table opts `{path, encrypt = {key = … | key_file = …},
--   lock = {retries, retry_delay_ms, stale_after_ms}, refresh_lock_wait_ms}`;
--   `refresh_lock_wait_ms` (default 10000) bounds how long a process waits
--   for another one's refresh of the same token before it refreshes itself;
--   0 turns single flight across processes off
function file.new(opts)
  if type(opts) ~= "table" or type(opts.path) ~= "string" or opts.path == "" then
    error(errors.ClientConfigurationError("invalid_cache_location", "cache.path must name the cache file"), 2)
  end
  local key
  if opts.encrypt ~= nil then
    if type(opts.encrypt) ~= "table" then
      error(errors.ClientConfigurationError("invalid_configuration", "cache.encrypt must be a table"), 2)
    end
    local ok, k = pcall(load_key, opts.encrypt)
    if not ok then error(k, 2) end
    key = k
  end
  -- stale_after_ms only concerns a lock file without a PID whose flock is
  -- free: msal-node's or an older lua-msal's, killed between creating it
  -- and writing its PID (lua-msal's lock files now appear with their PID,
  -- except on file systems without hard links). Shorter than the retries'
  -- span, so writers recover such a lock instead of failing.
  local lock = opts.lock or {}
  local wait = opts.refresh_lock_wait_ms
  if wait == nil then wait = 10000 end
  if type(wait) ~= "number" or not (wait >= 0 and wait <= 86400000) then
    error(errors.ClientConfigurationError("invalid_configuration",
      "cache.refresh_lock_wait_ms must be a number of milliseconds from 0 to 86400000"), 2)
  end
  -- up to 30 s of waiting (msal-node-extensions waits 50): the lock is a
  -- polled one, so under contention a writer may lose several rounds
  return setmetatable({
    path = opts.path, lockpath = opts.path .. ".lockfile", key = key,
    lock_opts = { retries = lock.retries or 600, retry_delay_ms = lock.retry_delay_ms or 50,
      stale_after_ms = lock.stale_after_ms or 3000 },
    refresh_lock_wait_ms = wait,
    synced = nil, held = nil,
  }, Plugin)
end

-- The file's identity: a change in any part means someone wrote it.
local function signature(st)
  return table.concat({ st.dev, st.ino, st.size, st.mtime_sec, st.mtime_nsec }, ":")
end

function Plugin:decode(content)
  if not self.key then return content end
  -- lua-msal replaces an encrypted file whole, never empty: an empty one
  -- was truncated by something else, and reading it as an empty cache
  -- would let the next write replace what may yet be recovered
  if content == "" then
    fail("cache_decryption_failed", "the encrypted cache file " .. self.path
      .. " is empty: it was truncated; restore it or remove it")
  end
  if content:sub(1, #MAGIC) ~= MAGIC then
    fail("cache_decryption_failed", "the cache file " .. self.path .. " is not encrypted with lua-msal's envelope")
  end
  local plain = core.crypto.aes256gcm_open(self.key, content:sub(#MAGIC + 1), AAD)
  if not plain then
    fail("cache_decryption_failed", "the cache file " .. self.path .. " cannot be decrypted: wrong key or a damaged file")
  end
  return plain
end

function Plugin:encode(text)
  if not self.key then return text end
  return MAGIC .. assert(core.crypto.aes256gcm_seal(self.key, text, AAD))
end

-- Decodes content and loads it into the store: true, or nil and the error.
local function load_content(self, tc, content)
  local ok, plain = pcall(self.decode, self, content)
  if not ok then return nil, plain end
  local loaded, err = tc.store:load(plain)
  if not loaded then return nil, require("msal.cache").error_from_store(err) end
  return true
end

--- Loads the file into the token cache if it changed since the last sync.
function Plugin:sync(tc)
  local st, err, code = fileio.stat(self.path)
  if not st then
    if code ~= "ENOENT" then fail("cache_io_error", "cannot read the cache file: " .. tostring(err)) end
    -- the first write creates the file here: its directory must be as safe
    -- as for an existing file (checked again at each write while it is
    -- absent; a missing directory is the write's own error)
    if self.synced ~= "absent" or self.held then
      local ok, cerr, ccode = fileio.check_private(self.path)
      if not ok and ccode ~= "ENOENT" then fail("cache_file_insecure", cerr) end
    end
    if self.synced ~= "absent" then
      if self.synced ~= nil then tc.store:load("") end -- it was deleted: so are its tokens
      self.synced = "absent"
    end
    return
  end
  if signature(st) == self.synced then return end
  local ok
  ok, err = fileio.check_private(self.path)
  if not ok then fail("cache_file_insecure", err) end
  local content
  -- a plain file stays in C: the store parses it where it was read
  content, st, code = fileio.read(self.path, self.key and "string" or "bytes")
  if not content then
    if code == "ENOENT" then return self:sync(tc) end -- removed since the stat
    fail("cache_io_error", "cannot read the cache file: " .. tostring(st))
  end
  local loaded, lerr
  if #content > 0 or self.held then loaded, lerr = load_content(self, tc, content) end
  if not loaded and not self.held then
    -- msal-node-extensions and msal-python write the file in place
    -- (truncate, then write) while holding the lock: read without it, an
    -- empty or broken file may be one half written. Look again under the
    -- lock, where it is whole; only then is it really empty or broken.
    local lock
    lock, err = fileio.lock(self.lockpath, self.lock_opts)
    if not lock then fail("cache_lock_timeout", "cannot lock the cache file: " .. tostring(err)) end
    self.held = lock
    ok, err = pcall(self.sync, self, tc)
    self.held = nil
    lock:unlock()
    if not ok then error(err, 0) end
    return
  end
  if not loaded then error(lerr, 0) end
  self.synced = signature(st)
end

--- Before the cache is read or written: for a write, take the lock; then
-- re-load the file if another process changed it.
function Plugin:before_cache_access(ctx)
  if ctx.will_write then
    local lock, err = fileio.lock(self.lockpath, self.lock_opts)
    if not lock then fail("cache_lock_timeout", "cannot lock the cache file: " .. tostring(err)) end
    self.held = lock
  end
  local ok, err = pcall(self.sync, self, ctx.token_cache)
  if not ok then
    if self.held then self.held:unlock(); self.held = nil end
    error(err, 0)
  end
end

--- After the cache was used: if it changed, write it (atomically, 0600)
-- while still holding the lock; then let the lock go.
function Plugin:after_cache_access(ctx)
  local lock = self.held
  self.held = nil
  local ok, err = true, nil
  if ctx.cache_has_changed then
    if self.key then
      ok, err = fileio.write_atomic(self.path, self:encode(ctx.token_cache:serialize()), 384) -- 0600
    else
      ok, err = ctx.token_cache:write_file(self.path, 384) -- straight from C: no 100 MB Lua string
    end
    if ok then
      local st = fileio.stat(self.path)
      self.synced = st and signature(st) or nil
    end
  end
  if lock then lock:unlock() end
  if not ok then fail("cache_io_error", "cannot write the cache file: " .. tostring(err)) end
end

--- Takes the lock of one refresh (silent.refresh calls it before a token
-- request): a lock file `<path>.refresh-<hash>.lockfile` named by a hash of
-- the request's identity (which holds the account's id: never in a file
-- name), polled by msal.cache.refresh_lock.
-- @tparam string thumbprint the refresh's identity
-- @treturn promise of the unlock function, or of nil when the lock was not
--   had within `refresh_lock_wait_ms` (or cannot be made): then the caller
--   refreshes by itself
function Plugin:lock_refresh(thumbprint)
  local path = self.path .. ".refresh-" .. core.crypto.sha256_hex(thumbprint):sub(1, 32) .. ".lockfile"
  local opts = { retries = 0, retry_delay_ms = 0, stale_after_ms = self.lock_opts.stale_after_ms }
  return refresh_lock.poll(function()
    local lock, _, code = fileio.lock(path, opts)
    if lock then return function() lock:unlock() end end
    -- only a live holder is worth waiting for; a lock file that cannot be
    -- made (read-only directory…) is no reason not to refresh
    if code == "ETIMEDOUT" then return false end
    return nil
  end, self.refresh_lock_wait_ms)
end

return file

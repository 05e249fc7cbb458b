-- Events, like MSAL Angular's broadcast service: subscribe to one type with
-- on() (it returns the unsubscribe function), or to all with
-- add_event_callback; unsubscribe when done.
--   scripts/examples
local msal = require("msal")
local example = require("local_authority")

local app = example.app()

local unsubscribe = app:on(msal.EventType.ACQUIRE_TOKEN_SUCCESS, function(message)
  print(("event: %s (%s), token for %s"):format(message.event_type, message.interaction_type,
    message.payload.account and message.payload.account.username or "?"))
end)
local id = app:add_event_callback(function(message)
  if message.error then print("event: " .. message.event_type .. " " .. message.error.error_code) end
end, { msal.EventType.ACQUIRE_TOKEN_FAILURE })

local request = { scopes = { "User.Read" } }
assert(app:acquire_token(request, { interaction = "popup" }):await())
request.account = app:get_all_accounts()[1]
assert(app:acquire_token(request, { interaction = "popup" }):await())

unsubscribe()
app:remove_event_callback(id)
assert(app:acquire_token_silent(request):await())
print("unsubscribed: the last call printed no event")

--- How `msal` talks to the person signing in, on stderr: the device code's
-- message and a countdown, or the browser being opened. stdout never
-- carries any of it.
-- @module msal.cli.interact
local loop = require("msal.loop")

local interact = {}

local function clock(seconds)
  return ("%d:%02d"):format(math.floor(seconds / 60), seconds % 60)
end

--- A device_code_callback showing the message and a countdown until the
-- code expires: in place each second on a terminal, a line a minute
-- otherwise (a CI log is not a terminal).
-- @tparam table out the run's msal.cli.output writer
-- @treturn function the callback
-- @treturn function stop: ends the countdown (call it when the flow ends)
function interact.device_code(out)
  local timer, deadline, tty, drawn
  local function tick()
    local left = math.max(0, math.ceil((deadline - loop.now_ms()) / 1000))
    local text = "waiting for the sign-in: the code expires in " .. clock(left)
    if tty then
      out:raw("\r\27[K" .. out:paint("dim", "msal: " .. text))
      drawn = true
    else
      out:say(text)
    end
    if left > 0 then timer = loop.set_timeout(tty and 1000 or 60000, tick) end
  end
  local function callback(info)
    out:say(info.message, "bold")
    tty = out.sys.isatty(2)
    deadline = loop.now_ms() + 1000 * (info.expires_in or 900)
    tick()
  end
  local function stop()
    if timer then timer:close() end
    timer = nil
    if drawn then out:raw("\r\27[K") end
    drawn = false
  end
  return callback, stop
end

--- An open_browser that says what it does and shows the URL, for when the
-- browser opens somewhere the user is not (an SSH session's forwarded
-- display); no browser at all is no failure either: the loopback listener
-- waits for the redirect from a browser the user opens by hand.
-- @tparam table out
-- @treturn function open_browser(url)
function interact.open_browser(out)
  return function(url)
    local ok = pcall(require("msal.flows.popup").default_open_browser, url)
    if ok then
      out:say("signing in in the browser; if it did not open, go to: " .. url)
    else
      out:say("no browser could be started: to sign in, go to: " .. url, "bold")
    end
  end
end

return interact

-- Sends DEPTH (first script argument, default 16) requests for the URL's path in one write,
-- as TechEmpower's plaintext test does, and prints the summary as wrk_summary.lua does.
-- wrk counts each response as a request; its latency is measured per batch.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "wrk_summary.lua")

init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, nil)
  end
  batch = table.concat(r)
end

request = function()
  return batch
end

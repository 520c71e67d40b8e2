-- wrk script: POST 5,000-unit bids at random rates (5-35 %) with one key, over the listings
-- named in LISTINGS (comma-separated ids). Driven by bench/wrk.py; by hand:
--   LISTINGS=<id>[,<id>...] KEY=<lender key> wrk -t1 -c64 -d10s -s bench/bids.lua http://127.0.0.1:8000
local ids = {}
for id in string.gmatch(os.getenv("LISTINGS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
local amount = tonumber(os.getenv("AMOUNT") or "5000")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("KEY") or "none")
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local id = ids[math.random(#ids)]
  local body = string.format('{"amount":%d,"min_rate_bps":%d}', amount, math.random(500, 3499))
  return wrk.format(nil, "/v1/listings/" .. id .. "/bids", nil, body)
end

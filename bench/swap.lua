-- wrk script: every request is a new visitor's landing from Google Ads (the heaviest swap:
-- classification, a ring reservation, a session record for the writer).
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["User-Agent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"
wrk.headers["Origin"] = "https://bench.test"
local n = 0
request = function()
  n = n + 1
  local body = '{"site":"bench","visitor":null,"url":"https://bench.test/?gclid=g' .. n ..
    '&utm_source=google&utm_medium=cpc","referrer":"https://www.google.com/"}'
  return wrk.format(nil, nil, nil, body)
end

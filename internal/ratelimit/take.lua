-- Refill a token bucket to the caller's time and take tokens from it, in
-- one atomic step. This is bucket.take in ratelimit.go, operation for
-- operation; change both together.
--
-- KEYS[1]  the bucket, a hash of tokens (millionths of a token) and last
--          (microseconds since the Unix epoch of the last refill)
-- ARGV[1]  now, microseconds since the Unix epoch, from the caller's clock
-- ARGV[2]  rate, tokens per second
-- ARGV[3]  burst, tokens
-- ARGV[4]  n, tokens to take
--
-- Returns {allowed (0 or 1), whole tokens remaining, retry after in
-- microseconds}.

local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3]) * 1000000
local need = tonumber(ARGV[4]) * 1000000

-- wait returns the whole microseconds after which a bucket refilling at
-- rate grows from have to at least want.
local function wait(have, want)
	if have >= want then
		return 0
	end
	local t = math.ceil((want - have) / rate)
	while have + t * rate < want do
		t = t + 1
	end
	return t
end

local tokens, last = capacity, now
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
if state[1] and state[2] then
	tokens, last = tonumber(state[1]), tonumber(state[2])
	if now > last then
		tokens = tokens + (now - last) * rate
		last = now
	end
end
tokens = math.min(tokens, capacity)

local allowed, retry = 0, 0
if tokens < need then
	retry = wait(tokens, need) + last - now
else
	tokens = tokens - need
	allowed = 1
end

-- %.17g writes a double so that it reads back unchanged.
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
	'last', string.format('%.17g', last))
local ms = math.ceil((wait(tokens, capacity) + last - now) / 1000)
redis.call('PEXPIRE', KEYS[1], math.max(ms, 1))

return {allowed, math.floor(tokens / 1000000), retry}

// The shared limiter's server-side code: one Lua body, loaded as a Redis 7 function library
// (FUNCTION LOAD / FCALL) or, where functions are missing, run by EVALSHA / EVAL.
//
// Every call takes the same keys and leading arguments:
//   KEYS: one per bucket, then the adaptive-rate hash, then the pause key (one hash slot: the
//         keys share the `{key}` hash tag).
//   ARGV[1]: "" (time from Redis TIME), or a time in microseconds (tests only);
//   ARGV[2]: the number of buckets nb; ARGV[3..2+3nb]: each bucket's rate, period (µs), burst;
//   then the call's own arguments.
//
// A bucket's state is its debt d and the time t it was written: d / period is how many tokens
// are missing from a full bucket (GCRA's theoretical arrival time, as tokens: TAT = t + d /
// rate), and it drains at `rate × factor / 1000` per microsecond. The key expires when the
// debt would be gone, so an absent key is a full bucket. lib/limit/gcra.cpp does the same
// arithmetic in C++, operation for operation; the tests hold the two together.
#include "redis_script.hpp"

namespace mailroom::limit::detail {

namespace {

// The shared body. Numbers are Lua's doubles: exact for integers below 2^53, which the
// options' check keeps burst × period (µs) under.
constexpr const char* body = R"LUA(
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function factor(key, now)
  local v = redis.call('HMGET', key, 'f', 't', 's', 'i')
  local f = tonumber(v[1])
  if not f then return 1000 end
  local t, s, i = tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
  if now > t then f = f + math.floor((now - t) / i) * s end
  if f > 1000 then f = 1000 end
  return f
end

local function buckets(keys, args, now, f)
  local nb = tonumber(args[2])
  local bs = {}
  for i = 1, nb do
    local o = 3 * i
    local b = {key = keys[i], per = tonumber(args[o + 1])}
    b.rate = tonumber(args[o]) * f / 1000
    b.cap = tonumber(args[o + 2]) * b.per
    local v = redis.call('HMGET', keys[i], 'd', 't')
    local d = tonumber(v[1])
    if not d then
      d = 0
    elseif now > tonumber(v[2]) then
      d = d - (now - tonumber(v[2])) * b.rate
      if d < 0 then d = 0 end
    end
    b.d = d
    bs[i] = b
  end
  return bs, 3 + 3 * nb
end

local function store(b, now)
  if b.d <= 0 then
    redis.call('DEL', b.key)
    return
  end
  redis.call('HSET', b.key, 'd', b.d, 't', now)
  redis.call('PEXPIRE', b.key, math.ceil(b.d / b.rate / 1000) + 1000)
end

-- acquire(min, need, extra, lease_us) -> {granted, extra granted, retry after (µs), factor, now}
-- Grants g, min <= g <= need, tokens from every bucket at once (all or nothing at `min`); then
-- up to `extra` more as a lease that may be used until now + lease_us, charged as if taken
-- then (so a bucket plus the leases out of it never hold more than its burst).
local function acquire(keys, args)
  local nb = tonumber(args[2])
  local now = clock(args[1])
  local f = factor(keys[nb + 1], now)
  local pause = redis.call('PTTL', keys[nb + 2])
  if pause > 0 then return {0, 0, pause * 1000, f, now} end
  local bs, o = buckets(keys, args, now, f)
  local min, need = tonumber(args[o]), tonumber(args[o + 1])
  local extra, lease = tonumber(args[o + 2]), tonumber(args[o + 3])
  local g, wait = need, 0
  for _, b in ipairs(bs) do
    local a = math.floor((b.cap - b.d) / b.per)
    if a < g then g = a end
    local over = b.d + min * b.per - b.cap
    if over > 0 then
      local w = math.ceil(over / b.rate)
      if w > wait then wait = w end
    end
  end
  if g < min then
    if wait < 1 then wait = 1 end
    return {0, 0, wait, f, now}
  end
  local e = extra
  for _, b in ipairs(bs) do
    b.d = b.d + g * b.per
    local a = math.floor((b.cap - math.max(b.d, lease * b.rate)) / b.per)
    if a < e then e = a end
  end
  if e < 0 then e = 0 end
  for _, b in ipairs(bs) do
    if e > 0 then b.d = math.max(b.d, lease * b.rate) + e * b.per end
    if g + e > 0 then store(b, now) end
  end
  return {g, e, 0, f, now}
end

-- refund(n) -> 1: n tokens taken and not used go back to every bucket (never above burst).
local function refund(keys, args)
  local nb = tonumber(args[2])
  local now = clock(args[1])
  local f = factor(keys[nb + 1], now)
  local bs, o = buckets(keys, args, now, f)
  local n = tonumber(args[o])
  for _, b in ipairs(bs) do
    b.d = b.d - n * b.per
    if b.d < 0 then b.d = 0 end
    store(b, now)
  end
  return 1
end

-- signal(kind, cut, floor, step, interval_us, cooldown_us, pause_us, longest) -> {factor, cut}
-- "slow": the shared factor is cut (unless cut within the cooldown) and recovers by `step`
-- every interval without another; "quota": the provider pauses for pause_us and the bucket
-- `longest` (1-based; 0: none) is emptied.
local function signal(keys, args)
  local nb = tonumber(args[2])
  local now = clock(args[1])
  local akey, pkey = keys[nb + 1], keys[nb + 2]
  local f = factor(akey, now)
  local bs, o = buckets(keys, args, now, f)
  local kind = args[o]
  local cut, floor, step = tonumber(args[o + 1]), tonumber(args[o + 2]), tonumber(args[o + 3])
  local interval, cooldown = tonumber(args[o + 4]), tonumber(args[o + 5])
  local pause, longest = tonumber(args[o + 6]), tonumber(args[o + 7])
  -- The debts are brought up to now at the old rate before it changes.
  for _, b in ipairs(bs) do store(b, now) end
  if kind == 'quota' then
    local left = redis.call('PTTL', pkey)
    local ms = math.ceil(pause / 1000)
    if left < ms then redis.call('SET', pkey, '1', 'PX', ms) end
    if longest > 0 then
      local b = bs[longest]
      b.d = b.cap
      store(b, now)
    end
    return {f, 0}
  end
  local last = tonumber(redis.call('HGET', akey, 'c'))
  local did = 0
  if not last or now - last >= cooldown then
    local c = math.floor(f * cut / 1000)
    if c < floor then c = floor end
    if c < f then did = 1 end
    f = c
    last = now
  end
  redis.call('HSET', akey, 'f', f, 't', now, 'c', last, 's', step, 'i', interval)
  redis.call('PEXPIRE', akey, math.ceil((1000 - f) / step + 1) * math.ceil(interval / 1000) + 1000)
  return {f, did}
end
)LUA";

} // namespace

const std::string& script_body()
{
    static const std::string s = body;
    return s;
}

const std::string& function_library()
{
    static const std::string s = std::string("#!lua name=") + library_name + "\n" + body +
                                 "redis.register_function('" + acquire_function +
                                 "', acquire)\n"
                                 "redis.register_function('" +
                                 refund_function +
                                 "', refund)\n"
                                 "redis.register_function('" +
                                 signal_function + "', signal)\n";
    return s;
}

const std::string& eval_script(script_call c)
{
    static const std::string acquire = body + std::string("return acquire(KEYS, ARGV)\n");
    static const std::string refund = body + std::string("return refund(KEYS, ARGV)\n");
    static const std::string signal = body + std::string("return signal(KEYS, ARGV)\n");
    switch (c) {
    case script_call::acquire: return acquire;
    case script_call::refund: return refund;
    case script_call::signal: return signal;
    }
    return acquire;
}

const char* function_name(script_call c) noexcept
{
    switch (c) {
    case script_call::acquire: return acquire_function;
    case script_call::refund: return refund_function;
    case script_call::signal: return signal_function;
    }
    return acquire_function;
}

} // namespace mailroom::limit::detail

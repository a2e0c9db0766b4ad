"""The two Lua scripts of the Redis backend: admit (check every counter, commit all or none) and settle.

Redis runs one script at a time, so whatever several replicas send, each admission sees the counters
as the previous one left them. Integers only (nano-USD, tokens, milliseconds); the amounts written
are the argument strings themselves, never Lua's formatting of a number.
"""

from __future__ import annotations

import hashlib

# Windows and reservations are sorted sets whose members carry their amount ("<member>:<amount>"),
# with the sum of the amounts in a string key next to them, so purging never reads member by member.
# KEYS, per check in order: rpm: window | tpm: window, its sum | res: reservations, their sum | bud: spend.
# ARGV: now in ms ('' = the server's clock), member, hold in ms, tokens, nano-USD, then kind and limit
# per check (rpm counts 1, tpm the tokens; res and bud the nano-USD).
# Answers {0, now, states...} admitted, {1, now, states...} refused, {2, spend keys...} to be seeded;
# states are three numbers per rpm/tpm check (used, ok, wait ms) and per bud check (spent, ok, reserved).
ADMIT = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local member, hold, window = ARGV[2], tonumber(ARGV[3]), 60000
local tokens, nano = ARGV[4], ARGV[5]

local function amount_of(entry)
  return tonumber(string.match(entry, ':(%d+)$'))
end

local function purge(z, t, cutoff)
  local total = tonumber(redis.call('GET', t)) or 0
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #gone > 0 then
    local sum = 0
    for j = 1, #gone do sum = sum + amount_of(gone[j]) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
    redis.call('DECRBY', t, sum)
    total = total - sum
  end
  return total
end

local function oldest(z)
  local e = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if e[2] then return tonumber(e[2]) + window - now end
  return window
end

local function tokens_wait(z, need)
  local freed, start = 0, 0
  while true do
    local e = redis.call('ZRANGE', z, start, start + 199, 'WITHSCORES')
    if #e == 0 then return window end
    for j = 1, #e, 2 do
      freed = freed + amount_of(e[j])
      if freed >= need then return tonumber(e[j + 1]) + window - now end
    end
    start = start + 200
  end
end

local function push(states, a, ok, c)
  states[#states + 1] = a
  states[#states + 1] = ok and 1 or 0
  states[#states + 1] = c
end

local checks, states, missing = {}, {}, {}
local refused, reserved, k, a = false, 0, 1, 6
while a <= #ARGV do
  local kind, limit = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local c = {kind = kind, z = KEYS[k]}
  if kind == 'rpm' then
    k = k + 1
    redis.call('ZREMRANGEBYSCORE', c.z, '-inf', now - window)
    local used = redis.call('ZCARD', c.z)
    local ok, wait = used + 1 <= limit, window
    if ok then
      wait = oldest(c.z)
    else
      local e = redis.call('ZRANGE', c.z, used - limit, used - limit, 'WITHSCORES')
      wait = tonumber(e[2]) + window - now
    end
    refused = refused or not ok
    push(states, used, ok, wait)
  elseif kind == 'tpm' then
    c.t, c.amount = KEYS[k + 1], tokens
    k = k + 2
    local used, amount = purge(c.z, c.t, now - window), tonumber(tokens)
    local ok, wait = used + amount <= limit, 0
    if ok then wait = oldest(c.z) else wait = tokens_wait(c.z, used + amount - limit) end
    refused = refused or not ok
    push(states, used, ok, wait)
  elseif kind == 'res' then
    c.t, c.amount = KEYS[k + 1], nano
    k = k + 2
    reserved = purge(c.z, c.t, now)
  else
    k = k + 1
    local spent = redis.call('GET', c.z)
    if not spent then
      missing[#missing + 1] = c.z
      spent = 0
    end
    spent = tonumber(spent)
    local ok = spent + reserved + tonumber(nano) <= limit
    refused = refused or not ok
    push(states, spent, ok, reserved)
  end
  checks[#checks + 1] = c
end
if #missing > 0 then
  table.insert(missing, 1, 2)
  return missing
end
if refused then
  table.insert(states, 1, now)
  table.insert(states, 1, 1)
  return states
end
for _, c in ipairs(checks) do
  if c.kind == 'rpm' then
    redis.call('ZADD', c.z, now, member)
    redis.call('PEXPIRE', c.z, window + 1000)
  elseif c.kind == 'tpm' or c.kind == 'res' then
    local score, ttl = now, window + 1000
    if c.kind == 'res' then score, ttl = now + hold, hold + 1000 end
    redis.call('ZADD', c.z, score, member .. ':' .. c.amount)
    redis.call('INCRBY', c.t, c.amount)
    redis.call('PEXPIRE', c.z, ttl)
    redis.call('PEXPIRE', c.t, ttl)
  end
end
table.insert(states, 1, now)
table.insert(states, 1, 0)
return states
"""

# KEYS as for ADMIT, for the tpm, res and bud checks only.
# ARGV: member, tokens, nano-USD, the tokens and nano-USD admitted (the estimates), then kind per check.
# Answers the spend after settling per bud check, -1 where the counter does not exist (not created:
# the next admission seeds it from the database, which gets this amount too) or nothing was spent.
SETTLE = """
local member, tokens, nano = ARGV[1], ARGV[2], ARGV[3]
local estimate, held = ARGV[4], ARGV[5]
local out, k = {}, 1
for a = 6, #ARGV do
  local kind = ARGV[a]
  if kind == 'tpm' then
    local z, t = KEYS[k], KEYS[k + 1]
    k = k + 2
    local entry = member .. ':' .. estimate
    local score = redis.call('ZSCORE', z, entry)
    if score and tokens ~= estimate then
      redis.call('ZREM', z, entry)
      redis.call('ZADD', z, score, member .. ':' .. tokens)
      redis.call('INCRBY', t, tonumber(tokens) - tonumber(estimate))
    end
  elseif kind == 'res' then
    local z, t = KEYS[k], KEYS[k + 1]
    k = k + 2
    if redis.call('ZREM', z, member .. ':' .. held) == 1 then
      redis.call('DECRBY', t, held)
    end
  else
    local s = KEYS[k]
    k = k + 1
    if nano ~= '0' and redis.call('EXISTS', s) == 1 then
      out[#out + 1] = redis.call('INCRBY', s, nano)
    else
      out[#out + 1] = -1
    end
  end
end
return out
"""

# KEYS: a tpm window and its sum. ARGV: now in ms ('' = the server's clock), member, tokens.
# Counts tokens already used (a deployment's, when its call ended), with no limit to check.
ADD = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
redis.call('ZADD', KEYS[1], now, ARGV[2] .. ':' .. ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], 61000)
redis.call('PEXPIRE', KEYS[2], 61000)
return 1
"""

TEXTS = {"admit": ADMIT, "settle": SETTLE, "add": ADD}
SHA = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in TEXTS.items()}

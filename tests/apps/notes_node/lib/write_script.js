'use strict';
// The write script, copied verbatim from docs/protocol.md §5 (the ```lua block).
// tests/integration/test_notes_node.py fails when the two differ.
const WRITE_SCRIPT = String.raw`-- KEYS[1] session record
-- ARGV[1] expected v ('0' = no document may exist yet)
-- ARGV[2] ttl seconds
-- ARGV[3] '1' = bump v
-- ARGV[4] '1' = set lv to the resulting v
-- ARGV[5] op id ('' = none): a write with an id already applied is not applied again
-- ARGV[6..] field, value pairs (later pairs win)
local h = redis.call('HMGET', KEYS[1], 'v', 'ops')
local cur = tonumber(h[1] or '0')
local ops = h[2] or ''
if ARGV[5] ~= '' and string.find(' ' .. ops .. ' ', ' ' .. ARGV[5] .. ' ', 1, true) then
  return {2, cur}
end
if cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
local v = cur
if ARGV[3] == '1' then v = cur + 1 end
local args = {'v', v}
if ARGV[4] == '1' then
  args[#args + 1] = 'lv'
  args[#args + 1] = v
end
if ARGV[5] ~= '' then
  local kept = {}
  for id in string.gmatch(ops, '%S+') do kept[#kept + 1] = id end
  kept[#kept + 1] = ARGV[5]
  local first = math.max(1, #kept - 31)
  args[#args + 1] = 'ops'
  args[#args + 1] = table.concat(kept, ' ', first, #kept)
end
for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, v}
`;

module.exports = { WRITE_SCRIPT };

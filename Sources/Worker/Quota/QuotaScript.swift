import Shared

/// The one Redis script of quota sharing, and its arguments and replies.
/// One call per batch; inside it, per key, one HGETALL and one HSET (plus
/// EXPIREAT when the key is new) for a claim or reconcile, or a single HSET
/// for a record-only entry. Redis counts those inner calls in
/// `INFO commandstats` too, which is what the tests and the benchmark measure.
enum QuotaScript {
    static let source = """
        local holder = ARGV[1]
        local uf, gf = 'u:' .. holder, 'g:' .. holder
        local out = {}
        for i = 1, #KEYS do
          local a = 1 + (i - 1) * 5
          local limit = tonumber(ARGV[a + 1])
          local spent = tonumber(ARGV[a + 2])
          local granted = tonumber(ARGV[a + 3])
          local want = tonumber(ARGV[a + 4])
          local expire_at = ARGV[a + 5]
          if want < 0 then
            redis.call('HSET', KEYS[i], uf, spent, gf, math.max(granted, spent))
            out[i] = 0
          else
            local fields = redis.call('HGETALL', KEYS[i])
            local my_u, my_g, others_g, others_u, holders = 0, 0, 0, 0, 1
            for j = 1, #fields, 2 do
              local f, v = fields[j], tonumber(fields[j + 1])
              if f == uf then my_u = v
              elseif f == gf then my_g = v
              elseif string.sub(f, 1, 2) == 'g:' then others_g = others_g + v; holders = holders + 1
              elseif string.sub(f, 1, 2) == 'u:' then others_u = others_u + v end
            end
            my_u = math.max(my_u, spent)
            my_g = math.max(my_g, granted, my_u)
            local grant = 0
            if want > 0 then grant = math.max(0, math.min(want, limit - others_g - my_g)) end
            my_g = my_g + grant
            redis.call('HSET', KEYS[i], uf, my_u, gf, my_g)
            if #fields == 0 then redis.call('EXPIREAT', KEYS[i], expire_at) end
            out[i] = {my_u, my_g, others_g, others_u, holders, grant}
          end
        end
        return out
        """

    /// `sha` is what `SCRIPT LOAD` answered on this connection.
    /// `EVALSHA sha numkeys key… holder (limit spent granted want expire)…`
    static func arguments(_ batch: QuotaSyncBatch, holder: String, sha: String) -> [String] {
        var arguments = ["EVALSHA", sha, String(batch.entries.count)]
        arguments.reserveCapacity(4 + batch.entries.count * 6)
        for entry in batch.entries { arguments.append(entry.key) }
        arguments.append(holder)
        for entry in batch.entries {
            arguments.append(String(entry.limit))
            arguments.append(String(entry.spent))
            arguments.append(String(entry.granted))
            arguments.append(String(entry.want))
            arguments.append(String(entry.expireAt))
        }
        return arguments
    }

    /// Replies in entry order; nil for record-only entries.
    static func replies(_ value: RedisValue, for batch: QuotaSyncBatch) throws(RedisError) -> [QuotaSyncReply?] {
        guard case .array(let items) = value, items.count == batch.entries.count else {
            if case .error(let message) = value { throw RedisError(message: "quota script: \(message)") }
            throw RedisError(message: "quota script: unexpected reply shape")
        }
        var out: [QuotaSyncReply?] = []
        out.reserveCapacity(items.count)
        for (item, entry) in zip(items, batch.entries) {
            if entry.want < 0 {
                out.append(nil)
                continue
            }
            guard case .array(let fields) = item, fields.count == 6 else {
                throw RedisError(message: "quota script: unexpected entry shape")
            }
            var numbers: [Int] = []
            for field in fields {
                guard let number = field.integerValue else { throw RedisError(message: "quota script: non-integer field") }
                numbers.append(Int(number))
            }
            out.append(
                QuotaSyncReply(
                    storedSpent: numbers[0], granted: numbers[1], othersGranted: numbers[2], othersSpent: numbers[3],
                    holders: numbers[4], newlyGranted: numbers[5]))
        }
        return out
    }
}

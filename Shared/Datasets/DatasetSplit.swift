import DataStructures
import Wire

/// Splits a dataset file's lines into a training part and a held-out part, the way a shop
/// trials a system: by time, by a share of rows in time order, or each user's last row.
/// Lines stay as they are (the parts are files of the same format); a line that makes no
/// event of its own (a header) goes to both parts, and a line that continues a row of
/// several lines (another line of the same invoice) goes with the row it belongs to.
public struct DatasetSplit: Sendable {
    public enum Rule: Sendable, Equatable {
        /// Rows before `at` train; rows from `at` up to `until` (nil: the end) are held out.
        case time(at: Int64, until: Int64?)
        /// The first `share` of rows in time order train, the rest are held out.
        case share(Double)
        /// Each user's last row in time order is held out (a user with one row keeps it).
        case lastOfUser
        /// A `share` of users, drawn by a seeded hash of their id, train; the others' rows are
        /// held out, interleaved in time with the training rows.
        case users(share: Double, seed: UInt64)
    }

    /// Line numbers (0-based) of each part, in file order.
    public var train: [Int] = []
    public var test: [Int] = []
    /// Lines in both parts (headers) and lines in neither (skipped rows, rows after `until`).
    public var shared: [Int] = []
    public var dropped = 0

    /// The split of `lines` (as `DatasetFormat.events` reads them) by `rule`.
    public init(_ format: DatasetFormat, lines: [Substring], rule: Rule) {
        var skips = DatasetFormat.Skips()
        let events = format.events(lines: lines, skips: &skips)
        let keys = Self.rowKeys(events, lines: lines.count)
        var keyed: [Int] = []
        for (n, key) in keys.enumerated() {
            if key != nil { keyed.append(n) } else if keyed.isEmpty && !lines[n].isEmpty { shared.append(n) }
        }
        var held = Set<Int>()
        var trained = Set<Int>()
        switch rule {
        case .time(let at, let until):
            for n in keyed {
                let ms = keys[n]!.ms
                if ms < at { trained.insert(n) } else if until.map({ ms < $0 }) ?? true { held.insert(n) }
            }
        case .share(let share):
            let ordered = keyed.sorted { (keys[$0]!.ms, $0) < (keys[$1]!.ms, $1) }
            let cut = Int((Double(ordered.count) * min(max(share, 0), 1)).rounded())
            trained = Set(ordered[..<cut])
            held = Set(ordered[cut...])
        case .lastOfUser:
            var last: [Int64: Int] = [:]
            var rows: [Int64: Int] = [:]
            for n in keyed {
                let k = keys[n]!
                rows[k.user, default: 0] += 1
                if let l = last[k.user], (keys[l]!.ms, l) > (k.ms, n) { continue }
                last[k.user] = n
            }
            held = Set(last.filter { rows[$0.key]! > 1 }.values)
            trained = Set(keyed).subtracting(held)
        case .users(let share, let seed):
            for n in keyed {
                var draw = StableHash.fnv1a("\(seed):\(keys[n]!.user)")
                draw = (draw ^ (draw >> 30)) &* 0xbf58_476d_1ce4_e5b9  // SplitMix64's finaliser
                draw = (draw ^ (draw >> 27)) &* 0x94d0_49bb_1331_11eb
                draw ^= draw >> 31
                if Double(draw >> 11) / Double(1 << 53) < share { trained.insert(n) } else { held.insert(n) }
            }
        }
        // Continuation lines (no event of their own, after a keyed line) follow their row.
        var owner: Int?
        for n in lines.indices {
            if keys[n] != nil {
                owner = n
            } else if lines[n].isEmpty || owner == nil {
                continue
            }
            guard let o = owner else { continue }
            if trained.contains(o) { train.append(n) } else if held.contains(o) { test.append(n) } else { dropped += 1 }
        }
    }

    /// Each line's row: the user and the latest time of the events made from it (events
    /// name their line in their id, `format:LINE:hash...`).
    static func rowKeys(_ events: [Event], lines: Int) -> [(user: Int64, ms: Int64)?] {
        var keys = [(user: Int64, ms: Int64)?](repeating: nil, count: lines)
        for e in events where e.kind != .label && e.kind != .itemUpsert {
            let parts = e.eventId.split(separator: ":", maxSplits: 2)
            guard parts.count >= 2, let line = Int(parts[1]), line >= 1, line <= lines else { continue }
            let n = line - 1
            if let k = keys[n] { keys[n] = (k.user, max(k.ms, e.timestampMs)) } else { keys[n] = (e.userId, e.timestampMs) }
        }
        return keys
    }
}

import CMemory
import Foundation

/// An approximate maximum-inner-product index: a hierarchical navigable small-world graph
/// (Malkov and Yashunin, 2018) over the rows of a matrix, searched for the rows with the
/// largest inner product with a query, with the inner product itself as the graph's
/// similarity (as hnswlib's "ip" space; Morozov and Babenko, 2018, show such a graph beats
/// reducing the problem to Euclidean search by norm augmentation). Construction follows the
/// paper: levels drawn with mL = 1 / ln M, greedy descent through the upper layers, a beam
/// of `efConstruction` per layer, and the neighbour-selection heuristic (keep a candidate
/// only when it is nearer the new node than to every neighbour kept so far). Built once,
/// then read-only: searches may run on many threads at once.
public final class HNSW: @unchecked Sendable {
    public struct Parameters: Sendable, Equatable {
        /// Links per node on the upper layers (2M on the bottom one).
        public var m = 16
        public var efConstruction = 200
        /// The beam of a search (at least k).
        public var efSearch = 100
        public var seed: UInt64 = 1
        public init() {}
    }

    public let count: Int
    public let dimension: Int
    public let parameters: Parameters
    /// The rows, 64-byte aligned.
    let vectors: UnsafeMutablePointer<Float>
    /// Bottom layer: per node, a count then up to 2M neighbours.
    let bottom: UnsafeMutablePointer<Int32>
    let bottomStride: Int
    /// Upper layers: per node of level L > 0, L lists of a count then up to M neighbours,
    /// from `upperStart[node]`.
    let upper: UnsafeMutablePointer<Int32>
    let upperStart: [Int]
    let levels: [UInt8]
    private(set) var entry: Int32 = 0
    private(set) var topLevel = 0
    private let visitedPool = VisitedPool()

    /// Indexes the rows of `table`.
    public convenience init(_ table: Matrix, parameters: Parameters = Parameters()) {
        self.init(rows: table.rows, cols: table.cols, values: table.values, parameters: parameters)
    }

    public init(rows: Int, cols: Int, values: [Float], parameters: Parameters = Parameters()) {
        precondition(values.count == rows * cols && parameters.m >= 2)
        count = rows
        dimension = cols
        self.parameters = parameters
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, rows * cols) * 4, alignment: 64)
        let v = raw.bindMemory(to: Float.self, capacity: max(1, rows * cols))
        values.withBase { v.update(from: $0, count: rows * cols) }
        vectors = v
        bottomStride = 2 * parameters.m + 1
        bottom = .allocate(capacity: max(1, rows * bottomStride))
        bottom.initialize(repeating: 0, count: max(1, rows * bottomStride))
        var rng = SplitMix(seed: parameters.seed)
        let mL = 1 / log(Double(parameters.m))
        levels = (0..<rows).map { _ in
            let u = max(Double(rng.next() >> 11) / Double(1 << 53), .leastNonzeroMagnitude)
            return UInt8(min(15, Int(-log(u) * mL)))
        }
        var starts = [Int](repeating: 0, count: rows)
        var total = 0
        for (i, l) in levels.enumerated() {
            starts[i] = total
            total += Int(l) * (parameters.m + 1)
        }
        upperStart = starts
        upper = .allocate(capacity: max(1, total))
        upper.initialize(repeating: 0, count: max(1, total))
        build()
    }

    deinit {
        UnsafeMutableRawPointer(vectors).deallocate()
        bottom.deallocate()
        upper.deallocate()
    }

    /// The `k` rows with the largest inner product with `query` (as many as the graph
    /// reaches, at most `k`), best first, skipping rows where `excluded` is true; `ef`
    /// widens the beam (default `parameters.efSearch`, never below k).
    public func search(_ query: [Float], k: Int, ef: Int? = nil, excluded: (Int) -> Bool = { _ in false }) -> [TopK.Entry] {
        precondition(query.count == dimension, "searching \(query.count) elements in a \(dimension)-column index")
        guard count > 0, k > 0 else { return [] }
        let beam = max(k, ef ?? parameters.efSearch)
        let visited = visitedPool.take(count)
        defer { visitedPool.give(visited) }
        return query.withBase { q in
            var current = entry
            var best = distance(q, entry)
            for level in stride(from: topLevel, to: 0, by: -1) { greedy(q, from: &current, distance: &best, level: level) }
            let found = searchLayer(q, entry: (best, current), ef: beam, level: 0, visited: visited)
            var out: [TopK.Entry] = []
            out.reserveCapacity(k)
            for (d, id) in found.sorted(by: { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }) where !excluded(Int(id)) {
                out.append(TopK.Entry(index: id, score: -d))
                if out.count == k { break }
            }
            return out
        }
    }

    @inline(__always)
    func distance(_ q: UnsafePointer<Float>, _ id: Int32) -> Float { -Vec.dot(q, vectors + Int(id) * dimension, dimension) }

    /// Where the links of `id` on `level` are: a count, then the ids.
    @inline(__always)
    func linkSlot(_ id: Int32, level: Int) -> UnsafeMutablePointer<Int32> {
        level == 0 ? bottom + Int(id) * bottomStride : upper + upperStart[Int(id)] + (level - 1) * (parameters.m + 1)
    }

    /// The neighbours of `id` on `level`.
    @inline(__always)
    func neighbourList(_ id: Int32, level: Int) -> (UnsafePointer<Int32>, Int) {
        let p = linkSlot(id, level: level)
        return (UnsafePointer(p + 1), Int(p[0]))
    }

    /// Moves to the nearest neighbour while one is nearer (a beam of one).
    func greedy(_ q: UnsafePointer<Float>, from current: inout Int32, distance best: inout Float, level: Int) {
        var changed = true
        while changed {
            changed = false
            let (ids, n) = neighbourList(current, level: level)
            for i in 0..<n {
                let d = distance(q, ids[i])
                if d < best {
                    (best, current) = (d, ids[i])
                    changed = true
                }
            }
        }
    }

    /// The `ef` nearest nodes found from `entry` on `level` (unordered), plus the entries.
    func searchLayer(
        _ q: UnsafePointer<Float>, entry: (Float, Int32), ef: Int, level: Int, visited: VisitedPool.Marks, more: [(Float, Int32)] = []
    ) -> [(Float, Int32)] {
        visited.next()
        var candidates = Heap(nearestFirst: true, capacity: 4 * ef)
        var results = Heap(nearestFirst: false, capacity: ef + 1)
        for e in [entry] + more where !visited.check(e.1) {
            visited.mark(e.1)
            candidates.push(e)
            results.push(e)
        }
        while let c = candidates.top {
            if results.count >= ef, c.0 > results.top!.0 { break }
            candidates.pop()
            let (ids, n) = neighbourList(c.1, level: level)
            for i in 0..<n where !visited.check(ids[i]) {
                if i + 1 < n { persona_prefetch(vectors + Int(ids[i + 1]) * dimension) }
                let id = ids[i]
                visited.mark(id)
                let d = distance(q, id)
                if results.count < ef || d < results.top!.0 {
                    candidates.push((d, id))
                    results.push((d, id))
                    if results.count > ef { results.pop() }
                }
            }
        }
        return results.items
    }

    /// Inserts every row in order, as the paper's INSERT.
    private func build() {
        guard count > 0 else { return }
        let m = parameters.m
        topLevel = Int(levels[0])
        let visited = VisitedPool.Marks(count: count)
        for id in 1..<count {
            let node = Int32(id)
            let q = UnsafePointer(vectors + id * dimension)
            let level = Int(levels[id])
            var current = entry
            var best = distance(q, current)
            for l in stride(from: topLevel, to: level, by: -1) { greedy(q, from: &current, distance: &best, level: l) }
            var entries: [(Float, Int32)] = [(best, current)]
            for l in stride(from: min(level, topLevel), through: 0, by: -1) {
                let found = searchLayer(
                    q, entry: entries[0], ef: parameters.efConstruction, level: l, visited: visited, more: Array(entries.dropFirst()))
                let cap = l == 0 ? 2 * m : m
                let chosen = select(found, cap: m)
                setLinks(node, level: l, chosen.map(\.1))
                for (d, n) in chosen {
                    // The link back, pruned by the same heuristic when the list is full.
                    var list: [(Float, Int32)] = [(d, node)]
                    let base = UnsafePointer(vectors + Int(n) * dimension)
                    let (ids, c) = neighbourList(n, level: l)
                    for i in 0..<c { list.append((distance(base, ids[i]), ids[i])) }
                    setLinks(n, level: l, (list.count <= cap ? list : select(list, cap: cap)).map(\.1))
                }
                entries = found
            }
            if level > topLevel {
                topLevel = level
                entry = node
            }
        }
    }

    /// The heuristic: nearest first, keep a candidate only when it is nearer the base node
    /// than to every one kept; fill up with the nearest left out.
    private func select(_ candidates: [(Float, Int32)], cap: Int) -> [(Float, Int32)] {
        let sorted = candidates.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        var kept: [(Float, Int32)] = []
        var skipped: [(Float, Int32)] = []
        for c in sorted {
            if kept.count == cap { break }
            let p = UnsafePointer(vectors + Int(c.1) * dimension)
            if kept.allSatisfy({ distance(p, $0.1) > c.0 }) {
                kept.append(c)
            } else {
                skipped.append(c)
            }
        }
        for c in skipped where kept.count < cap { kept.append(c) }
        return kept
    }

    private func setLinks(_ id: Int32, level: Int, _ ids: [Int32]) {
        let p = linkSlot(id, level: level)
        p[0] = Int32(ids.count)
        for (i, n) in ids.enumerated() { p[1 + i] = n }
    }
}

/// A binary heap of (distance, id): nearest on top, or farthest on top.
struct Heap {
    var items: [(Float, Int32)] = []
    let nearestFirst: Bool

    init(nearestFirst: Bool, capacity: Int) {
        self.nearestFirst = nearestFirst
        items.reserveCapacity(capacity)
    }

    var count: Int { items.count }
    var top: (Float, Int32)? { items.first }

    @inline(__always)
    func above(_ a: (Float, Int32), _ b: (Float, Int32)) -> Bool {
        nearestFirst ? (a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)) : (a.0 > b.0 || (a.0 == b.0 && a.1 > b.1))
    }

    mutating func push(_ e: (Float, Int32)) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard above(items[i], items[p]) else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() {
        let last = items.removeLast()
        guard !items.isEmpty else { return }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count && above(items[l], items[m]) { m = l }
            if r < items.count && above(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
    }
}

/// Visited marks for graph searches: one array per concurrent search, reused; a generation
/// counter clears it in O(1).
final class VisitedPool: @unchecked Sendable {
    final class Marks {
        let stamps: UnsafeMutablePointer<UInt32>
        let count: Int
        var generation: UInt32 = 0
        init(count: Int) {
            self.count = count
            stamps = .allocate(capacity: max(1, count))
            stamps.initialize(repeating: 0, count: max(1, count))
        }
        deinit { stamps.deallocate() }

        func next() {
            generation &+= 1
            if generation == 0 {
                stamps.update(repeating: 0, count: max(1, count))
                generation = 1
            }
        }
        @inline(__always) func mark(_ id: Int32) { stamps[Int(id)] = generation }
        @inline(__always) func check(_ id: Int32) -> Bool { stamps[Int(id)] == generation }
    }

    private let lock = NSLock()
    private var free: [Marks] = []

    func take(_ count: Int) -> Marks { lock.withLock { free.popLast() } ?? Marks(count: count) }
    func give(_ m: Marks) { lock.withLock { if free.count < 64 { free.append(m) } } }
}

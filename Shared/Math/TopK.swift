/// Top-K selection over a score array: the last step of every recommendation. A bounded
/// min-heap of the best K seen, so the pass is O(n log K) with no allocation past the K
/// slots; ties go to the lower index, so answers are deterministic.
public enum TopK {
    public struct Entry: Sendable, Equatable {
        public var index: Int32
        public var score: Float
        public init(index: Int32, score: Float) {
            self.index = index
            self.score = score
        }
    }

    /// `a` ranks below `b`: a lower score, or the same score and a higher index.
    @inline(__always)
    static func worse(_ a: Entry, _ b: Entry) -> Bool {
        a.score < b.score || (a.score == b.score && a.index > b.index)
    }

    /// The `k` best entries of `scores`, best first, skipping NaN and -infinity (how callers
    /// mark excluded items) and every index where `excluded` returns true.
    public static func select(_ scores: UnsafeBufferPointer<Float>, k: Int, excluded: (Int) -> Bool = { _ in false }) -> [Entry] {
        guard k > 0 else { return [] }
        var heap: [Entry] = []
        heap.reserveCapacity(k)
        var i = 0
        while i < scores.count && heap.count < k {
            let s = scores[i]
            if s > -.infinity && !excluded(i) {  // the comparison is also false for NaN
                heap.append(Entry(index: Int32(i), score: s))
                siftUp(&heap, heap.count - 1)
            }
            i += 1
        }
        guard heap.count == k else { return heap.sorted { worse($1, $0) } }
        // Full: most scores fall below the worst kept, and one comparison settles them.
        var floor = heap[0].score
        while i < scores.count {
            let s = scores[i]
            if s >= floor {
                let e = Entry(index: Int32(i), score: s)
                if worse(heap[0], e) && !excluded(i) {
                    heap[0] = e
                    siftDown(&heap, 0)
                    floor = heap[0].score
                }
            }
            i += 1
        }
        return heap.sorted { worse($1, $0) }
    }

    public static func select(_ scores: [Float], k: Int, excluded: (Int) -> Bool = { _ in false }) -> [Entry] {
        scores.withUnsafeBufferPointer { select($0, k: k, excluded: excluded) }
    }

    /// The `k` best of `entries`, best first (a bounded heap over them: O(n log k), where a
    /// sort would be O(n log n)).
    public static func best(_ entries: [Entry], k: Int) -> [Entry] {
        guard k > 0 else { return [] }
        guard entries.count > k else { return entries.sorted { worse($1, $0) } }
        var heap = Array(entries.prefix(k))
        for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(&heap, i) }
        for e in entries[k...] where worse(heap[0], e) {
            heap[0] = e
            siftDown(&heap, 0)
        }
        return heap.sorted { worse($1, $0) }
    }

    private static func siftUp(_ h: inout [Entry], _ i: Int) {
        var i = i
        while i > 0 {
            let parent = (i - 1) / 2
            guard worse(h[i], h[parent]) else { return }
            h.swapAt(i, parent)
            i = parent
        }
    }

    private static func siftDown(_ h: inout [Entry], _ i: Int) {
        var i = i
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < h.count && worse(h[l], h[m]) { m = l }
            if r < h.count && worse(h[r], h[m]) { m = r }
            guard m != i else { return }
            h.swapAt(i, m)
            i = m
        }
    }
}

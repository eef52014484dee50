import Foundation
import Math

/// Ranking metrics of recommendation lists against held-out items: precision, recall,
/// NDCG, hit rate and MAP at K, averaged over the evaluated users, and the catalogue
/// coverage of the lists. Every model, and every peer in the benchmark, is measured by
/// this one function on the same split.
public struct RankingMetrics: Sendable, Equatable {
    public var k: Int
    public var precision = 0.0
    public var recall = 0.0
    public var ndcg = 0.0
    public var hitRate = 0.0
    public var map = 0.0
    /// Distinct items in the top-K lists over the catalogue size.
    public var coverage = 0.0
    public var users = 0

    public init(k: Int) { self.k = k }

    /// Named values, for reports and the registry (`ndcg@10`, ...).
    public var named: [(String, Double)] {
        [
            ("precision@\(k)", precision), ("recall@\(k)", recall), ("ndcg@\(k)", ndcg), ("hit_rate@\(k)", hitRate),
            ("map@\(k)", map), ("coverage@\(k)", coverage),
        ]
    }

    /// The metrics at every `k` in `ks` of ranked lists (each at least max(ks) long, or all
    /// there is): `lists[u]` is user u's ranking (item indices, best first), `test[u]` their
    /// held-out items; users with an empty test set are skipped.
    public static func evaluate(lists: [[Int32]], test: [[Int32]], catalogue: Int, ks: [Int]) -> [RankingMetrics] {
        precondition(lists.count == test.count, "\(lists.count) lists for \(test.count) users")
        var out = ks.map { RankingMetrics(k: $0) }
        var covered = ks.map { _ in Set<Int32>() }
        for (u, held) in test.enumerated() where !held.isEmpty {
            let relevant = Set(held)
            let list = lists[u]
            for (m, k) in ks.enumerated() {
                var hits = 0, dcg = 0.0, ap = 0.0
                for (rank, item) in list.prefix(k).enumerated() {
                    covered[m].insert(item)
                    guard relevant.contains(item) else { continue }
                    hits += 1
                    dcg += 1 / log2(Double(rank) + 2)
                    ap += Double(hits) / Double(rank + 1)
                }
                let ideal = (0..<min(k, relevant.count)).reduce(0.0) { $0 + 1 / log2(Double($1) + 2) }
                out[m].precision += Double(hits) / Double(k)
                out[m].recall += Double(hits) / Double(relevant.count)
                out[m].ndcg += dcg / ideal
                out[m].hitRate += hits > 0 ? 1 : 0
                out[m].map += ap / Double(min(k, relevant.count))
                out[m].users += 1
            }
        }
        for m in out.indices {
            let n = Double(max(out[m].users, 1))
            out[m].precision /= n
            out[m].recall /= n
            out[m].ndcg /= n
            out[m].hitRate /= n
            out[m].map /= n
            out[m].coverage = catalogue == 0 ? 0 : Double(covered[m].count) / Double(catalogue)
        }
        return out
    }
}

extension RecommenderModel {
    /// Ranked lists (length `n`) for every user of `train` with a non-empty `test` set,
    /// training items excluded; other users get an empty list. Scores run on `threads`
    /// threads when more than one.
    public func rankings(train: Interactions, test: [[Int32]], n: Int) -> [[Int32]] {
        var lists = [[Int32]](repeating: [], count: train.users)
        let m = train.matrix
        var scores: [Float] = []
        for u in 0..<train.users where !test[u].isEmpty {
            let range = m.rowStart[u]..<m.rowStart[u + 1]
            // The sequence model reads the history in time order.
            let history =
                kind == .sequence
                ? train.sequence(u).map { (item: $0, value: Float(1)) } : range.map { (item: m.indices[$0], value: m.values[$0]) }
            score(user: userIndex[train.userIDs[u]], history: history, into: &scores)
            for j in range { scores[Int(m.indices[j])] = -.infinity }
            lists[u] = scores.withUnsafeBufferPointer { TopK.select($0, k: n) }.map(\.index)
        }
        return lists
    }
}

extension RecommenderModel {
    /// Leave-last-out lists (length `n`) for every user with a test item: each user's
    /// training items in time order are the history (the sequence model reads them as its
    /// input), and items they met are ranked like any other (unless `excludingSeen`).
    public func nextItemRankings(train: Interactions, test: [[Int32]], n: Int, excludingSeen: Bool = false) -> [[Int32]] {
        var lists = [[Int32]](repeating: [], count: train.users)
        let m = train.matrix
        var scores: [Float] = []
        for u in 0..<train.users where !test[u].isEmpty {
            // The sequence model reads the user's steps in order; the others their pairs.
            let history =
                kind == .sequence
                ? train.sequence(u).map { (item: $0, value: Float(1)) }
                : (m.rowStart[u]..<m.rowStart[u + 1]).map { (item: m.indices[$0], value: m.values[$0]) }
            score(user: userIndex[train.userIDs[u]], history: history, into: &scores)
            if excludingSeen { for h in history { scores[Int(h.item)] = -.infinity } }
            lists[u] = scores.withUnsafeBufferPointer { TopK.select($0, k: n) }.map(\.index)
        }
        return lists
    }
}

import Foundation
import Math
import Profiles
import Recommenders
public import Wire

/// The second step: the catalogue's filters, the boosts, then diversity.
extension Recommender {
    /// The `n` best of `candidates` after the catalogue's filters, the boosts and diversity.
    /// `catalogue` holds what the feature service knows of the candidates (an item it does
    /// not list passes the price and stock filters: nothing says it fails them); `profile`
    /// gives the user's category and price-band shares.
    public func rerank(_ candidates: [Candidate], n: Int, catalogue: [Int64: ItemProfile], profile: UserProfile?, context: Context)
        -> [Candidate]
    {
        let affinity = profile.map(Self.categoryShares) ?? [:]
        let bands = profile.map(Self.priceBandShares) ?? []
        var kept: [Candidate] = []
        kept.reserveCapacity(candidates.count)
        for var c in candidates {
            if let item = catalogue[c.itemID], item.inCatalog {
                if item.categoryId != 0 { c.category = item.categoryId }
                if context.inStockOnly && item.stock <= 0 { continue }
                if item.price > 0 && (item.price < context.minPrice || (context.maxPrice > 0 && item.price > context.maxPrice)) { continue }
                if !context.categories.isEmpty && !context.categories.contains(c.category) { continue }
                if weights.priceBand > 0, item.price > 0, !bands.isEmpty {
                    let share = bands[PriceBands.band(item.price)]
                    if share > 0 {
                        boost(&c, "price_band", 1 + weights.priceBand * share, "\(percent(share)) of your activity is in this price band")
                    }
                }
                for tag in item.tags {
                    if let f = tagFactors[tag] { boost(&c, "tag:\(tag)", f, f >= 1 ? "promoted (\(tag))" : "buried (\(tag))") }
                }
            }
            for b in context.campaignBoosts where b.items.contains(c.itemID) || b.categories.contains(c.category) {
                boost(&c, "campaign:\(b.campaign)", b.factor, "on offer in campaign \(b.campaign)")
            }
            if weights.categoryAffinity > 0, let share = affinity[c.category], share > 0 {
                boost(
                    &c, "category_affinity", 1 + weights.categoryAffinity * share,
                    "category \(c.category) is \(percent(share)) of your activity")
            }
            kept.append(c)
        }
        kept.sort(by: Self.ranked)
        return diversify(kept, n: n, context: context)
    }

    func boost(_ c: inout Candidate, _ name: String, _ factor: Float, _ detail: String) {
        c.score *= factor
        c.contributions.append(Contribution(name: name, value: factor, detail: detail, kind: .boost))
    }

    func percent(_ share: Float) -> String { "\(Int((share * 100).rounded()))%" }

    /// The user's category affinities as shares of their total.
    static func categoryShares(_ p: UserProfile) -> [Int64: Float] {
        let total = p.categories.reduce(0) { $0 + max(0, $1.score) }
        guard total > 0 else { return [:] }
        return Dictionary(p.categories.map { ($0.id, Float(max(0, $0.score) / total)) }, uniquingKeysWith: max)
    }

    static func priceBandShares(_ p: UserProfile) -> [Float] {
        p.priceBands.count == PriceBands.count ? p.priceBands.map(Float.init) : []
    }

    /// At most `maxPerCategory` per category, then maximal marginal relevance when
    /// `diversity` > 0: each next item maximises (1 − λ)·score/best − λ·(its largest
    /// similarity to an item already chosen), similarity being the cosine of the factor
    /// model's item vectors, else 1 for the same category and 0 otherwise.
    func diversify(_ ranked: [Candidate], n: Int, context: Context) -> [Candidate] {
        var pool: [Candidate] = []
        var perCategory: [Int64: Int] = [:]
        let cap = context.diversity > 0 ? max(n * 3, n + 20) : n
        for c in ranked where pool.count < cap {
            if context.maxPerCategory > 0 && c.category != 0 {
                guard perCategory[c.category, default: 0] < context.maxPerCategory else { continue }
                perCategory[c.category, default: 0] += 1
            }
            pool.append(c)
        }
        let lambda = min(1, max(0, context.diversity))
        guard lambda > 0, pool.count > 1 else { return Array(pool.prefix(n)) }
        if context.maxPerCategory > 0 {
            // The cap above counted the whole pool; MMR picks from it under the same cap.
            perCategory = [:]
        }
        let vectors = pool.map { c in factors.flatMap { f in f.model.itemIndex[c.itemID].map { f.model.items!.row(Int($0)) } } }
        let norms = vectors.map { v in v.map { Vec.dot($0, $0).squareRoot() } ?? 0 }
        func similarity(_ a: Int, _ b: Int) -> Float {
            if let va = vectors[a], let vb = vectors[b], norms[a] > 0, norms[b] > 0 {
                return va.withUnsafeBufferPointer { pa in
                    vb.withUnsafeBufferPointer { pb in Vec.dot(pa.baseAddress!, pb.baseAddress!, va.count) }
                } / (norms[a] * norms[b])
            }
            return pool[a].category != 0 && pool[a].category == pool[b].category ? 1 : 0
        }
        let best = max(pool[0].score, .leastNonzeroMagnitude)
        var chosen: [Int] = []
        var closest = [Float](repeating: -.infinity, count: pool.count)
        var left = Array(pool.indices)
        while chosen.count < n, !left.isEmpty {
            var pick = 0
            var pickValue = -Float.infinity
            for (slot, i) in left.enumerated() {
                let c = pool[i]
                if context.maxPerCategory > 0 && c.category != 0 && perCategory[c.category, default: 0] >= context.maxPerCategory {
                    continue
                }
                let penalty = chosen.isEmpty ? 0 : closest[i]
                let value = (1 - lambda) * c.score / best - lambda * penalty
                if value > pickValue { (pick, pickValue) = (slot, value) }
            }
            guard pickValue > -.infinity else { break }
            let i = left.remove(at: pick)
            if context.maxPerCategory > 0 && pool[i].category != 0 { perCategory[pool[i].category, default: 0] += 1 }
            chosen.append(i)
            for j in left { closest[j] = max(closest[j], similarity(i, j)) }
        }
        return chosen.enumerated().map { rank, i in
            var c = pool[i]
            if rank > 0 && closest[i] > 0 {
                c.contributions.append(
                    Contribution(name: "diversity", value: closest[i], detail: "similarity to a higher item", kind: .diversity))
            }
            return c
        }
    }
}

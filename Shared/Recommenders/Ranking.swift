import Foundation
public import Math

/// The second stage of a recommendation: what a learned ranker knows of one candidate, the
/// same at training (the model service's `ranker` kind, over lists its own fitted sources
/// give on a validation period) and at serving (recommend, over the published sources'
/// lists), so that a published ranker reads at serving what it learned from.
///
/// Each source (a role) offers its best `pool` items, scaled to [0, 1] as the fixed-weight
/// blend reads them; a candidate's features are each role's scaled score and place in that
/// role's list (missing where the role did not offer it), the item's popularity, the length
/// of the user's history, how many roles offered it, and the share of the user's items in its
/// category.
public enum Ranking {
    /// The sources a ranker tells apart, by the part they play (whichever kind fills it:
    /// `als` or `bpr` the factors, `item_knn` or `ease` the neighbours).
    public enum Role: Int, CaseIterable, Sendable {
        case factors, neighbours, content, sequence, popularity

        public var name: String {
            switch self {
            case .factors: "factors"
            case .neighbours: "neighbours"
            case .content: "content"
            case .sequence: "sequence"
            case .popularity: "popularity"
            }
        }

        /// The role's weight in the fixed blend (recommend's defaults, and the ranker's
        /// report's "fixed weights" row).
        public var defaultWeight: Float {
            switch self {
            case .factors: 1
            case .neighbours: 0.3
            case .content: 0.1
            case .sequence: 0.3
            case .popularity: 0.05
            }
        }

        /// The role a recommender kind plays (nil for the ranker itself).
        public init?(_ kind: RecommenderModel.Kind) {
            switch kind {
            case .als, .bpr: self = .factors
            case .itemKNN, .ease: self = .neighbours
            case .content: self = .content
            case .sequence: self = .sequence
            case .popularity: self = .popularity
            case .ranker: return nil
            }
        }
    }

    /// The history length a feature counts up to: the feature service's recent lists hold
    /// about this many items, so a longer training history reads as the served one would.
    public static let historyCap = 20

    /// The features' names, in the order of a row.
    public static let featureNames: [String] =
        Role.allCases.flatMap { ["\($0.name)_score", "\($0.name)_rank"] } + ["item_popularity", "history", "sources", "category_share"]

    /// What the roles offered of one candidate: scaled score and place per role (NaN: not offered).
    public struct Offers: Sendable, Equatable {
        public var scores = [Float](repeating: .nan, count: Role.allCases.count)
        public var ranks = [Float](repeating: .nan, count: Role.allCases.count)

        public init() {}

        /// Records `role`'s offer; a role that offers an item twice (popularity per category) keeps its best.
        public mutating func add(_ role: Role, score: Float, rank: Int) {
            let r = role.rawValue
            if scores[r].isNaN || score > scores[r] { (scores[r], ranks[r]) = (score, Float(rank)) }
        }

        /// The fixed blend's score: the weighted sum of the offered scaled scores.
        public func blended(_ weight: (Role) -> Float) -> Float {
            Role.allCases.reduce(0) { s, role in scores[role.rawValue].isNaN ? s : s + weight(role) * scores[role.rawValue] }
        }

        public var count: Int { scores.count { !$0.isNaN } }
    }

    /// One candidate's row of `featureNames`: `popularity` the item's summed interactions in
    /// the popularity model, `history` the user's distinct items, `categoryShare` the share
    /// of their items in the candidate's category.
    public static func row(_ offers: Offers, popularity: Float, history: Int, categoryShare: Float) -> [Float] {
        var row: [Float] = []
        row.reserveCapacity(featureNames.count)
        for r in Role.allCases.indices { row += [offers.scores[r], offers.ranks[r]] }
        row += [log1p(max(0, popularity)), Float(min(history, historyCap)), Float(offers.count), categoryShare]
        return row
    }

    /// A list's scores scaled by its best, as the factor, neighbour and popularity sources
    /// scale theirs (nil when the best is not positive: the list offers nothing).
    public static func byBest(_ scores: [Float]) -> [Float]? {
        guard let best = scores.first, best > 0 else { return nil }
        return scores.map { $0 / best }
    }

    /// A list's scores mapped to [0.1, 1] over its range, as the sequence source scales its
    /// inner products (which may be negative): the last still counts a little.
    public static func byRange(_ scores: [Float]) -> [Float]? {
        guard let high = scores.first, let low = scores.last else { return nil }
        return scores.map { high > low ? 0.1 + 0.9 * ($0 - low) / (high - low) : 1 }
    }

    /// The ranker's score of a candidate's row: its margin through a sigmoid, so that it is
    /// positive and the boosts after it (category affinity, price band, tags) multiply it
    /// as they multiply the fixed blend's.
    public static func score(_ ranker: BoostedTrees, _ row: [Float]) -> Float { sigmoid(ranker.margin(row)) }
}

public import DataStructures
import Foundation
import Recommenders
public import Wire

/// What the pipeline reads and answers: the blend's weights, a user's recent items, the
/// repurchase windows, the request's context, live lists, and the candidates with their terms.
extension Recommender {
    /// The weight of each source in the blend, and the strength of each boost.
    public struct Weights: Sendable, Equatable {
        public var factors = Ranking.Role.factors.defaultWeight
        public var neighbours = Ranking.Role.neighbours.defaultWeight
        /// Content neighbours (TF-IDF over the catalogue) of the user's recent items; twice
        /// this for a user with one or two recent items, whom collaborative sources know least.
        public var content = Ranking.Role.content.defaultWeight
        /// The sequence model's next items after the user's latest ones.
        public var sequence = Ranking.Role.sequence.defaultWeight
        public var popularity = Ranking.Role.popularity.defaultWeight
        /// Above popularity: what is active now outranks what was popular in training.
        public var trending: Float = 0.06
        /// An item's score is multiplied by 1 + this × the share of the user's activity in
        /// its category.
        public var categoryAffinity: Float = 0.1
        /// ... and by 1 + this × the share of the user's activity in its price band.
        public var priceBand: Float = 0.1

        public init() {}

        public static let names = [
            "factors", "neighbours", "content", "sequence", "popularity", "trending", "category_affinity", "price_band",
        ]

        /// `name=value` pairs separated by commas, e.g. `factors=1,neighbours=0.5`; names
        /// not given keep their default.
        public init(parsing text: String) throws {
            for pair in text.split(separator: ",") where !pair.trimmingCharacters(in: .whitespaces).isEmpty {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, let v = Float(parts[1]), v.isFinite, v >= 0 else {
                    throw SettingError("weight '\(pair)' is not name=value with a value >= 0")
                }
                switch parts[0] {
                case "factors": factors = v
                case "neighbours": neighbours = v
                case "content": content = v
                case "sequence": sequence = v
                case "popularity": popularity = v
                case "trending": trending = v
                case "category_affinity": categoryAffinity = v
                case "price_band": priceBand = v
                default: throw SettingError("unknown weight '\(parts[0])'; known: \(Self.names.joined(separator: ", "))")
                }
            }
        }
    }

    /// A user's recent items, newest first, as the feature service holds them.
    public struct History: Sendable {
        public var views: [Int64] = []
        public var carts: [Int64] = []
        public var purchases: [Int64] = []
        /// When each purchase was made (ms; 0: unknown), same order as `purchases`.
        public var purchaseMs: [Int64] = []
        /// The latest items of any interaction, in the order they came (repeats kept).
        public var items: [Int64] = []
        /// Every item the user met, when the profile carried the table (nil: only the recent
        /// lists are known).
        public var met: HashSet32? = nil

        public init(views: [Int64] = [], carts: [Int64] = [], purchases: [Int64] = [], purchaseMs: [Int64] = [], items: [Int64] = []) {
            self.views = views
            self.carts = carts
            self.purchases = purchases
            self.purchaseMs = purchaseMs
            self.items = items
        }

        public init(_ p: UserProfile) {
            self.init(
                views: p.recentViews, carts: p.recentCarts, purchases: p.recentPurchases, purchaseMs: p.recentPurchaseMs,
                items: p.recentItems)
            met = p.metItemsTable.isEmpty ? nil : HashSet32(table: p.metItemsTable)
        }

        /// Each kind of recent item with its weight (as in training: a purchase counts most)
        /// and the verb a reason uses for it.
        var actions: [(ids: [Int64], weight: Float, verb: String)] {
            [(views, 1, "viewed"), (carts, 3, "carted"), (purchases, 5, "bought")]
        }

        var touched: Set<Int64> { Set(views + carts + purchases) }

        /// The recent items, each with what the user did with it (a later verb wins).
        var withVerbs: [(id: Int64, verb: String)] {
            var verbs: [Int64: String] = [:]
            for (ids, _, verb) in actions {
                for id in ids { verbs[id] = verb }
            }
            return verbs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }
    }

    /// How long after a purchase an item is not recommended again, per category.
    public struct RepurchaseWindows: Sendable, Equatable {
        /// nil: never again.
        public var standard: Int64? = nil
        public var perCategory: [Int64: Int64?] = [:]

        public init() {}

        /// `default=never,4145813=7d,12=12h`: `never`, or a number with `d`, `h` or `m`.
        public init(parsing text: String) throws {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { throw SettingError("repurchase window '\(pair)' is not CATEGORY=DURATION") }
                let ms: Int64?
                if parts[1] == "never" {
                    ms = nil
                } else if let unit = parts[1].last, let n = Int64(parts[1].dropLast()), n >= 0,
                    let scale = ["d": 86_400_000, "h": 3_600_000, "m": 60_000][unit]
                {
                    ms = n * Int64(scale)
                } else {
                    throw SettingError("repurchase window '\(parts[1])' is not 'never' or a number with d, h or m")
                }
                if parts[0] == "default" {
                    standard = ms
                } else if let c = Int64(parts[0]), c > 0 {
                    perCategory[c] = .some(ms)
                } else {
                    throw SettingError("repurchase window category '\(parts[0])' is not 'default' or a positive id")
                }
            }
        }

        /// Whether an item of `category` bought at `boughtMs` (0: unknown) is still within
        /// its window at `nowMs`.
        func blocks(category: Int64, boughtMs: Int64, nowMs: Int64) -> Bool {
            guard let window = perCategory[category] ?? standard else { return true }
            return boughtMs == 0 || nowMs - boughtMs < window
        }
    }

    /// One term of an item's score: a source's points or a boost's factor.
    public struct Contribution: Sendable, Equatable {
        public var name: String
        public var value: Float
        public var detail: String
        public var kind: ContributionKind = .source
    }

    public struct Candidate: Sendable, Equatable {
        public var itemID: Int64
        public var score: Float
        public var reason: String
        public var source: String
        /// The item's category (catalogue, else the models; 0: unknown).
        public var category: Int64 = 0
        public var contributions: [Contribution] = []
    }

    /// A ranked list from the feature service: `name` is the source (`trending`), the items
    /// with their category and count.
    public struct LiveList: Sendable {
        public var name: String
        public var category: Int64
        public var items: [(id: Int64, category: Int64, score: Float)]

        public init(name: String, category: Int64, items: [(id: Int64, category: Int64, score: Float)]) {
            self.name = name
            self.category = category
            self.items = items
        }
    }

    /// What a request asks beyond the user and n.
    public struct Context: Sendable {
        public var excluding: Set<Int64> = []
        /// Only these categories (empty: all).
        public var categories: Set<Int64> = []
        public var minPrice: Double = 0
        /// 0: no upper bound.
        public var maxPrice: Double = 0
        public var inStockOnly = false
        public var maxPerCategory = 0
        /// 0 (off) ... 1.
        public var diversity: Float = 0
        public var nowMs: Int64 = 0
        /// The offers of the running campaigns that treat this user (docs/CAMPAIGNS.md).
        public var campaignBoosts: [CampaignBoost] = []
        public init() {}
    }

    /// A campaign's boost: its items and the items of its categories score `factor` times more.
    public struct CampaignBoost: Sendable, Equatable {
        public var campaign: String
        public var items: Set<Int64>
        public var categories: Set<Int64>
        public var factor: Float

        public init(campaign: String, items: Set<Int64>, categories: Set<Int64>, factor: Float) {
            self.campaign = campaign
            self.items = items
            self.categories = categories
            self.factor = factor
        }
    }
}

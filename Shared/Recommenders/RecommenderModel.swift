public import Math
public import Wire

/// A trained recommender as the model service publishes it and recommend serves it: the
/// item catalogue it knows, and what scores a user against every item.
public struct RecommenderModel: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case popularity
        case itemKNN = "item_knn"
        case als
        case bpr
        case ease
        /// Items like the ones a user met, by what their catalogue entries say (TF-IDF).
        case content
        /// The next item after a user's latest ones (SASRec over their sequence).
        case sequence
        /// The learned second stage: how to rank the other kinds' candidates together
        /// (`Ranking`); it has no items of its own.
        case ranker
    }

    public var kind: Kind
    public var itemIDs: [Int64]
    public var itemCategories: [Int64]
    /// Every model carries the items' popularity over its training data: the cold-start
    /// answer, and the whole model for `popularity`.
    public var popularity: [Float]
    /// Factor models: the users' ids (rows of `users`), the user and item factors, and
    /// BPR's item biases.
    public var userIDs: [Int64] = []
    public var users: Matrix? = nil
    public var items: Matrix? = nil
    public var itemBias: [Float]? = nil
    /// Item-kNN, EASE and content: row j holds the weights from item j to the items it recommends.
    public var itemItem: SparseMatrix? = nil
    /// Content: the items' TF-IDF vectors and vocabulary (a new item is vectorised with them).
    public var content: ContentVectors? = nil
    /// Sequence: the network; `items` is its item table (what its output is scored against).
    public var sequence: SASRec? = nil
    /// Ranker: LambdaMART trees over `rankerFeatures` (`Ranking.featureNames` when trained).
    public var ranker: BoostedTrees? = nil
    public var rankerFeatures: [String] = []
    /// Factor models: the regularisation and confidence scale a new user's vector is
    /// folded in with (the ALS normal equations against the item factors).
    public var foldInRegularization: Float = 0.1
    public var foldInAlpha: Float = 1

    /// Dense index of each item and user id, and YᵀY for fold-in: built once, on load.
    public private(set) var itemIndex: [Int64: Int32] = [:]
    public private(set) var userIndex: [Int64: Int32] = [:]
    /// The categories of the items.
    public private(set) var categories: Set<Int64> = []
    /// Item indices by popularity, most popular first (ties: lower index).
    private var popularOrder: [Int32] = []
    private var itemGram: Matrix? = nil

    public init(kind: Kind, itemIDs: [Int64], itemCategories: [Int64], popularity: [Float]) {
        self.kind = kind
        self.itemIDs = itemIDs
        self.itemCategories = itemCategories
        self.popularity = popularity
    }

    /// Drops the factor rows of `erased` users (an erasure); returns how many it held.
    @discardableResult
    public mutating func forget(_ erased: Set<Int64>) -> Int {
        guard let table = users, !erased.isEmpty, userIDs.contains(where: erased.contains) else { return 0 }
        let keep = userIDs.indices.filter { !erased.contains(userIDs[$0]) }
        var values: [Float] = []
        values.reserveCapacity(keep.count * table.cols)
        for row in keep { values += table.values[(row * table.cols)..<((row + 1) * table.cols)] }
        userIDs = keep.map { userIDs[$0] }
        users = Matrix(rows: keep.count, cols: table.cols, values: values)
        let removed = table.rows - keep.count
        userIndex = Dictionary(uniqueKeysWithValues: userIDs.enumerated().map { ($1, Int32($0)) })
        return removed
    }

    /// Builds the lookup tables; every constructor of a servable model ends with it.
    public mutating func index() {
        itemIndex = Dictionary(uniqueKeysWithValues: itemIDs.enumerated().map { ($1, Int32($0)) })
        userIndex = Dictionary(uniqueKeysWithValues: userIDs.enumerated().map { ($1, Int32($0)) })
        categories = Set(itemCategories)
        popularOrder = popularity.withUnsafeBufferPointer { TopK.select($0, k: $0.count) }.map(\.index)
        if let items, kind == .als || kind == .bpr { itemGram = Kernels.gram(items) }
    }

    public var factors: Int { items?.cols ?? 0 }

    /// Scores every item for a user: `user` is their row in a factor model (nil for a user
    /// it has not seen, whose vector is then folded in from `history`); `history` is the
    /// user's items (dense indices) with their interaction values. `scores` is resized to
    /// the catalogue.
    /// A factor model's query vector for a user: their row, or one folded in from `history`;
    /// the sequence model's output after `history` (oldest first).
    public func userVector(user: Int32?, history: [(item: Int32, value: Float)]) -> [Float] {
        if let sequence { return sequence.encode(history.map(\.item)) }
        return user.map { users!.row(Int($0)) } ?? foldIn(history)
    }

    public func score(user: Int32?, history: [(item: Int32, value: Float)], into scores: inout [Float]) {
        let n = itemIDs.count
        if scores.count != n { scores = [Float](repeating: 0, count: n) }
        switch kind {
        case .popularity, .ranker:
            scores.withMutableBase { $0.update(from: popularity, count: n) }
        case .itemKNN, .ease, .content:
            let w = itemItem!
            scores.withUnsafeMutableBufferPointer { s in
                s.update(repeating: 0)
                // EASE ranks only the items it covers (those with weights of their own).
                if kind == .ease {
                    for j in 0..<n where w.rowStart[j] == w.rowStart[j + 1] { s[j] = -.infinity }
                }
                for (j, v) in history {
                    for e in w.rowStart[Int(j)]..<w.rowStart[Int(j) + 1] { s[Int(w.indices[e])] += v * w.values[e] }
                }
            }
        case .als, .bpr, .sequence:
            let items = self.items!
            let vector = userVector(user: user, history: history)
            Kernels.score(items, vector, into: &scores)
            if let itemBias {
                for i in 0..<n { scores[i] += itemBias[i] }
            }
        }
    }

    /// A user vector from their items alone: the implicit ALS row update against the item
    /// factors (what a retrain would give them, without retraining).
    public func foldIn(_ history: [(item: Int32, value: Float)]) -> [Float] {
        let k = factors
        var x = [Float](repeating: 0, count: k)
        guard let items, let itemGram, !history.isEmpty else { return x }
        let indices = history.map(\.item), confidences = history.map { foldInAlpha * $0.value }
        var scratch = [Float](repeating: 0, count: 4 * k)
        items.values.withBase { yp in
            itemGram.values.withBase { gp in
                indices.withUnsafeBufferPointer { ip in
                    confidences.withUnsafeBufferPointer { cp in
                        x.withMutableBase { xp in
                            scratch.withMutableBase { sp in
                                Solvers.implicitRowCG(
                                    x: xp, k: k, y: yp, yty: gp, regularization: foldInRegularization, indices: ip, confidences: cp,
                                    steps: max(3, k / 4), scratch: sp)
                            }
                        }
                    }
                }
            }
        }
        return x
    }

    /// The `n` most popular items over the model's training data, best first: in `category`
    /// (the category the item last had in the log), or over every item when it is 0.
    public func popular(category: Int64 = 0, n: Int) -> [TopK.Entry] {
        var out: [TopK.Entry] = []
        out.reserveCapacity(min(n, popularOrder.count))
        for i in popularOrder where category == 0 || itemCategories[Int(i)] == category {
            if out.count == n { break }
            out.append(TopK.Entry(index: i, score: popularity[Int(i)]))
        }
        return out
    }

    /// The top `n` items for a user, excluding `excluded` item indices, best first.
    public func recommend(user: Int32?, history: [(item: Int32, value: Float)], n: Int, excluding excluded: Set<Int32> = []) -> [TopK.Entry]
    {
        var scores: [Float] = []
        score(user: user, history: history, into: &scores)
        return TopK.select(scores, k: n) { excluded.contains(Int32($0)) }
    }
}

extension RecommenderModel.Kind {
    /// The wire's name for the kind is the same word (`item_knn`).
    public var modelKind: ModelKind { ModelKind(name: rawValue)! }

    /// The recommender kind of a wire kind; nil for the classifiers' and the others.
    public init?(_ kind: ModelKind) {
        self.init(rawValue: kind.name ?? "")
    }
}

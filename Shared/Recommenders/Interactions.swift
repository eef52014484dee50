public import Math

/// Training data for the recommenders: a users×items matrix of interaction values (the
/// weighted, optionally decayed sum of a pair's events), the time of each pair's latest
/// event beside each entry, and the ids behind the dense indices.
public struct Interactions: Sendable {
    public var userIDs: [Int64]
    public var itemIDs: [Int64]
    /// The category of each item (0 when unknown).
    public var itemCategories: [Int64]
    public var matrix: SparseMatrix
    /// Seconds since the epoch of each entry's latest event, parallel to `matrix.indices`.
    public var times: [UInt32]
    /// Each user's latest steps in the order they came (a step: consecutive events on one
    /// item, valued like the pairs), when the store kept them; the sequence model's input and
    /// the leave-last-out protocol's. A user met an item again when it is in two steps.
    public var steps: [[(item: Int32, value: Float)]]? = nil {
        didSet { precondition(steps.map { $0.count == users } ?? true, "steps for \(steps?.count ?? 0) of \(users) users") }
    }

    public init(userIDs: [Int64], itemIDs: [Int64], itemCategories: [Int64], matrix: SparseMatrix, times: [UInt32]) {
        precondition(
            matrix.rows == userIDs.count && matrix.cols == itemIDs.count && times.count == matrix.nonZeros
                && itemCategories.count == itemIDs.count)
        self.userIDs = userIDs
        self.itemIDs = itemIDs
        self.itemCategories = itemCategories
        self.matrix = matrix
        self.times = times
    }

    public var users: Int { matrix.rows }
    public var items: Int { matrix.cols }
    public var pairs: Int { matrix.nonZeros }

    /// The protocol every evaluation uses, in words (reports print it).
    public static let protocolDescription =
        """
        per user, pairs sorted by their latest event (ties by item id); the last 20% (at least one) are the test \
        set, the rest train; users with fewer than two items are not evaluated (their pair stays in training); full \
        ranking over every item, training items excluded
        """

    /// The period protocol (`splitByPeriod`), in words.
    public static let periodDescription =
        """
        one cut for every user at the time that leaves the last 20% of the pairs after it; a user's pairs whose latest \
        event is after the cut are their test items (users with nothing before it are not evaluated); full ranking over \
        every item, training items excluded
        """

    /// The leave-last-out protocol, in words.
    public static let leaveLastOutDescription =
        """
        per user, their latest steps in log order (a step: consecutive events on one item); the last step is the \
        test item and leaves training (its events taken off the item's pair), the rest train (the sequence model \
        holds out the step before it for early stopping); users with fewer than three steps are not evaluated \
        (theirs stay in training); full ranking over every item, items the user met before included
        """

    /// Splits by time per user: the last `fraction` of each user's pairs (by latest event,
    /// ties by item id; at least one) go to the test set, the rest stay. Users with fewer
    /// than two pairs keep theirs in training and have no test set. The test items of user
    /// u are `test[u]` (empty for most users of a sparse shop).
    public func splitByTime(testFraction: Double = 0.2) -> (train: Interactions, test: [[Int32]]) {
        split { $0 < 2 ? 0 : max(1, Int((Double($0) * testFraction).rounded(.down))) }
    }

    /// Leave-last-out (`leaveLastOutDescription`): each user's latest step is their test
    /// item, for users with at least three steps; the step's value comes off its pair (the
    /// pair goes when nothing is left). Without steps, the pairs in time order stand for them.
    public func leaveLastOut() -> (train: Interactions, test: [[Int32]]) {
        guard let steps else { return split { $0 < 3 ? 0 : 1 } }
        var test = [[Int32]](repeating: [], count: users)
        var triples: [(row: Int32, col: Int32, value: Float)] = [], kept: [UInt32] = []
        triples.reserveCapacity(pairs)
        kept.reserveCapacity(pairs)
        var trainSteps = steps
        for u in 0..<users {
            let last = steps[u].count >= 3 ? steps[u].last : nil
            if let last {
                test[u] = [last.item]
                trainSteps[u].removeLast()
            }
            for j in matrix.rowStart[u]..<matrix.rowStart[u + 1] {
                var value = matrix.values[j]
                if let last, matrix.indices[j] == last.item {
                    value -= last.value
                    if value <= 1e-4 * matrix.values[j] { continue }
                }
                triples.append((Int32(u), matrix.indices[j], value))
                kept.append(times[j])
            }
        }
        // Triples were added in CSR order, which the matrix keeps.
        var train = Interactions(
            userIDs: userIDs, itemIDs: itemIDs, itemCategories: itemCategories,
            matrix: SparseMatrix(rows: users, cols: items, triples: triples), times: kept)
        train.steps = trainSteps
        return (train, test)
    }

    /// User u's entries (indices into `matrix.indices`) by latest event, oldest first; ties
    /// (a basket's lines share a time) go by item id, so the order does not depend on the
    /// order the items were first seen in.
    public func timeOrder(_ u: Int) -> [Int] {
        (matrix.rowStart[u]..<matrix.rowStart[u + 1]).sorted {
            times[$0] != times[$1] ? times[$0] < times[$1] : itemIDs[Int(matrix.indices[$0])] < itemIDs[Int(matrix.indices[$1])]
        }
    }

    /// Each user's items (dense indices) in order: their steps when kept, else their pairs
    /// by latest interaction.
    public var sequences: [[Int32]] {
        (0..<users).map(sequence)
    }

    /// User u's items in order (see `sequences`).
    public func sequence(_ u: Int) -> [Int32] {
        steps.map { $0[u].map(\.item) } ?? timeOrder(u).map { matrix.indices[$0] }
    }

    /// Splits at one moment for every user: the pairs whose latest event comes in the last
    /// `fraction` of the pairs' times (a period, as a shop lives it: what each user met for
    /// the first time after the cut) are the test items; the rest train. Users with nothing
    /// before the cut have no test items (theirs stay in training).
    public func splitByPeriod(testFraction: Double = 0.2) -> (train: Interactions, test: [[Int32]]) {
        guard pairs > 0 else { return (self, [[Int32]](repeating: [], count: users)) }
        let sorted = times.sorted()
        let cut = sorted[min(sorted.count - 1, Int(Double(sorted.count) * (1 - testFraction)))]
        // Only users with something before the cut are tested.
        let tested = (0..<users).map { u in (matrix.rowStart[u]..<matrix.rowStart[u + 1]).contains { times[$0] < cut } }
        return split { u, j in tested[u] && times[j] >= cut }
    }

    /// Holds out each user's latest `held(pairs)` pairs as their test items.
    private func split(held: (Int) -> Int) -> (train: Interactions, test: [[Int32]]) {
        var tested = Set<Int>()
        for u in 0..<users {
            let order = timeOrder(u)
            tested.formUnion(order.suffix(held(order.count)))
        }
        return split { _, j in tested.contains(j) }
    }

    /// Holds out the pairs `isTest(user, entry)` says are test items.
    private func split(isTest: (Int, Int) -> Bool) -> (train: Interactions, test: [[Int32]]) {
        var triples: [(row: Int32, col: Int32, value: Float)] = []
        triples.reserveCapacity(pairs)
        var trainTimes: [(Int32, Int32, UInt32)] = []
        trainTimes.reserveCapacity(pairs)
        var test = [[Int32]](repeating: [], count: users)
        for u in 0..<users {
            for j in timeOrder(u) {
                if isTest(u, j) {
                    test[u].append(matrix.indices[j])
                } else {
                    triples.append((Int32(u), matrix.indices[j], matrix.values[j]))
                    trainTimes.append((Int32(u), matrix.indices[j], times[j]))
                }
            }
        }
        let train = SparseMatrix(rows: users, cols: items, triples: triples)
        trainTimes.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        return (
            Interactions(userIDs: userIDs, itemIDs: itemIDs, itemCategories: itemCategories, matrix: train, times: trainTimes.map(\.2)),
            test
        )
    }
}

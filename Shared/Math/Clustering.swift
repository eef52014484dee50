import Foundation

/// k-means: greedy k-means++ seeding (Arthur and Vassilvitskii, 2007), then Lloyd steps, the
/// squared distances of a block of rows to every centre taken from one matrix product
/// (‖x‖² − 2·x·c + ‖c‖²). A centre left empty is moved to the row farthest from its own.
/// Rows are row-major, `cols` values each; standardise them first when their units differ.
public struct KMeans: Sendable, Equatable {
    public var centres: Matrix
    /// Sum of squared distances of the training rows to their centres.
    public var inertia: Double
    public var iterations: Int

    public var k: Int { centres.rows }

    public init(centres: Matrix, inertia: Double, iterations: Int) {
        self.centres = centres
        self.inertia = inertia
        self.iterations = iterations
    }

    /// Fits `k` centres to `rows` (n × cols), stopping when no row changes its centre, when
    /// the centres' squared moves add up to less than `tolerance` times the rows' mean
    /// variance per column (scikit-learn's rule), or after `maxIterations`.
    public static func fit(rows: [Float], cols: Int, k: Int, seed: UInt64 = 1, maxIterations: Int = 100, tolerance: Double = 1e-4) -> KMeans
    {
        let n = rows.count / max(1, cols)
        precondition(rows.count == n * cols && k >= 1 && n >= k, "k-means of \(n) rows into \(k) clusters")
        let data = Matrix(rows: n, cols: cols, values: rows)
        var rng = SplitMix(seed: seed)
        var centres = seedPlusPlus(data, k: k, rng: &rng)
        var labels = [Int32](repeating: -1, count: n), previous = labels
        var distances = [Float](repeating: 0, count: n)
        var iterations = 0
        // The rows' mean variance per column: the scale the centres' moves are measured by.
        var meanVariance = 0.0
        for j in 0..<cols {
            var sum = 0.0, squares = 0.0
            for i in 0..<n {
                let v = Double(rows[i * cols + j])
                sum += v
                squares += v * v
            }
            meanVariance += max(0, squares / Double(n) - (sum / Double(n)) * (sum / Double(n))) / Double(max(1, cols))
        }
        for step in 1...max(1, maxIterations) {
            iterations = step
            swap(&labels, &previous)
            assign(data, centres, labels: &labels, distances: &distances)
            if labels == previous { break }
            // New centres: the mean of each cluster's rows.
            var sums = [Double](repeating: 0, count: k * cols)
            var counts = [Int](repeating: 0, count: k)
            for i in 0..<n {
                let c = Int(labels[i])
                counts[c] += 1
                for j in 0..<cols { sums[c * cols + j] += Double(data.values[i * cols + j]) }
            }
            var next = Matrix(rows: k, cols: cols)
            for c in 0..<k {
                if counts[c] == 0 {
                    // An empty cluster takes the row farthest from its centre.
                    let far = distances.indices.max { distances[$0] < distances[$1] }!
                    for j in 0..<cols { next[c, j] = data[far, j] }
                    distances[far] = 0
                } else {
                    for j in 0..<cols { next[c, j] = Float(sums[c * cols + j] / Double(counts[c])) }
                }
            }
            var shift = 0.0
            for i in 0..<(k * cols) { shift += Double((next.values[i] - centres.values[i]) * (next.values[i] - centres.values[i])) }
            centres = next
            if shift <= tolerance * meanVariance { break }
        }
        let inertia = assign(data, centres, labels: &labels, distances: &distances)
        return KMeans(centres: centres, inertia: inertia, iterations: iterations)
    }

    /// Each row's nearest centre (and its squared distance); returns the inertia.
    @discardableResult
    static func assign(_ data: Matrix, _ centres: Matrix, labels: inout [Int32], distances: inout [Float]) -> Double {
        let n = data.rows, k = centres.rows, cols = data.cols
        let centreNorms = (0..<k).map { c in centres.values.withBase { Vec.dot($0 + c * cols, $0 + c * cols, cols) } }
        var inertia = 0.0
        let block = 4096
        var start = 0
        while start < n {
            let rows = min(block, n - start)
            let part = Matrix(rows: rows, cols: cols, values: Array(data.values[start * cols..<(start + rows) * cols]))
            let products = Kernels.gemm(part, centres, transposeB: true)
            for r in 0..<rows {
                let i = start + r
                let norm = data.values.withBase { Vec.dot($0 + i * cols, $0 + i * cols, cols) }
                var best: Float = .infinity, which: Int32 = 0
                for c in 0..<k {
                    let d = norm - 2 * products.values[r * k + c] + centreNorms[c]
                    if d < best { (best, which) = (d, Int32(c)) }
                }
                labels[i] = which
                distances[i] = max(0, best)
                inertia += Double(max(0, best))
            }
            start += rows
        }
        return inertia
    }

    /// Greedy k-means++ (scikit-learn's seeding): each next centre is the best, by the
    /// squared distances it leaves, of 2 + ln k rows drawn with probability proportional to
    /// their squared distance from the nearest centre so far.
    static func seedPlusPlus(_ data: Matrix, k: Int, rng: inout SplitMix) -> Matrix {
        let n = data.rows, cols = data.cols
        var centres = Matrix(rows: k, cols: cols)
        let first = rng.below(n)
        for j in 0..<cols { centres[0, j] = data[first, j] }
        let trials = 2 + Int(log(Double(k)))
        /// Each row's squared distance to row `r`.
        func distances(to r: Int) -> [Double] {
            data.values.withBase { x in (0..<n).map { i in Double(Vec.squaredDistance(x + i * cols, x + r * cols, cols)) } }
        }
        var nearest = distances(to: first)
        for c in 1..<max(1, k) {
            let total = nearest.reduce(0, +)
            var best: (row: Int, nearest: [Double], potential: Double)? = nil
            for _ in 0..<trials {
                var pick = rng.below(n)
                if total > 0 {
                    var target = Double(rng.next() >> 11) / Double(1 << 53) * total
                    for i in 0..<n {
                        target -= nearest[i]
                        if target <= 0 {
                            pick = i
                            break
                        }
                    }
                }
                let candidate = zip(nearest, distances(to: pick)).map { min($0, $1) }
                let potential = candidate.reduce(0, +)
                if best == nil || potential < best!.potential { best = (pick, candidate, potential) }
            }
            nearest = best!.nearest
            for j in 0..<cols { centres[c, j] = data[best!.row, j] }
        }
        return centres
    }

    /// The nearest centre of one row.
    public func cluster(_ row: [Float]) -> Int {
        var best: Float = .infinity, which = 0
        row.withBase { r in
            centres.values.withBase { cp in
                for c in 0..<k {
                    let d = Vec.squaredDistance(r, cp + c * centres.cols, centres.cols)
                    if d < best { (best, which) = (d, c) }
                }
            }
        }
        return which
    }

    /// The clusters of many rows.
    public func clusters(rows: [Float]) -> [Int32] {
        let cols = centres.cols, n = rows.count / cols
        var labels = [Int32](repeating: 0, count: n), distances = [Float](repeating: 0, count: n)
        Self.assign(Matrix(rows: n, cols: cols, values: rows), centres, labels: &labels, distances: &distances)
        return labels
    }

    /// The mean silhouette of a clustering (Rousseeuw, 1987) over at most `sample` rows
    /// (evenly spaced): (b − a) / max(a, b), a the mean distance to the row's own cluster, b
    /// to the nearest other. In [−1, 1], higher is better separated.
    public static func silhouette(rows: [Float], cols: Int, labels: [Int32], sample: Int = 2000) -> Double {
        let n = labels.count
        guard n > 1 else { return 0 }
        let k = Int(labels.max()!) + 1
        let step = max(1, n / sample)
        let picked = Array(stride(from: 0, to: n, by: step))
        var total = 0.0
        var counted = 0
        rows.withBase { x in
            for i in picked {
                var sums = [Double](repeating: 0, count: k), counts = [Int](repeating: 0, count: k)
                for j in picked where j != i {
                    var d: Float = 0
                    for t in 0..<cols {
                        let v = x[i * cols + t] - x[j * cols + t]
                        d += v * v
                    }
                    sums[Int(labels[j])] += Double(d.squareRoot())
                    counts[Int(labels[j])] += 1
                }
                let own = Int(labels[i])
                guard counts[own] > 0 else { continue }
                let a = sums[own] / Double(counts[own])
                var b = Double.infinity
                for c in 0..<k where c != own && counts[c] > 0 { b = min(b, sums[c] / Double(counts[c])) }
                guard b.isFinite else { continue }
                total += (b - a) / max(a, b)
                counted += 1
            }
        }
        return counted == 0 ? 0 : total / Double(counted)
    }

    /// The k in `range` whose clustering has the best silhouette, and that clustering (with
    /// fewer rows than the range starts at, one cluster per row).
    public static func choose(rows: [Float], cols: Int, range: ClosedRange<Int>, seed: UInt64 = 1) -> (
        model: KMeans, silhouettes: [(k: Int, score: Double)]
    ) {
        let n = rows.count / max(1, cols)
        guard n >= max(2, range.lowerBound) else {
            return (fit(rows: rows, cols: cols, k: max(1, min(n, range.lowerBound)), seed: seed), [])
        }
        var best: (KMeans, Double)? = nil
        var scores: [(Int, Double)] = []
        for k in range where k <= rows.count / cols {
            let m = fit(rows: rows, cols: cols, k: k, seed: seed)
            let s = silhouette(rows: rows, cols: cols, labels: m.clusters(rows: rows))
            scores.append((k, s))
            if best == nil || s > best!.1 { best = (m, s) }
        }
        return (best!.0, scores)
    }
}

/// Fuzzy c-means (Bezdek, 1981): each row belongs to every cluster by a degree, the
/// degrees of a row summing to one, u = 1 / Σₖ (dᵢ / dₖ)^(2/(m−1)), with fuzziness m
/// (2 by default); centres are the means weighted by uᵐ. Starts from k-means' centres.
public struct FuzzyCMeans: Sendable, Equatable {
    public var centres: Matrix
    public var fuzziness: Float

    public init(centres: Matrix, fuzziness: Float) {
        self.centres = centres
        self.fuzziness = fuzziness
    }

    public static func fit(
        rows: [Float], cols: Int, k: Int, fuzziness m: Float = 2, seed: UInt64 = 1, maxIterations: Int = 100, tolerance: Float = 1e-5
    ) -> FuzzyCMeans {
        let n = rows.count / cols
        var model = FuzzyCMeans(centres: KMeans.fit(rows: rows, cols: cols, k: k, seed: seed).centres, fuzziness: m)
        for _ in 0..<maxIterations {
            var sums = [Double](repeating: 0, count: k * cols), weights = [Double](repeating: 0, count: k)
            for i in 0..<n {
                let row = Array(rows[i * cols..<(i + 1) * cols])
                let u = model.memberships(row)
                for c in 0..<k {
                    let w = Double(pow(u[c], m))
                    weights[c] += w
                    for j in 0..<cols { sums[c * cols + j] += w * Double(row[j]) }
                }
            }
            var moved: Float = 0
            var next = model.centres
            for c in 0..<k where weights[c] > 0 {
                for j in 0..<cols {
                    let v = Float(sums[c * cols + j] / weights[c])
                    moved = max(moved, abs(v - next[c, j]))
                    next[c, j] = v
                }
            }
            model.centres = next
            if moved < tolerance { break }
        }
        return model
    }

    /// A row's degree of membership in each cluster (summing to one).
    public func memberships(_ row: [Float]) -> [Float] {
        let k = centres.rows
        let distances = row.withBase { r in
            centres.values.withBase { cp in (0..<k).map { c in Vec.squaredDistance(r, cp + c * centres.cols, centres.cols).squareRoot() } }
        }
        if let exact = distances.firstIndex(where: { $0 < 1e-12 }) {
            return (0..<k).map { $0 == exact ? 1 : 0 }
        }
        let power = 2 / (fuzziness - 1)
        return (0..<k).map { c in 1 / distances.reduce(0) { $0 + pow(distances[c] / $1, power) } }
    }
}

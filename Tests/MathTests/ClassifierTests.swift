import Foundation
import Math
import Testing

/// Rows of `d` uniform features in [0, 1) and labels from `rule`.
func planted(_ rng: inout SplitMix, rows n: Int, features d: Int, rule: ([Float]) -> Bool) -> (rows: [Float], labels: [Float]) {
    var rows: [Float] = []
    var labels: [Float] = []
    for _ in 0..<n {
        let r = (0..<d).map { _ in rng.unit() }
        rows += r
        labels.append(rule(r) ? 1 : 0)
    }
    return (rows, labels)
}

func accuracy(_ predict: ([Float]) -> Float, _ data: (rows: [Float], labels: [Float]), features d: Int) -> Double {
    var right = 0
    for i in 0..<data.labels.count {
        let p = predict(Array(data.rows[i * d..<(i + 1) * d]))
        if (p > 0.5) == (data.labels[i] > 0.5) { right += 1 }
    }
    return Double(right) / Double(data.labels.count)
}

@Suite("Classifiers")
struct ClassifierTests {
    @Test("logistic regression separates linearly separable data, and explains by coefficient times standardised value")
    func logistic() throws {
        var rng = SplitMix(seed: 5)
        let data = planted(&rng, rows: 600, features: 3) { $0[0] + 2 * $0[1] > 1.4 }
        var p = LogisticRegression.Parameters()
        p.l2 = 1e-3
        let model = try LogisticRegression.train(rows: data.rows, labels: data.labels, features: 3, parameters: p)
        #expect(accuracy({ sigmoid(model.margin($0)) }, data, features: 3) >= 0.99)
        // The noise feature matters least; feature 1 about twice feature 0 (in raw units).
        let raw = (0..<3).map { model.coefficients[$0] / model.scales[$0] }
        #expect(abs(raw[2]) < abs(raw[0]) && abs(raw[1] / raw[0] - 2) < 0.3, "\(raw)")
        let row: [Float] = [0.9, 0.8, 0.1]
        #expect(abs(model.attributions(row).reduce(0, +) + model.intercept - model.margin(row)) < 1e-4)
        #expect(model.margin([.nan, 0.8, 0.1]).isFinite)
    }

    @Test(
        """
        FTRL-Proximal converges on a stream: the log loss falls to near the true model's, weights take the planted \
        signs, L1 zeroes the noise, its state round-trips
        """
    )
    func ftrlOnAStream() throws {
        var rng = SplitMix(seed: 11)
        // y ~ Bernoulli(sigmoid(4 x0 - 3 x1 - 0.5)), x2 and x3 noise.
        let truth: ([Float]) -> Double = { 4 * Double($0[0]) - 3 * Double($0[1]) - 0.5 }
        var rows: [[Float]] = [], labels: [Float] = []
        for _ in 0..<20_000 {
            let r = (0..<4).map { _ in rng.unit() * 2 - 1 }
            rows.append(r)
            labels.append(Double(rng.unit()) < 1 / (1 + exp(-truth(r))) ? 1 : 0)
        }
        var learner = FTRLProximal(standardisingBy: rows.prefix(500).flatMap { $0 }, features: 4)
        var losses: [Double] = []
        for (r, y) in zip(rows, labels) {
            let p = min(max(learner.learn(r, label: y), 1e-7), 1 - 1e-7)
            losses.append(y == 1 ? -log(p) : -log(1 - p))
        }
        func mean(_ x: ArraySlice<Double>) -> Double { x.reduce(0, +) / Double(x.count) }
        let best = mean(
            zip(rows, labels).map { r, y -> Double in
                let p = 1 / (1 + exp(-truth(r)))
                return y == 1 ? -log(p) : -log(1 - p)
            }[15_000...])
        #expect(mean(losses[..<1000]) > mean(losses[15_000...]))
        #expect(mean(losses[15_000...]) < best + 0.02, "\(mean(losses[15_000...])) vs the true model's \(best)")
        let model = learner.logistic()
        let raw = (0..<4).map { model.coefficients[$0] / model.scales[$0] }
        #expect(raw[0] > 2.5 && raw[1] < -2 && abs(raw[2]) < 0.3 && abs(raw[3]) < 0.3, "\(raw)")
        #expect(abs(Double(model.margin(rows[7])) - learner.margin(rows[7])) < 1e-4)
        let back = try FTRLProximal.decode(learner.encode())
        #expect(back == learner)
        #expect(throws: FTRLProximal.Corrupt.self) { try FTRLProximal.decode(Array(learner.encode().dropLast(3))) }
    }

    @Test("boosted trees learn a planted rule with an interaction and missing values, and stop early on validation")
    func trees() {
        var rng = SplitMix(seed: 8)
        let rule: ([Float]) -> Bool = { ($0[0] > 0.6 && $0[1] < 0.3) || $0[2] > 0.9 }
        var train = planted(&rng, rows: 4000, features: 5, rule: rule)
        // Missing x0 means positive: a pattern only the missing-value direction can learn.
        for i in stride(from: 0, to: 4000, by: 10) {
            train.rows[i * 5] = .nan
            train.labels[i] = 1
        }
        let valid = planted(&rng, rows: 1000, features: 5, rule: rule)
        var p = BoostedTrees.Parameters()
        p.trees = 400
        p.learningRate = 0.2
        let model = BoostedTrees.train(
            rows: train.rows, labels: train.labels, features: 5, parameters: p, validation: (valid.rows, valid.labels))
        let test = planted(&rng, rows: 2000, features: 5, rule: rule)
        #expect(accuracy({ model.probability($0) }, test, features: 5) >= 0.98)
        #expect(model.probability([.nan, 0.9, 0.1, 0.2, 0.5]) > 0.9)
        #expect(model.trees.count < 400 && model.validationLoss.count >= model.trees.count)
        // The noise features (3, 4) gain least.
        let gain = model.gainImportance
        #expect(gain[3] < gain[0] && gain[4] < gain[1], "\(gain)")
    }

    @Test(
        """
        LambdaMART ranks each group by a planted non-linear relevance far better than any one feature does, \
        and keeps the trees with the best validation NDCG
        """
    )
    func ranker() {
        var rng = SplitMix(seed: 21)
        // Groups of 30 rows; a row is relevant when x0 is high and x1 is not, or x2 is very high:
        // no single column orders the group.
        func groups(_ count: Int) -> (rows: [Float], relevance: [Float], groups: [Int]) {
            var rows: [Float] = [], relevance: [Float] = [], starts = [0]
            for _ in 0..<count {
                for _ in 0..<30 {
                    let r = (0..<4).map { _ in rng.unit() }
                    rows += r
                    relevance.append((r[0] > 0.7 && r[1] < 0.5) || r[2] > 0.95 ? 1 : 0)
                }
                starts.append(relevance.count)
            }
            return (rows, relevance, starts)
        }
        let train = groups(300), valid = groups(100), test = groups(200)
        var p = BoostedTrees.Parameters()
        p.trees = 200
        p.learningRate = 0.1
        p.maxLeaves = 15
        p.l2 = 0.1
        let model = BoostedTrees.trainRanker(
            rows: train.rows, relevance: train.relevance, groups: train.groups, features: 4, k: 10, parameters: p,
            validation: (valid.rows, valid.relevance, valid.groups))
        let margins = (0..<test.relevance.count).map { i in model.margin(Array(test.rows[(i * 4)..<(i * 4 + 4)])) }
        let learned = BoostedTrees.ndcg(margins, test.relevance, test.groups, k: 10)
        let byColumn = (0..<4).map { f in
            BoostedTrees.ndcg((0..<test.relevance.count).map { test.rows[$0 * 4 + f] }, test.relevance, test.groups, k: 10)
        }
        #expect(learned > 0.95 && learned > byColumn.max()! + 0.2, "learned \(learned), by one column \(byColumn)")
        #expect(model.validationLoss.count >= model.trees.count && model.trees.count > 0)
        // The relevant rows' margins sit above the rest's in a group.
        #expect(model.margin([0.9, 0.1, 0.2, 0.5]) > model.margin([0.2, 0.9, 0.2, 0.5]))
    }

    @Test("TreeSHAP attributions sum to the margin and equal brute-force Shapley values on small trees")
    func shap() {
        var rng = SplitMix(seed: 13)
        let data = planted(&rng, rows: 800, features: 4) { $0[0] > 0.5 && ($0[1] > 0.3 || $0[3] < 0.2) }
        let model = treesToExplain(data, features: 4, trees: 6, leaves: 8, depth: 4, learningRate: 0.5)
        let shap = TreeSHAP(model)
        #expect(shap.isTabled)
        for _ in 0..<10 {
            var row = (0..<4).map { _ in rng.unit() }
            if rng.below(3) == 0 { row[1] = .nan }
            let phi = shap.attributions(row), paths = shap.exactByPaths(row)
            #expect(abs(shap.expected + phi.reduce(0, +) - model.margin(row)) < 1e-4)
            let brute = bruteForceShapley(model, row)
            for f in 0..<4 {
                #expect(abs(phi[f] - brute[f]) < 1e-4, "feature \(f): \(phi[f]) against \(brute[f])")
                #expect(abs(paths[f] - brute[f]) < 1e-4, "feature \(f), by paths: \(paths[f]) against \(brute[f])")
            }
        }
    }

    @Test("the tabled TreeSHAP equals Algorithm 2 on deep trees that split on a feature again and again")
    func shapTablesMatchPaths() {
        var rng = SplitMix(seed: 17)
        let data = planted(&rng, rows: 3000, features: 6) { $0[0] > 0.5 && ($0[1] > 0.3 || $0[0] > 0.8) || $0[2] < 0.1 }
        let model = treesToExplain(data, features: 6, trees: 40, leaves: 63, depth: 6, learningRate: 0.05)
        let shap = TreeSHAP(model)
        #expect(shap.isTabled)
        for _ in 0..<50 {
            var row = (0..<6).map { _ in rng.unit() }
            if rng.below(4) == 0 { row[Int(rng.below(6))] = .nan }
            let phi = shap.attributions(row), paths = shap.exactByPaths(row)
            #expect(abs(shap.expected + phi.reduce(0, +) - model.margin(row)) < 1e-3)
            for f in 0..<6 { #expect(abs(phi[f] - paths[f]) < 1e-4 * max(1, abs(paths[f])), "feature \(f): \(phi[f]) against \(paths[f])") }
        }
    }

    func treesToExplain(_ data: (rows: [Float], labels: [Float]), features: Int, trees: Int, leaves: Int, depth: Int, learningRate: Float)
        -> BoostedTrees
    {
        var p = BoostedTrees.Parameters()
        (p.trees, p.maxLeaves, p.maxDepth, p.learningRate, p.minRowsInLeaf) = (trees, leaves, depth, learningRate, 5)
        return BoostedTrees.train(rows: data.rows, labels: data.labels, features: features, parameters: p)
    }

    /// E[f(x) | x_S] with absent features averaged over the children by cover, per tree.
    func conditional(_ model: BoostedTrees, _ row: [Float], _ present: Set<Int>) -> Double {
        func walk(_ t: BoostedTrees.Tree, _ i: Int) -> Double {
            let n = t.nodes[i]
            guard n.feature >= 0 else { return Double(n.value) }
            if present.contains(Int(n.feature)) {
                let v = row[Int(n.feature)]
                return walk(t, Int((v.isNaN ? n.missingLeft : v <= n.threshold) ? n.left : n.right))
            }
            let l = t.nodes[Int(n.left)].cover, r = t.nodes[Int(n.right)].cover
            return (Double(l) * walk(t, Int(n.left)) + Double(r) * walk(t, Int(n.right))) / Double(l + r)
        }
        return Double(model.base) + model.trees.reduce(0) { $0 + walk($1, 0) }
    }

    func bruteForceShapley(_ model: BoostedTrees, _ row: [Float]) -> [Float] {
        let m = model.features
        func factorial(_ k: Int) -> Double { k <= 1 ? 1 : Double(k) * factorial(k - 1) }
        return (0..<m).map { i in
            var phi = 0.0
            for mask in 0..<(1 << m) where mask & (1 << i) == 0 {
                let s = Set((0..<m).filter { mask & (1 << $0) != 0 })
                let w = factorial(s.count) * factorial(m - s.count - 1) / factorial(m)
                phi += w * (conditional(model, row, s.union([i])) - conditional(model, row, s))
            }
            return Float(phi)
        }
    }

    @Test("isotonic calibration is monotone and matches observed rates; AUCs and thresholds on known cases")
    func calibrationAndMetrics() {
        var rng = SplitMix(seed: 2)
        var scores: [Float] = [], labels: [Float] = []
        for _ in 0..<5000 {
            let s = rng.unit()
            scores.append(s)
            labels.append(rng.unit() < s * s ? 1 : 0)  // the true probability is s²
        }
        let c = IsotonicCalibration(scores: scores, labels: labels)
        #expect(zip(c.probabilities, c.probabilities.dropFirst()).allSatisfy { $0 <= $1 })
        for s: Float in [0.2, 0.5, 0.8] { #expect(abs(c.probability(s) - s * s) < 0.07, "at \(s): \(c.probability(s))") }

        #expect(BinaryMetrics.rocAUC([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75)
        #expect(BinaryMetrics.rocAUC([1, 2, 3], [0, 1, 1]) == 1)
        // scikit-learn's average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.8333...
        #expect(abs(BinaryMetrics.prAUC([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 5.0 / 6) < 1e-9)
        let t = BinaryMetrics.threshold(forPrecision: 1, [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
        #expect(t?.threshold == 0.8 && t?.recall == 0.5)
        #expect(BinaryMetrics.threshold(forShare: 0.5, [0.1, 0.4, 0.35, 0.8]) == 0.4)
    }
}

@Suite("Clustering")
struct ClusteringTests {
    /// Rows around `k` planted centres far apart.
    func planted(_ rng: inout SplitMix, k: Int, perCluster: Int, cols: Int) -> (rows: [Float], truth: [Int], centres: [[Float]]) {
        let centres: [[Float]] = (0..<k).map { c in
            (0..<cols).map { j -> Float in
                let level = (c * 7 + j * 3) % 11
                return Float(level) * 3
            }
        }
        var rows: [Float] = [], truth: [Int] = []
        for c in 0..<k {
            for _ in 0..<perCluster {
                rows += centres[c].map { $0 + 0.5 * (rng.unit() * 2 - 1) }
                truth.append(c)
            }
        }
        return (rows, truth, centres)
    }

    @Test("k-means finds planted clusters (every cluster pure), and the silhouette chooses their number")
    func kmeans() {
        var rng = SplitMix(seed: 4)
        let data = planted(&rng, k: 4, perCluster: 150, cols: 5)
        let model = KMeans.fit(rows: data.rows, cols: 5, k: 4)
        let labels = model.clusters(rows: data.rows)
        for c in 0..<4 {
            let mine = Set(data.truth.indices.filter { data.truth[$0] == c }.map { labels[$0] })
            #expect(mine.count == 1, "planted cluster \(c) split over \(mine)")
        }
        #expect(Set(labels).count == 4)
        // Each found centre is within the noise of a planted one.
        for c in 0..<4 {
            let found = model.centres.row(c)
            #expect(data.centres.contains { zip($0, found).allSatisfy { abs($0 - $1) < 0.2 } })
        }
        let (chosen, scores) = KMeans.choose(rows: data.rows, cols: 5, range: 2...7)
        #expect(chosen.k == 4, "\(scores)")
        #expect(model.cluster(Array(data.rows[0..<5])) == Int(labels[0]))
    }

    @Test("fuzzy c-means memberships sum to one and are near one for a row at a centre, split for a row between two")
    func fuzzy() {
        var rng = SplitMix(seed: 6)
        let data = planted(&rng, k: 3, perCluster: 100, cols: 4)
        let model = FuzzyCMeans.fit(rows: data.rows, cols: 4, k: 3)
        for i in stride(from: 0, to: 300, by: 17) {
            let u = model.memberships(Array(data.rows[i * 4..<(i + 1) * 4]))
            #expect(abs(u.reduce(0, +) - 1) < 1e-4)
            #expect(u.max()! > 0.9)
        }
        let middle = zip(data.centres[0], data.centres[1]).map { ($0 + $1) / 2 }
        let u = model.memberships(middle).sorted(by: >)
        #expect(u[0] < 0.7 && u[1] > 0.3, "\(u)")
    }
}

import Foundation
public import Math
import Store
import Wire

/// Customer segments as the model service publishes them: k-means centres (and fuzzy
/// c-means centres for degrees of membership) over standardised profile features, with
/// what sets each segment apart, in the units a person reads.
public struct Segmentation: Sendable, Equatable {
    /// The profile features (GetFeatures names), and which enter as log(1 + x).
    public var features: [String]
    public var logged: [Bool]
    public var means: [Float]
    public var scales: [Float]
    public var centres: Matrix
    public var fuzzyCentres: Matrix
    /// Users per segment in training, and each segment's median of every raw feature.
    public var sizes: [Int]
    public var medians: [[Float]]
    /// Every user's median of every raw feature.
    public var overall: [Float]

    public init(
        features: [String], logged: [Bool], means: [Float], scales: [Float], centres: Matrix, fuzzyCentres: Matrix, sizes: [Int],
        medians: [[Float]], overall: [Float]
    ) {
        self.features = features
        self.logged = logged
        self.means = means
        self.scales = scales
        self.centres = centres
        self.fuzzyCentres = fuzzyCentres
        self.sizes = sizes
        self.medians = medians
        self.overall = overall
    }

    /// The profile features segments are made of, and which are counts or amounts.
    public static let defaultFeatures: [(name: String, logged: Bool)] = [
        ("recency_days", false), ("frequency", true), ("monetary", true), ("average_order_value", true), ("distinct_items", true),
        ("distinct_categories", true), ("sessions", true), ("purchase_interval_mean_days", false), ("days_since_first_seen", false),
    ]

    public var k: Int { centres.rows }

    /// A raw row (GetFeatures values in `features` order) as the clustering sees it.
    public func standardised(_ raw: [Float]) -> [Float] {
        raw.indices.map { j in
            let v = raw[j].isFinite ? raw[j] : means[j]
            let x = logged[j] ? log1p(max(0, v)) : v
            return (x - means[j]) / scales[j]
        }
    }

    /// The segment of a raw row, and its degree of membership in every segment.
    public func assign(_ raw: [Float]) -> (segment: Int, memberships: [Float]) {
        let x = standardised(raw)
        let segment = KMeans(centres: centres, inertia: 0, iterations: 0).cluster(x)
        return (segment, FuzzyCMeans(centres: fuzzyCentres, fuzziness: 2).memberships(x))
    }

    /// What sets a segment apart: its medians against everyone's, in words.
    public func describe(_ segment: Int) -> String {
        let m = medians[segment]
        func value(_ name: String) -> (Float, Float)? {
            features.firstIndex(of: name).map { (m[$0], overall[$0]) }
        }
        var parts: [String] = []
        if let (spend, all) = value("monetary"), all > 0 { parts.append(String(format: "spends %.1fx the median", spend / all)) }
        if let (orders, _) = value("frequency") { parts.append(orders == 1 ? "1 order" : String(format: "%.0f orders", orders)) }
        if let (interval, _) = value("purchase_interval_mean_days"), interval > 0 {
            parts.append(String(format: "buys every %.0f days", interval))
        }
        if let (recency, _) = value("recency_days") { parts.append(String(format: "last seen %.0f days ago", recency)) }
        if let (items, _) = value("distinct_items"), items > 0 { parts.append(String(format: "%.0f distinct items", items)) }
        return parts.joined(separator: ", ")
    }

    // MARK: Artifact

    public static let formatVersion: UInt32 = 1

    /// Checksummed like the classifiers ("PSEG", CRC-32C of every byte).
    public func encode() -> [UInt8] {
        var w = SnapshotWriter(magic: "PSEG", version: Self.formatVersion, expectedBytes: 1 << 12)
        w.array(features) { $0.string($1) }
        w.plain(logged.map { $0 ? UInt8(1) : 0 })
        w.plain(means)
        w.plain(scales)
        for m in [centres, fuzzyCentres] {
            w.u32(UInt32(m.rows))
            w.u32(UInt32(m.cols))
            w.plain(m.values)
        }
        w.plain(sizes.map { Int64($0) })
        w.array(medians) { $0.plain($1) }
        w.plain(overall)
        return w.finish()
    }

    public static func decode(_ bytes: [UInt8]) throws -> Segmentation {
        do {
            var r = try SnapshotReader(bytes, magic: "PSEG")
            guard r.version == formatVersion else {
                throw Classifier.Corrupt(description: "segmentation format \(r.version) is not \(formatVersion)")
            }
            let features = try r.array { try $0.string() }
            let logged = try r.plain(UInt8.self).map { $0 != 0 }
            let means = try r.plain(Float.self), scales = try r.plain(Float.self)
            func matrix() throws -> Matrix {
                let rows = Int(try r.u32()), cols = Int(try r.u32())
                let values = try r.plain(Float.self)
                guard values.count == rows * cols, cols == features.count, rows > 0 else {
                    throw Classifier.Corrupt(description: "segment centres disagree")
                }
                return Matrix(rows: rows, cols: cols, values: values)
            }
            let centres = try matrix(), fuzzy = try matrix()
            let sizes = try r.plain(Int64.self).map { Int($0) }
            let medians = try r.array { try $0.plain(Float.self) }
            let overall = try r.plain(Float.self)
            let d = features.count
            guard logged.count == d, means.count == d, scales.count == d, scales.allSatisfy({ $0 > 0 }), fuzzy.rows == centres.rows,
                sizes.count == centres.rows,
                medians.count == centres.rows, medians.allSatisfy({ $0.count == d }), overall.count == d
            else { throw Classifier.Corrupt(description: "segmentation tables disagree") }
            return Segmentation(
                features: features, logged: logged, means: means, scales: scales, centres: centres, fuzzyCentres: fuzzy, sizes: sizes,
                medians: medians, overall: overall)
        } catch let error as StoreError {
            throw Classifier.Corrupt(description: "\(error)")
        } catch let error as WireError {
            throw Classifier.Corrupt(description: "\(error)")
        }
    }

    /// Fits segments to raw profile rows (`features` order): standardised, k chosen by
    /// silhouette over `range` unless `k` is given.
    public static func fit(
        raw: [[Float]], features: [(name: String, logged: Bool)] = defaultFeatures, k: Int? = nil, range: ClosedRange<Int> = 3...8,
        seed: UInt64 = 1
    )
        -> (segmentation: Segmentation, silhouettes: [(k: Int, score: Double)], labels: [Int32])
    {
        let d = features.count, n = raw.count
        var means = [Float](repeating: 0, count: d), scales = [Float](repeating: 1, count: d)
        let transformed = raw.map { row in
            row.indices.map { j -> Float in
                let v = row[j].isFinite ? row[j] : 0
                return features[j].logged ? log1p(max(0, v)) : v
            }
        }
        for j in 0..<d {
            let column = transformed.map { $0[j] }
            let mean = column.reduce(0, +) / Float(max(1, n))
            let sd = (column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(max(1, n))).squareRoot()
            means[j] = mean
            scales[j] = sd > 1e-9 ? sd : 1
        }
        let rows = transformed.flatMap { row in row.indices.map { (row[$0] - means[$0]) / scales[$0] } }
        let model: KMeans
        var silhouettes: [(k: Int, score: Double)] = []
        if let k {
            model = KMeans.fit(rows: rows, cols: d, k: min(k, n), seed: seed)
        } else {
            (model, silhouettes) = KMeans.choose(
                rows: rows, cols: d, range: range.lowerBound...min(range.upperBound, max(range.lowerBound, n - 1)), seed: seed)
        }
        let labels = model.clusters(rows: rows)
        let fuzzy = FuzzyCMeans.fit(rows: rows, cols: d, k: model.k, seed: seed)
        func median(_ v: [Float]) -> Float { v.isEmpty ? 0 : v.sorted()[v.count / 2] }
        let sizes = (0..<model.k).map { c in labels.filter { $0 == Int32(c) }.count }
        let medians = (0..<model.k).map { c in (0..<d).map { j in median(raw.indices.filter { labels[$0] == Int32(c) }.map { raw[$0][j] }) }
        }
        let overall = (0..<d).map { j in median(raw.map { $0[j] }) }
        let s = Segmentation(
            features: features.map(\.name), logged: features.map(\.logged), means: means, scales: scales, centres: model.centres,
            fuzzyCentres: fuzzy.centres,
            sizes: sizes, medians: medians, overall: overall)
        return (s, silhouettes, labels)
    }
}

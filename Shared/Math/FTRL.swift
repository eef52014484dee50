import Foundation

/// Online logistic regression by FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View
/// from the Trenches", KDD 2013): per-coordinate learning rates, L1 and L2 regularisation,
/// one pass per row, no retraining. Inputs are standardised with means and scales fixed when
/// the learner starts (from its first rows), so `logistic()` is an ordinary
/// `LogisticRegression` any scorer of that kind serves and explains.
public struct FTRLProximal: Sendable, Equatable {
    public struct Parameters: Sendable, Equatable {
        /// Learning-rate scale (alpha) and its smoothing (beta): coordinate i moves by about
        /// alpha / (beta + sqrt(sum of its squared gradients)).
        public var alpha = 0.1
        public var beta = 1.0
        /// L1 drives weak weights to exactly 0; L2 shrinks the rest.
        public var l1 = 0.5
        public var l2 = 1.0
        public init() {}
    }

    public var parameters: Parameters
    public var means: [Float]
    public var scales: [Float]
    /// FTRL's per-coordinate state; index `features` is the intercept.
    public var z: [Double]
    public var n: [Double]
    /// Rows learned from.
    public var rows: Int = 0

    public var features: Int { means.count }

    public init(means: [Float], scales: [Float], parameters: Parameters = .init()) {
        precondition(means.count == scales.count)
        self.parameters = parameters
        self.means = means
        self.scales = scales.map { $0 > 0 && $0.isFinite ? $0 : 1 }
        z = [Double](repeating: 0, count: means.count + 1)
        n = z
    }

    /// A learner standardising by the mean and deviation of `rows` (row-major, `d` a row;
    /// NaN is missing and left out).
    public init(standardisingBy rows: [Float], features d: Int, parameters: Parameters = .init()) {
        let (means, scales) = LogisticRegression.standardisation(rows, features: d)
        self.init(means: means, scales: scales, parameters: parameters)
    }

    /// The weight of coordinate `i` from its state (0 while |z| is within L1).
    @inline(__always)
    func weight(_ i: Int) -> Double {
        let zi = z[i]
        guard abs(zi) > parameters.l1 else { return 0 }
        let sign: Double = zi < 0 ? -1 : 1
        return -(zi - sign * parameters.l1) / ((parameters.beta + n[i].squareRoot()) / parameters.alpha + parameters.l2)
    }

    @inline(__always)
    func input(_ row: [Float], _ f: Int) -> Double {
        let v = row[f]
        return v.isNaN ? 0 : Double((v - means[f]) / scales[f])
    }

    public func margin(_ row: [Float]) -> Double {
        var m = weight(features)
        for f in 0..<features { m += weight(f) * input(row, f) }
        return m
    }

    public func probability(_ row: [Float]) -> Double { 1 / (1 + exp(-margin(row))) }

    /// Learns one row (`label` 0 or 1, `weight` its importance) and returns the probability
    /// the model gave it before learning it (progressive validation).
    @discardableResult
    public mutating func learn(_ row: [Float], label: Float, weight rowWeight: Double = 1) -> Double {
        precondition(row.count == features)
        var weights = [Double](repeating: 0, count: features + 1)
        var m = 0.0
        for i in 0...features {
            weights[i] = weight(i)
            m += weights[i] * (i == features ? 1 : input(row, i))
        }
        let p = 1 / (1 + exp(-max(-35, min(35, m))))
        let residual = (p - Double(label)) * rowWeight
        for i in 0...features {
            let x = i == features ? 1 : input(row, i)
            guard x != 0 else { continue }
            let g = residual * x
            let sigma = ((n[i] + g * g).squareRoot() - n[i].squareRoot()) / parameters.alpha
            z[i] += g - sigma * weights[i]
            n[i] += g * g
        }
        rows += 1
        return p
    }

    /// The current weights as a logistic model on the same standardisation.
    public func logistic() -> LogisticRegression {
        LogisticRegression(
            means: means, scales: scales, coefficients: (0..<features).map { Float(weight($0)) }, intercept: Float(weight(features)))
    }

    // MARK: State on disk

    public struct Corrupt: Error, CustomStringConvertible {
        public var description: String
    }

    /// The learner's whole state (parameters, standardisation, z and n), to resume learning.
    public func encode() -> [UInt8] {
        var out: [UInt8] = Array("FTRL".utf8)
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func f64(_ v: Double) { u64(v.bitPattern) }
        u64(1)
        u64(UInt64(features))
        u64(UInt64(rows))
        for v in [parameters.alpha, parameters.beta, parameters.l1, parameters.l2] { f64(v) }
        for v in means { f64(Double(v)) }
        for v in scales { f64(Double(v)) }
        for v in z { f64(v) }
        for v in n { f64(v) }
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws -> FTRLProximal {
        var at = 4
        guard bytes.count >= 28, Array(bytes[0..<4]) == Array("FTRL".utf8) else { throw Corrupt(description: "not an FTRL state") }
        func u64() throws -> UInt64 {
            guard at + 8 <= bytes.count else { throw Corrupt(description: "FTRL state cut short") }
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
            at += 8
            return v
        }
        func f64() throws -> Double { Double(bitPattern: try u64()) }
        guard try u64() == 1 else { throw Corrupt(description: "unknown FTRL state version") }
        let d = Int(try u64())
        guard d < 1 << 20, bytes.count == 28 + 8 * 4 + 8 * (4 * d + 2) else {
            throw Corrupt(description: "FTRL state of \(bytes.count) bytes does not hold \(d) features")
        }
        let rows = Int(try u64())
        var p = Parameters()
        p.alpha = try f64()
        p.beta = try f64()
        p.l1 = try f64()
        p.l2 = try f64()
        var learner = FTRLProximal(
            means: try (0..<d).map { _ in Float(try f64()) }, scales: try (0..<d).map { _ in Float(try f64()) }, parameters: p)
        learner.z = try (0...d).map { _ in try f64() }
        learner.n = try (0...d).map { _ in try f64() }
        learner.rows = rows
        return learner
    }
}

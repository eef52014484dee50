/// Vector kernels over raw float buffers: the inner loops of every model. Sixteen lanes at a
/// time (one AVX-512 register, or two AVX2 ones), two accumulators so that the adds of
/// consecutive blocks do not wait on each other, and a scalar tail for odd lengths. They
/// never allocate.
public enum Vec {
    public typealias Lanes = SIMD16<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Lanes {
        UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
    }

    /// The sum of the lanes, as a tree of halvings (three vector adds and one scalar one);
    /// the standard library's `sum()` adds the sixteen lanes one after another.
    @inline(__always)
    public static func sum(_ v: Lanes) -> Float {
        let v8 = v.lowHalf + v.highHalf
        let v4 = v8.lowHalf + v8.highHalf
        let v2 = v4.lowHalf + v4.highHalf
        return v2[0] + v2[1]
    }

    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    /// Σ a[i]·b[i] over the first `n` elements.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = Lanes(), s1 = Lanes()
        var i = 0
        while i + 32 <= n {
            s0.addProduct(load(a + i), load(b + i))
            s1.addProduct(load(a + i + 16), load(b + i + 16))
            i += 32
        }
        if i + 16 <= n {
            s0.addProduct(load(a + i), load(b + i))
            i += 16
        }
        var s = sum(s0 + s1)
        while i < n {
            s += a[i] * b[i]
            i += 1
        }
        return s
    }

    /// y[i] += alpha·x[i] over the first `n` elements.
    @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let a = Lanes(repeating: alpha)
        var i = 0
        while i + 16 <= n {
            var v = load(y + i)
            v.addProduct(a, load(x + i))
            store(v, y + i)
            i += 16
        }
        while i < n {
            y[i] += alpha * x[i]
            i += 1
        }
    }

    /// x[i] *= alpha.
    @inline(__always)
    public static func scale(_ alpha: Float, _ x: UnsafeMutablePointer<Float>, _ n: Int) {
        let a = Lanes(repeating: alpha)
        var i = 0
        while i + 16 <= n {
            store(load(x + i) * a, x + i)
            i += 16
        }
        while i < n {
            x[i] *= alpha
            i += 1
        }
    }

    /// The Euclidean norm of the first `n` elements.
    @inline(__always)
    public static func norm(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        dot(x, x, n).squareRoot()
    }

    /// ‖a − b‖² over the first `n` elements, summed in order (the clustering's distances
    /// between a row and a centre, for short rows).
    @inline(__always)
    public static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var d: Float = 0
        for j in 0..<n {
            let t = a[j] - b[j]
            d += t * t
        }
        return d
    }

    /// x·(a − b) over the first `n` elements, in one pass.
    @inline(__always)
    public static func dotDifference(_ x: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = Lanes()
        var i = 0
        while i + 16 <= n {
            s0.addProduct(load(x + i), load(a + i) - load(b + i))
            i += 16
        }
        var s = sum(s0)
        while i < n {
            s += x[i] * (a[i] - b[i])
            i += 1
        }
        return s
    }

    /// One stochastic-gradient step of a pairwise ranking loss (BPR) on a user vector x, a
    /// preferred item's vector a and another's b, in one pass, all from their old values:
    /// with decay d = 1 − rate·reg and step g = rate·gradient,
    /// a ← d·a + g·x,  b ← d·b − g·x,  x ← d·x + g·(a − b).
    @inline(__always)
    public static func pairwiseStep(
        _ x: UnsafeMutablePointer<Float>, _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, _ n: Int, decay: Float,
        step: Float
    ) {
        let d = Lanes(repeating: decay), g = Lanes(repeating: step)
        var i = 0
        while i + 16 <= n {
            let xv = load(x + i), av = load(a + i), bv = load(b + i)
            store((d * av).addingProduct(g, xv), a + i)
            store((d * bv).addingProduct(-g, xv), b + i)
            store((d * xv).addingProduct(g, av - bv), x + i)
            i += 16
        }
        while i < n {
            let xv = x[i], av = a[i], bv = b[i]
            a[i] = decay * av + step * xv
            b[i] = decay * bv - step * xv
            x[i] = decay * xv + step * (av - bv)
            i += 1
        }
    }

    // Array forms, for callers outside the hot loops and for tests.

    public static func dot(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "dot of \(a.count) and \(b.count) elements")
        return a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in dot(a.baseAddress!, b.baseAddress!, a.count) } }
    }

    public static func axpy(_ alpha: Float, _ x: [Float], _ y: inout [Float]) {
        precondition(x.count == y.count, "axpy of \(x.count) and \(y.count) elements")
        x.withUnsafeBufferPointer { x in y.withUnsafeMutableBufferPointer { y in axpy(alpha, x.baseAddress!, y.baseAddress!, x.count) } }
    }
}

extension UnsafePointer where Pointee == Float {
    /// A pointer that may be dereferenced even for an empty array (the kernels read nothing
    /// when their count is zero).
    nonisolated(unsafe) static let empty: UnsafePointer<Float> = UnsafePointer(UnsafeMutablePointer<Float>.allocate(capacity: 16))
}

extension Array where Element == Float {
    /// The elements' base address; never nil, also when empty.
    @inline(__always)
    public func withBase<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body($0.baseAddress ?? .empty) }
    }

    @inline(__always)
    public mutating func withMutableBase<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try body($0.baseAddress ?? UnsafeMutablePointer(mutating: .empty)) }
    }
}

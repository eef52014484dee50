internal import COpenBLAS

/// A dense row-major matrix of floats: factor tables (one row per user or item), Gram
/// matrices, the solvers' systems.
public struct Matrix: Sendable, Equatable {
    public let rows: Int
    public let cols: Int
    public var values: [Float]

    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols, "a \(rows)x\(cols) matrix needs \(rows * cols) values, not \(values.count)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    public init(rows: Int, cols: Int, repeating value: Float = 0) {
        self.init(rows: rows, cols: cols, values: [Float](repeating: value, count: rows * cols))
    }

    public subscript(r: Int, c: Int) -> Float {
        get { values[r * cols + c] }
        set { values[r * cols + c] = newValue }
    }

    /// Row `r` as a new array.
    public func row(_ r: Int) -> [Float] { Array(values[r * cols..<(r + 1) * cols]) }

    public var transposed: Matrix {
        var t = Matrix(rows: cols, cols: rows)
        for r in 0..<rows {
            for c in 0..<cols { t.values[c * rows + r] = values[r * cols + c] }
        }
        return t
    }

    public static func identity(_ n: Int) -> Matrix {
        var m = Matrix(rows: n, cols: n)
        for i in 0..<n { m.values[i * n + i] = 1 }
        return m
    }
}

/// Matrix kernels. The large products go to OpenBLAS (Debian's libopenblas, one thread per
/// call: `make bench` measures it against this module's own blocked loop and against numpy,
/// and OpenBLAS is the faster); the small, latency-bound ones are this module's own SIMD loops.
public enum Kernels {
    /// OpenBLAS starts as many threads as cores; every call here is one thread, like the
    /// benchmark's peers, and the services train off their event loops.
    static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// The kernel family OpenBLAS picked for this CPU (`Haswell`, `SkylakeX`, ... or a
    /// generic `Prescott` when it does not know the CPU), and its build: what bounds `gemm`.
    public static var blasCore: String {
        "\(String(cString: openblas_get_corename())) (\(String(cString: openblas_get_config())))"
    }

    /// y = A·x (A is rows×cols, x has cols elements): one inner product per row, which is
    /// how a user vector is scored against every item vector. Four rows per pass share each
    /// load of x.
    public static func gemv(_ a: UnsafePointer<Float>, rows: Int, cols: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        var r = 0
        while r + 4 <= rows {
            let r0 = a + r * cols, r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols
            var s0 = Vec.Lanes(), s1 = Vec.Lanes(), s2 = Vec.Lanes(), s3 = Vec.Lanes()
            var c = 0
            while c + 16 <= cols {
                let xv = Vec.load(x + c)
                s0.addProduct(Vec.load(r0 + c), xv)
                s1.addProduct(Vec.load(r1 + c), xv)
                s2.addProduct(Vec.load(r2 + c), xv)
                s3.addProduct(Vec.load(r3 + c), xv)
                c += 16
            }
            var t0 = Vec.sum(s0), t1 = Vec.sum(s1), t2 = Vec.sum(s2), t3 = Vec.sum(s3)
            while c < cols {
                t0 += r0[c] * x[c]
                t1 += r1[c] * x[c]
                t2 += r2[c] * x[c]
                t3 += r3[c] * x[c]
                c += 1
            }
            y[r] = t0
            y[r + 1] = t1
            y[r + 2] = t2
            y[r + 3] = t3
            r += 4
        }
        while r < rows {
            y[r] = Vec.dot(a + r * cols, x, cols)
            r += 1
        }
    }

    public static func gemv(_ a: Matrix, _ x: [Float]) -> [Float] {
        precondition(x.count == a.cols, "gemv of a \(a.rows)x\(a.cols) matrix and \(x.count) elements")
        var y = [Float](repeating: 0, count: a.rows)
        a.values.withBase { ap in x.withBase { xp in y.withMutableBase { gemv(ap, rows: a.rows, cols: a.cols, xp, $0) } } }
        return y
    }

    /// C = alpha·op(A)·op(B) + beta·C through OpenBLAS's `cblas_sgemm` (row-major).
    public static func gemm(
        _ a: Matrix, transposeA: Bool = false, _ b: Matrix, transposeB: Bool = false, alpha: Float = 1, beta: Float = 0,
        into c: inout Matrix
    ) {
        _ = singleThreaded
        let m = transposeA ? a.cols : a.rows, k = transposeA ? a.rows : a.cols
        let kb = transposeB ? b.cols : b.rows, n = transposeB ? b.rows : b.cols
        precondition(k == kb && c.rows == m && c.cols == n, "gemm of \(m)x\(k) and \(kb)x\(n) into \(c.rows)x\(c.cols)")
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            c.values.withMutableBase { Vec.scale(beta, $0, m * n) }
            return
        }
        a.values.withBase { ap in
            b.values.withBase { bp in
                c.values.withMutableBase { cp in
                    cblas_sgemm(
                        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, ap, Int32(a.cols), bp, Int32(b.cols), beta, cp, Int32(n))
                }
            }
        }
    }

    public static func gemm(_ a: Matrix, transposeA: Bool = false, _ b: Matrix, transposeB: Bool = false) -> Matrix {
        var c = Matrix(rows: transposeA ? a.cols : a.rows, cols: transposeB ? b.rows : b.cols)
        gemm(a, transposeA: transposeA, b, transposeB: transposeB, into: &c)
        return c
    }

    /// C = A·B with this module's own loop: blocked over k and the columns of B so that a
    /// panel of B stays in cache, sixteen lanes across each row of C. `make bench` keeps it
    /// beside `gemm` to show which is faster on the machine at hand.
    public static func gemmBlocked(_ a: Matrix, _ b: Matrix) -> Matrix {
        precondition(a.cols == b.rows, "gemm of \(a.rows)x\(a.cols) and \(b.rows)x\(b.cols)")
        var c = Matrix(rows: a.rows, cols: b.cols)
        let m = a.rows, k = a.cols, n = b.cols
        let kBlock = 256, nBlock = 512
        a.values.withBase { ap in
            b.values.withBase { bp in
                c.values.withMutableBase { cp in
                    var k0 = 0
                    while k0 < k {
                        let k1 = min(k, k0 + kBlock)
                        var n0 = 0
                        while n0 < n {
                            let width = min(n, n0 + nBlock) - n0
                            for i in 0..<m {
                                let crow = cp + i * n + n0
                                for p in k0..<k1 {
                                    let aip = ap[i * k + p]
                                    if aip != 0 { Vec.axpy(aip, bp + p * n + n0, crow, width) }
                                }
                            }
                            n0 += nBlock
                        }
                        k0 = k1
                    }
                }
            }
        }
        return c
    }

    /// The Gram matrix YᵀY (k×k for a rows×k table Y) through OpenBLAS's `cblas_ssyrk`, with
    /// both triangles filled.
    public static func gram(_ y: Matrix) -> Matrix {
        _ = singleThreaded
        let k = y.cols
        var g = Matrix(rows: k, cols: k)
        guard k > 0, y.rows > 0 else { return g }
        y.values.withBase { yp in
            g.values.withMutableBase { gp in
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(k), Int32(y.rows), 1, yp, Int32(k), 0, gp, Int32(k))
            }
        }
        for i in 0..<k {
            for j in 0..<i { g.values[i * k + j] = g.values[j * k + i] }
        }
        return g
    }

    /// XᵀX (cols×cols, both triangles) of a dense row-major rows×cols matrix of doubles,
    /// through OpenBLAS's `cblas_dsyrk`: EASE's item-item Gram matrix.
    public static func gramDouble(_ x: [Double], rows: Int, cols: Int) -> [Double] {
        precondition(x.count == rows * cols, "a \(rows)x\(cols) matrix needs \(rows * cols) values")
        _ = singleThreaded
        var g = [Double](repeating: 0, count: cols * cols)
        guard rows > 0, cols > 0 else { return g }
        x.withUnsafeBufferPointer { xp in
            g.withUnsafeMutableBufferPointer { gp in
                cblas_dsyrk(
                    CblasRowMajor, CblasUpper, CblasTrans, Int32(cols), Int32(rows), 1, xp.baseAddress, Int32(cols), 0, gp.baseAddress,
                    Int32(cols))
            }
        }
        for i in 0..<cols {
            for j in 0..<i { g[i * cols + j] = g[j * cols + i] }
        }
        return g
    }

    /// YᵀY with this module's own loop (rank-one updates of the upper triangle), for the
    /// benchmark's comparison.
    public static func gramBlocked(_ y: Matrix) -> Matrix {
        let k = y.cols
        var g = Matrix(rows: k, cols: k)
        y.values.withBase { yp in
            g.values.withMutableBase { gp in
                for r in 0..<y.rows {
                    let row = yp + r * k
                    for i in 0..<k where row[i] != 0 { Vec.axpy(row[i], row + i, gp + i * k + i, k - i) }
                }
            }
        }
        for i in 0..<k {
            for j in 0..<i { g.values[i * k + j] = g.values[j * k + i] }
        }
        return g
    }

    /// Scores of every row of `table` against `query`: inner products, or cosines when
    /// `rowNorms` (each row's norm, from `norms(_:)`) is given. A row of norm 0 scores 0.
    public static func score(_ table: Matrix, _ query: [Float], rowNorms: [Float]? = nil, into scores: inout [Float]) {
        precondition(query.count == table.cols, "scoring \(query.count) elements against \(table.cols) columns")
        if scores.count != table.rows { scores = [Float](repeating: 0, count: table.rows) }
        table.values.withBase { tp in
            query.withBase { qp in scores.withMutableBase { gemv(tp, rows: table.rows, cols: table.cols, qp, $0) } }
        }
        guard let rowNorms else { return }
        let q = query.withBase { Vec.norm($0, query.count) }
        for r in 0..<table.rows {
            let d = rowNorms[r] * q
            scores[r] = d > 0 ? scores[r] / d : 0
        }
    }

    /// The Euclidean norm of every row.
    public static func norms(_ table: Matrix) -> [Float] {
        table.values.withBase { tp in (0..<table.rows).map { Vec.norm(tp + $0 * table.cols, table.cols) } }
    }
}

internal import COpenBLAS

/// A system the solvers could not solve: the matrix is not symmetric positive definite (a
/// regularisation of zero on a rank-deficient problem, or values that overflowed).
public struct SolverError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Linear solvers for the factorisation models: Cholesky for the small k×k systems of ALS,
/// conjugate gradient for implicit ALS without forming each user's matrix (Takács et al.,
/// 2011; what `implicit` does), and an SPD inverse for EASE's item-item system.
public enum Solvers {
    /// Factors the n×n symmetric positive definite `a` (row-major) in place into L with
    /// A = L·Lᵀ (lower triangle; the upper is left as it was).
    public static func cholesky(_ a: UnsafeMutablePointer<Float>, _ n: Int) throws {
        for j in 0..<n {
            let rowJ = a + j * n
            var d = rowJ[j] - Vec.dot(rowJ, rowJ, j)
            guard d > 0, d.isFinite else { throw SolverError("matrix is not positive definite (pivot \(j) is \(d))") }
            d = d.squareRoot()
            rowJ[j] = d
            for i in (j + 1)..<max(n, j + 1) {
                let rowI = a + i * n
                rowI[j] = (rowI[j] - Vec.dot(rowI, rowJ, j)) / d
            }
        }
    }

    /// Solves L·Lᵀ·x = b given the factor from `cholesky`; b is overwritten with x.
    public static func choleskySolve(_ l: UnsafePointer<Float>, _ n: Int, _ b: UnsafeMutablePointer<Float>) {
        for i in 0..<n { b[i] = (b[i] - Vec.dot(l + i * n, b, i)) / l[i * n + i] }
        var i = n - 1
        while i >= 0 {
            var s = b[i]
            for j in (i + 1)..<max(n, i + 1) { s -= l[j * n + i] * b[j] }
            b[i] = s / l[i * n + i]
            i -= 1
        }
    }

    /// x solving A·x = b for a small symmetric positive definite A in double precision
    /// (n×n, row-major): the Newton steps of the classifiers.
    public static func solveSPD(_ a: [Double], _ b: [Double], n: Int) throws -> [Double] {
        precondition(a.count == n * n && b.count == n)
        var l = a
        for j in 0..<n {
            var d = l[j * n + j]
            for k in 0..<j { d -= l[j * n + k] * l[j * n + k] }
            guard d > 0, d.isFinite else { throw SolverError("matrix is not positive definite (pivot \(j) is \(d))") }
            d = d.squareRoot()
            l[j * n + j] = d
            for i in (j + 1)..<max(n, j + 1) {
                var s = l[i * n + j]
                for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
                l[i * n + j] = s / d
            }
        }
        var x = b
        for i in 0..<n {
            var s = x[i]
            for k in 0..<i { s -= l[i * n + k] * x[k] }
            x[i] = s / l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = x[i]
            for j in (i + 1)..<max(n, i + 1) { s -= l[j * n + i] * x[j] }
            x[i] = s / l[i * n + i]
        }
        return x
    }

    /// x solving A·x = b for a symmetric positive definite A (copied, not changed).
    public static func solveSPD(_ a: Matrix, _ b: [Float]) throws -> [Float] {
        precondition(a.rows == a.cols && b.count == a.rows, "solving a \(a.rows)x\(a.cols) system with \(b.count) values")
        var l = a.values
        var x = b
        try l.withMutableBase { lp in
            try cholesky(lp, a.rows)
            x.withMutableBase { choleskySolve(lp, a.rows, $0) }
        }
        return x
    }

    /// Conjugate gradient on A·x = b from the x given, for `steps` steps (or until the
    /// residual vanishes), where `apply(p, out)` writes A·p. `scratch` holds 3n floats
    /// (r, p, Ap), so a caller solving many systems allocates once.
    @inline(__always)
    public static func conjugateGradient(
        n: Int, b: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>, steps: Int, scratch: UnsafeMutablePointer<Float>,
        apply: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    ) {
        let r = scratch, p = scratch + n, ap = scratch + 2 * n
        apply(x, ap)
        for i in 0..<n { r[i] = b[i] - ap[i] }
        p.update(from: r, count: n)
        var rsOld = Vec.dot(r, r, n)
        for _ in 0..<steps {
            if rsOld < 1e-20 { return }
            apply(p, ap)
            let pAp = Vec.dot(p, ap, n)
            guard pAp > 0 else { return }
            let alpha = rsOld / pAp
            Vec.axpy(alpha, p, x, n)
            Vec.axpy(-alpha, ap, r, n)
            let rsNew = Vec.dot(r, r, n)
            let beta = rsNew / rsOld
            for i in 0..<n { p[i] = r[i] + beta * p[i] }
            rsOld = rsNew
        }
    }

    /// The implicit-feedback ALS update of one row (Hu, Koren and Volinsky's normal
    /// equations, solved by CG as in Takács et al.): x ← argmin Σᵢ cᵢ(pᵢ − x·yᵢ)² + λ‖x‖²
    /// over every column i, where pᵢ = 1 and cᵢ = 1 + confidence for the `indices` given
    /// and pᵢ = 0, cᵢ = 1 elsewhere. `yty` is YᵀY (k×k) of the whole `y` table (rows×k);
    /// A·p = (YᵀY + λI)p + Σ (cᵢ − 1)(yᵢ·p)yᵢ is applied without forming A.
    /// `scratch` holds 4k floats.
    public static func implicitRowCG(
        x: UnsafeMutablePointer<Float>, k: Int, y: UnsafePointer<Float>, yty: UnsafePointer<Float>, regularization: Float,
        indices: UnsafeBufferPointer<Int32>, confidences: UnsafeBufferPointer<Float>, steps: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        // b = Σ cᵢ yᵢ (pᵢ = 1 only on the observed columns).
        let b = scratch + 3 * k
        b.update(repeating: 0, count: k)
        for (j, i) in indices.enumerated() { Vec.axpy(1 + confidences[j], y + Int(i) * k, b, k) }
        conjugateGradient(n: k, b: b, x: x, steps: steps, scratch: scratch) { p, out in
            gemv(yty, k, p, out)
            Vec.axpy(regularization, p, out, k)
            for (j, i) in indices.enumerated() {
                let yi = y + Int(i) * k
                Vec.axpy(confidences[j] * Vec.dot(yi, p, k), yi, out, k)
            }
        }
    }

    @inline(__always)
    private static func gemv(_ a: UnsafePointer<Float>, _ k: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        Kernels.gemv(a, rows: k, cols: k, x, y)
    }

    /// The inverse of the n×n symmetric positive definite `a` (row-major, doubles), through
    /// LAPACK's Cholesky (`dpotrf`) and inverse-from-factor (`dpotri`) in OpenBLAS. EASE's
    /// item-item system is thousands of rows: this is where a library pays.
    public static func invertSPD(_ a: inout [Double], _ n: Int) throws {
        precondition(a.count == n * n, "inverting \(a.count) values as \(n)x\(n)")
        _ = Kernels.singleThreaded
        guard n > 0 else { return }
        var uplo = CChar(UInt8(ascii: "L")), size = Int32(n), lda = Int32(n), info: Int32 = 0
        // Row-major lower is column-major upper; the matrix is symmetric, so either works.
        a.withUnsafeMutableBufferPointer { dpotrf_(&uplo, &size, $0.baseAddress, &lda, &info) }
        guard info == 0 else { throw SolverError("matrix is not positive definite (LAPACK dpotrf info \(info))") }
        a.withUnsafeMutableBufferPointer { dpotri_(&uplo, &size, $0.baseAddress, &lda, &info) }
        guard info == 0 else { throw SolverError("matrix is singular (LAPACK dpotri info \(info))") }
        // dpotri fills one triangle: mirror it (column-major lower = row-major upper).
        for i in 0..<n {
            for j in (i + 1)..<max(n, i + 1) { a[j * n + i] = a[i * n + j] }
        }
    }
}

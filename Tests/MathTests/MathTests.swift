import Math
import Testing

/// The tests' random shapes and values.
extension SplitMix {
    mutating func float() -> Float { unit() * 2 - 1 }
    mutating func int(_ n: Int) -> Int { below(n) }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in float() } }
    mutating func matrix(_ r: Int, _ c: Int) -> Matrix { Matrix(rows: r, cols: c, values: floats(r * c)) }
}

func close(_ a: Float, _ b: Float, _ tolerance: Float = 1e-4) -> Bool {
    abs(a - b) <= tolerance * max(1, abs(a), abs(b))
}

func close(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-4) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { close($0, $1, tolerance) }
}

/// Plain references, written the obvious way.
enum Reference {
    static func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 } }

    static func gemm(_ a: Matrix, _ b: Matrix) -> Matrix {
        var c = Matrix(rows: a.rows, cols: b.cols)
        for i in 0..<a.rows {
            for j in 0..<b.cols {
                var s: Float = 0
                for p in 0..<a.cols { s += a[i, p] * b[p, j] }
                c[i, j] = s
            }
        }
        return c
    }
}

/// Sizes that cover empty inputs, the scalar tails and the SIMD blocks.
let lengths = [0, 1, 3, 15, 16, 17, 31, 32, 33, 64, 100, 257]

@Suite("Vector kernels")
struct VectorTests {
    @Test("dot, axpy, scale and norm match plain loops at every length")
    func vectorKernels() {
        var rng = SplitMix(seed: 1)
        for n in lengths {
            let a = rng.floats(n), b = rng.floats(n)
            #expect(close(Vec.dot(a, b), Reference.dot(a, b)), "dot at \(n)")
            var y = b
            Vec.axpy(0.5, a, &y)
            #expect(close(y, zip(a, b).map { 0.5 * $0 + $1 }), "axpy at \(n)")
            var x = a
            x.withUnsafeMutableBufferPointer { if let p = $0.baseAddress { Vec.scale(-2, p, n) } }
            #expect(close(x, a.map { -2 * $0 }), "scale at \(n)")
            let norm = a.withUnsafeBufferPointer { $0.baseAddress.map { Vec.norm($0, n) } ?? 0 }
            #expect(close(norm, Reference.dot(a, a).squareRoot()), "norm at \(n)")
            let c = rng.floats(n)
            let dd = a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeBufferPointer { cp in
                        Vec.dotDifference(
                            ap.baseAddress ?? UnsafePointer(bitPattern: 16)!, bp.baseAddress ?? UnsafePointer(bitPattern: 16)!,
                            cp.baseAddress ?? UnsafePointer(bitPattern: 16)!, n)
                    }
                }
            }
            #expect(close(dd, Reference.dot(a, zip(b, c).map { $0 - $1 })), "dotDifference at \(n)")
            var (xs, ys, zs) = (a, b, c)
            if n > 0 {
                xs.withUnsafeMutableBufferPointer { xp in
                    ys.withUnsafeMutableBufferPointer { yp in
                        zs.withUnsafeMutableBufferPointer { zp in
                            Vec.pairwiseStep(xp.baseAddress!, yp.baseAddress!, zp.baseAddress!, n, decay: 0.9, step: 0.3)
                        }
                    }
                }
            }
            #expect(close(ys, (0..<n).map { 0.9 * b[$0] + 0.3 * a[$0] }), "pairwiseStep a at \(n)")
            #expect(close(zs, (0..<n).map { 0.9 * c[$0] - 0.3 * a[$0] }), "pairwiseStep b at \(n)")
            #expect(close(xs, (0..<n).map { 0.9 * a[$0] + 0.3 * (b[$0] - c[$0]) }), "pairwiseStep x at \(n)")
        }
    }
}

@Suite("Matrix kernels")
struct MatrixTests {
    @Test("gemv matches row-by-row dot products on odd shapes")
    func gemv() {
        var rng = SplitMix(seed: 2)
        for (r, c) in [(0, 5), (5, 0), (1, 1), (3, 17), (7, 33), (13, 64), (65, 10)] {
            let a = rng.matrix(r, c), x = rng.floats(c)
            let y = Kernels.gemv(a, x)
            #expect(close(y, (0..<r).map { Reference.dot(a.row($0), x) }), "gemv \(r)x\(c)")
        }
    }

    @Test("OpenBLAS gemm, the blocked loop and transposes match the reference")
    func gemm() {
        var rng = SplitMix(seed: 3)
        for (m, k, n) in [(0, 3, 4), (3, 0, 4), (1, 1, 1), (5, 7, 3), (17, 33, 9), (64, 300, 520), (2, 600, 3)] {
            let a = rng.matrix(m, k), b = rng.matrix(k, n)
            let expected = Reference.gemm(a, b)
            #expect(close(Kernels.gemm(a, b).values, expected.values, 1e-3), "gemm \(m)x\(k)x\(n)")
            #expect(close(Kernels.gemmBlocked(a, b).values, expected.values, 1e-3), "blocked gemm \(m)x\(k)x\(n)")
            #expect(close(Kernels.gemm(a.transposed, transposeA: true, b.transposed, transposeB: true).values, expected.values, 1e-3))
        }
        // beta accumulates into C.
        let a = rng.matrix(4, 5), b = rng.matrix(5, 6)
        var c = Matrix(rows: 4, cols: 6, repeating: 1)
        Kernels.gemm(a, b, alpha: 2, beta: 3, into: &c)
        #expect(close(c.values, Reference.gemm(a, b).values.map { 2 * $0 + 3 }, 1e-3))
    }

    @Test("the Gram matrix YᵀY, both triangles, from OpenBLAS and from the own loop")
    func gram() {
        var rng = SplitMix(seed: 4)
        for (r, k) in [(0, 4), (4, 0), (1, 1), (9, 7), (100, 32), (37, 65)] {
            let y = rng.matrix(r, k)
            let expected = Reference.gemm(y.transposed, y)
            #expect(close(Kernels.gram(y).values, expected.values, 1e-3), "gram \(r)x\(k)")
            #expect(close(Kernels.gramBlocked(y).values, expected.values, 1e-3), "blocked gram \(r)x\(k)")
        }
    }

    @Test("inner-product and cosine scoring of every row")
    func scoring() {
        var rng = SplitMix(seed: 5)
        var table = rng.matrix(21, 19)
        for c in 0..<19 { table[3, c] = 0 }  // a zero row scores 0 by cosine
        let q = rng.floats(19)
        var scores: [Float] = []
        Kernels.score(table, q, into: &scores)
        #expect(close(scores, (0..<21).map { Reference.dot(table.row($0), q) }))
        Kernels.score(table, q, rowNorms: Kernels.norms(table), into: &scores)
        let qn = Reference.dot(q, q).squareRoot()
        for r in 0..<21 {
            let row = table.row(r), rn = Reference.dot(row, row).squareRoot()
            #expect(close(scores[r], rn == 0 ? 0 : Reference.dot(row, q) / (rn * qn)), "cosine row \(r)")
        }
    }
}

@Suite("Solvers")
struct SolverTests {
    /// A random symmetric positive definite n×n matrix: MᵀM + n·I.
    static func spd(_ n: Int, _ rng: inout SplitMix) -> Matrix {
        let m = rng.matrix(n, n)
        var a = Reference.gemm(m.transposed, m)
        for i in 0..<n { a[i, i] += Float(n) }
        return a
    }

    @Test("Cholesky solves SPD systems of odd sizes; a non-SPD matrix is refused")
    func cholesky() throws {
        var rng = SplitMix(seed: 6)
        for n in [1, 2, 7, 16, 33, 64] {
            let a = Self.spd(n, &rng), b = rng.floats(n)
            let x = try Solvers.solveSPD(a, b)
            #expect(close(Kernels.gemv(a, x), b, 1e-3), "Cholesky at \(n)")
        }
        #expect(throws: SolverError.self) { try Solvers.solveSPD(Matrix(rows: 2, cols: 2, values: [1, 2, 2, 1]), [1, 1]) }
        #expect(try Solvers.solveSPD(Matrix(rows: 0, cols: 0), []).isEmpty)
    }

    @Test("conjugate gradient converges to the Cholesky solution")
    func conjugateGradient() throws {
        var rng = SplitMix(seed: 7)
        for n in [1, 5, 24, 50] {
            let a = Self.spd(n, &rng), b = rng.floats(n)
            var x = [Float](repeating: 0, count: n)
            var scratch = [Float](repeating: 0, count: 3 * n)
            a.values.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    x.withUnsafeMutableBufferPointer { xp in
                        scratch.withUnsafeMutableBufferPointer { sp in
                            Solvers.conjugateGradient(n: n, b: bp.baseAddress!, x: xp.baseAddress!, steps: 3 * n, scratch: sp.baseAddress!)
                            { p, out in
                                Kernels.gemv(ap.baseAddress!, rows: n, cols: n, p, out)
                            }
                        }
                    }
                }
            }
            #expect(close(x, try Solvers.solveSPD(a, b), 1e-3), "CG at \(n)")
        }
    }

    @Test("the implicit ALS row update by CG equals the explicit normal equations")
    func implicitRow() throws {
        var rng = SplitMix(seed: 8)
        let items = 40, k = 12, reg: Float = 0.1
        let y = rng.matrix(items, k)
        let yty = Kernels.gram(y)
        let observed: [Int32] = [1, 5, 6, 20, 39], conf: [Float] = [3, 1, 9, 0.5, 2]
        // A = YᵀY + λI + Σ cᵢ yᵢyᵢᵀ, b = Σ (1 + cᵢ) yᵢ
        var a = yty
        var b = [Float](repeating: 0, count: k)
        for (j, i) in observed.enumerated() {
            let yi = y.row(Int(i))
            for r in 0..<k {
                b[r] += (1 + conf[j]) * yi[r]
                for c in 0..<k { a[r, c] += conf[j] * yi[r] * yi[c] }
            }
        }
        for i in 0..<k { a[i, i] += reg }
        let exact = try Solvers.solveSPD(a, b)
        var x = [Float](repeating: 0, count: k)
        var scratch = [Float](repeating: 0, count: 4 * k)
        y.values.withUnsafeBufferPointer { yp in
            yty.values.withUnsafeBufferPointer { gp in
                observed.withUnsafeBufferPointer { op in
                    conf.withUnsafeBufferPointer { cp in
                        Solvers.implicitRowCG(
                            x: &x, k: k, y: yp.baseAddress!, yty: gp.baseAddress!, regularization: reg, indices: op, confidences: cp,
                            steps: 40,
                            scratch: &scratch)
                    }
                }
            }
        }
        #expect(close(x, exact, 1e-2))
    }

    @Test("the LAPACK SPD inverse times the matrix is the identity")
    func inverse() throws {
        var rng = SplitMix(seed: 9)
        for n in [1, 3, 30] {
            let a = Self.spd(n, &rng)
            var inv = a.values.map(Double.init)
            try Solvers.invertSPD(&inv, n)
            let product = Reference.gemm(a, Matrix(rows: n, cols: n, values: inv.map(Float.init)))
            #expect(close(product.values, Matrix.identity(n).values, 1e-3), "inverse at \(n)")
        }
        var singular: [Double] = [1, 1, 1, 1]
        #expect(throws: SolverError.self) { try Solvers.invertSPD(&singular, 2) }
    }
}

@Suite("Top-K and sparse")
struct SelectionTests {
    @Test("top-K equals a full sort, with exclusions, ties by index, NaN and -inf skipped")
    func topK() {
        var rng = SplitMix(seed: 10)
        for n in [0, 1, 5, 100, 1000] {
            var scores = (0..<n).map { _ in Float(rng.int(50)) }
            if n > 10 {
                scores[3] = .nan
                scores[4] = -.infinity
            }
            for k in [0, 1, 7, 10, 2000] {
                let got = TopK.select(scores, k: k) { $0 % 7 == 0 }
                let expected = scores.enumerated()
                    .filter { $0.offset % 7 != 0 && $0.element > -.infinity }
                    .sorted { $0.element != $1.element ? $0.element > $1.element : $0.offset < $1.offset }
                    .prefix(k).map { TopK.Entry(index: Int32($0.offset), score: $0.element) }
                #expect(got == Array(expected), "top \(k) of \(n)")
                let entries = scores.enumerated().filter { $0.offset % 7 != 0 && $0.element > -.infinity }.map {
                    TopK.Entry(index: Int32($0.offset), score: $0.element)
                }
                #expect(TopK.best(entries.shuffled(), k: k).map(\.score) == Array(expected).map(\.score), "best \(k) of \(n) entries")
            }
        }
    }

    @Test("CSR from triples (duplicates summed), transpose and times dense")
    func sparse() {
        var rng = SplitMix(seed: 11)
        let rows = 23, cols = 17, k = 5
        var triples: [(row: Int32, col: Int32, value: Float)] = []
        var dense = Matrix(rows: rows, cols: cols)
        for _ in 0..<120 {
            let r = rng.int(rows), c = rng.int(cols), v = rng.float()
            triples.append((Int32(r), Int32(c), v))
            dense[r, c] += v
        }
        let csr = SparseMatrix(rows: rows, cols: cols, triples: triples)
        let b = rng.matrix(cols, k)
        #expect(close(csr.times(b).values, Reference.gemm(dense, b).values))
        let t = csr.transposed
        #expect(t.rows == cols && t.cols == rows && t.nonZeros == csr.nonZeros)
        let m = rng.matrix(rows, 3)
        #expect(close(t.times(m).values, Reference.gemm(dense.transposed, m).values))
        var back = Matrix(rows: cols, cols: rows)
        for r in 0..<t.rows {
            let (idx, val) = t.row(r)
            for (c, v) in zip(idx, val) { back[r, Int(c)] = v }
        }
        #expect(close(back.values, dense.transposed.values))
        #expect(t.transposed == csr)
        let empty = SparseMatrix(rows: 0, cols: 4, triples: [])
        #expect(empty.times(Matrix(rows: 4, cols: 2)).values.isEmpty)
    }
}

@Suite("HNSW index")
struct HNSWTests {
    /// Rows drawn around a few centres, as a trained model's item vectors are.
    func clustered(_ rng: inout SplitMix, rows: Int, cols: Int, centres: Int) -> Matrix {
        let c = rng.matrix(centres, cols)
        var m = Matrix(rows: rows, cols: cols)
        for r in 0..<rows {
            let k = rng.int(centres)
            for j in 0..<cols { m[r, j] = c[k, j] + 0.3 * rng.float() }
        }
        return m
    }

    @Test("the approximate top-10 by inner product finds nearly all of the exact top-10, best first, skipping excluded rows")
    func recall() {
        var rng = SplitMix(seed: 21)
        let table = clustered(&rng, rows: 2000, cols: 16, centres: 20)
        var p = HNSW.Parameters()
        p.efSearch = 100
        p.efConstruction = 100
        let index = HNSW(table, parameters: p)
        var hits = 0
        let queries = 50
        for _ in 0..<queries {
            let q = rng.floats(16)
            var scores: [Float] = []
            Kernels.score(table, q, into: &scores)
            let exact = Set(TopK.select(scores, k: 10).map(\.index))
            let found = index.search(q, k: 10)
            #expect(found.count == 10)
            #expect(zip(found, found.dropFirst()).allSatisfy { $0.score >= $1.score })
            for e in found { #expect(close(e.score, scores[Int(e.index)], 1e-3)) }
            hits += found.filter { exact.contains($0.index) }.count
            #expect(index.search(q, k: 10) { $0 % 2 == 0 }.allSatisfy { $0.index % 2 == 1 })
        }
        let recall = Double(hits) / Double(queries * 10)
        #expect(recall >= 0.95, "recall@10 \(recall)")
    }

    @Test("a tiny index (one row, or fewer rows than k) returns every row")
    func tiny() {
        let one = HNSW(Matrix(rows: 1, cols: 3, values: [1, 2, 3]))
        #expect(one.search([1, 0, 0], k: 5) == [TopK.Entry(index: 0, score: 1)])
        var rng = SplitMix(seed: 3)
        let few = HNSW(rng.matrix(7, 4))
        #expect(Set(few.search(rng.floats(4), k: 10).map(\.index)) == Set(0..<7))
        #expect(HNSW(Matrix(rows: 0, cols: 4)).search([0, 0, 0, 0], k: 3).isEmpty)
    }
}

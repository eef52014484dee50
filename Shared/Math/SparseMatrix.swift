/// A sparse matrix in compressed sparse row form: the user-item interaction matrix the
/// recommenders train on (rows are users or items, values are confidences).
public struct SparseMatrix: Sendable, Equatable {
    public let rows: Int
    public let cols: Int
    /// Row r's entries are `indices[rowStart[r]..<rowStart[r + 1]]`, columns ascending.
    public var rowStart: [Int]
    public var indices: [Int32]
    public var values: [Float]

    public init(rows: Int, cols: Int, rowStart: [Int], indices: [Int32], values: [Float]) {
        precondition(
            rowStart.count == rows + 1 && indices.count == values.count && rowStart.last == indices.count, "inconsistent CSR arrays")
        self.rows = rows
        self.cols = cols
        self.rowStart = rowStart
        self.indices = indices
        self.values = values
    }

    /// Built from (row, column, value) triples in any order; duplicates are summed.
    public init(rows: Int, cols: Int, triples: [(row: Int32, col: Int32, value: Float)]) {
        let sorted = triples.sorted { $0.row != $1.row ? $0.row < $1.row : $0.col < $1.col }
        var rowStart = [Int](repeating: 0, count: rows + 1)
        var indices: [Int32] = []
        var values: [Float] = []
        indices.reserveCapacity(sorted.count)
        values.reserveCapacity(sorted.count)
        var last: (Int32, Int32)? = nil
        for t in sorted {
            precondition(
                Int(t.row) < rows && Int(t.col) < cols && t.row >= 0 && t.col >= 0, "entry (\(t.row), \(t.col)) outside \(rows)x\(cols)")
            if let l = last, l == (t.row, t.col) {
                values[values.count - 1] += t.value
                continue
            }
            indices.append(t.col)
            values.append(t.value)
            rowStart[Int(t.row) + 1] += 1
            last = (t.row, t.col)
        }
        for r in 0..<rows { rowStart[r + 1] += rowStart[r] }
        self.init(rows: rows, cols: cols, rowStart: rowStart, indices: indices, values: values)
    }

    public var nonZeros: Int { indices.count }

    public func row(_ r: Int) -> (indices: ArraySlice<Int32>, values: ArraySlice<Float>) {
        (indices[rowStart[r]..<rowStart[r + 1]], values[rowStart[r]..<rowStart[r + 1]])
    }

    /// The transpose (columns become rows), by counting sort: O(nnz + rows + cols).
    public var transposed: SparseMatrix {
        var start = [Int](repeating: 0, count: cols + 1)
        for c in indices { start[Int(c) + 1] += 1 }
        for c in 0..<cols { start[c + 1] += start[c] }
        var next = start
        var ti = [Int32](repeating: 0, count: nonZeros)
        var tv = [Float](repeating: 0, count: nonZeros)
        for r in 0..<rows {
            for j in rowStart[r]..<rowStart[r + 1] {
                let c = Int(indices[j])
                ti[next[c]] = Int32(r)
                tv[next[c]] = values[j]
                next[c] += 1
            }
        }
        return SparseMatrix(rows: cols, cols: rows, rowStart: start, indices: ti, values: tv)
    }

    /// This matrix times a dense one (cols×k): rows×k, each output row a sum of the dense
    /// rows its entries name, weighted by their values.
    public func times(_ dense: Matrix) -> Matrix {
        precondition(dense.rows == cols, "a \(rows)x\(cols) sparse matrix times a \(dense.rows)x\(dense.cols) one")
        let k = dense.cols
        var out = Matrix(rows: rows, cols: k)
        dense.values.withBase { dp in
            out.values.withMutableBase { op in
                for r in 0..<rows {
                    for j in rowStart[r]..<rowStart[r + 1] { Vec.axpy(values[j], dp + Int(indices[j]) * k, op + r * k, k) }
                }
            }
        }
        return out
    }
}

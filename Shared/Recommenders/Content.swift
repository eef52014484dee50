import Foundation
public import Math

/// What a catalogue entry says about an item, as `item_upsert` events give it.
public struct ItemDocument: Sendable, Equatable {
    public var title: String
    public var tags: [String]
    public var category: Int64
    public var brand: String
    public var price: Double

    public init(title: String = "", tags: [String] = [], category: Int64 = 0, brand: String = "", price: Double = 0) {
        self.title = title
        self.tags = tags
        self.category = category
        self.brand = brand
        self.price = price
    }

    /// The document's terms: the title's words (`Tokenizer.words`), then one term per tag,
    /// the category, the brand and the price band (`price:N`, N = ⌊log₂ price⌋), each
    /// prefixed so a tag never meets a title word of the same spelling.
    public var terms: [String] {
        var out = Tokenizer.words(title)
        out += tags.map { "tag:" + $0.lowercased() }
        if category != 0 { out.append("category:\(category)") }
        if !brand.isEmpty { out.append("brand:" + brand.lowercased()) }
        if price > 0, price.isFinite { out.append("price:\(Int(log2(price).rounded(.down)))") }
        return out
    }
}

/// Splits text into terms for TF-IDF. Latin (and every other alphabetic script): lower-cased
/// runs of letters and digits, English stop words and one-letter words left out, and a light
/// stemming (a plural's trailing `s` goes: `holders` → `holder`, not `glass`). Chinese,
/// Japanese and Korean, written without spaces: each run of those characters as its
/// overlapping character pairs (a lone character stays one term), the usual dictionary-free
/// indexing of CJK text.
public enum Tokenizer {
    static let stopWords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or", "the", "to", "with",
    ]

    /// Whether a scalar belongs to a script written without spaces between words.
    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x3040...0x30FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xAC00...0xD7AF, 0xF900...0xFAFF, 0x20000...0x2FA1F: true
        default: false
        }
    }

    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var word = String.UnicodeScalarView()
        var cjk: [Unicode.Scalar] = []
        func endWord() {
            guard !word.isEmpty else { return }
            var w = String(word).lowercased()
            word.removeAll()
            guard w.count > 1, !stopWords.contains(w) else { return }
            if w.count > 3, w.hasSuffix("s"), !w.hasSuffix("ss"), !w.hasSuffix("us"), !w.hasSuffix("is") { w.removeLast() }
            out.append(w)
        }
        func endCJK() {
            guard !cjk.isEmpty else { return }
            if cjk.count == 1 {
                out.append(String(Character(cjk[0])))
            } else {
                for i in 0..<(cjk.count - 1) {
                    var pair = String.UnicodeScalarView()
                    pair.append(cjk[i])
                    pair.append(cjk[i + 1])
                    out.append(String(pair))
                }
            }
            cjk.removeAll()
        }
        for s in text.unicodeScalars {
            if isCJK(s) {
                endWord()
                cjk.append(s)
            } else if s.properties.isAlphabetic || s.properties.numericType != nil {
                endCJK()
                word.append(s)
            } else {
                endWord()
                endCJK()
            }
        }
        endWord()
        endCJK()
        return out
    }
}

/// TF-IDF vectors of item documents and their cosine neighbours. A term's weight in a
/// document is (1 + ln tf) · idf, idf = ln((1 + N) / (1 + df)) + 1 over the N documents
/// (scikit-learn's smoothed idf); each vector is L2-normalised, so a dot product is the
/// cosine. Kept in a content model so an item first seen after training (a new upsert) is
/// vectorised the same way (terms the vocabulary lacks count for nothing).
public struct ContentVectors: Sendable, Equatable {
    public let terms: [String]
    public let idf: [Float]
    /// Row r: the vector of the model's item r (columns: indices into `terms`).
    public let vectors: SparseMatrix
    /// Derived from the above on construction: each term's column, and the columns of
    /// `vectors` as rows (each term's items and weights).
    let termIndex: [String: Int32]
    let postings: SparseMatrix

    public init(terms: [String], idf: [Float], vectors: SparseMatrix) {
        self.terms = terms
        self.idf = idf
        self.vectors = vectors
        termIndex = Dictionary(terms.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a })
        postings = vectors.transposed
    }

    public static func == (a: ContentVectors, b: ContentVectors) -> Bool { a.terms == b.terms && a.idf == b.idf && a.vectors == b.vectors }

    /// Vectors of `documents` over the vocabulary they make (terms in fewer than `minDF` of
    /// them are left out).
    public static func fit(_ documents: [ItemDocument], minDF: Int = 1) -> ContentVectors {
        let termLists = documents.map(\.terms)
        var df: [String: Int] = [:]
        for terms in termLists {
            for t in Set(terms) { df[t, default: 0] += 1 }
        }
        let terms = df.filter { $0.value >= minDF }.keys.sorted()
        let index = Dictionary(uniqueKeysWithValues: terms.enumerated().map { ($1, Int32($0)) })
        let n = Float(documents.count)
        let idf = terms.map { log((1 + n) / (1 + Float(df[$0]!))) + 1 }
        var rowStart = [0], indices: [Int32] = [], values: [Float] = []
        for list in termLists {
            let (i, v) = weigh(list, index: index, idf: idf)
            indices += i
            values += v
            rowStart.append(indices.count)
        }
        return ContentVectors(
            terms: terms, idf: idf,
            vectors: SparseMatrix(rows: documents.count, cols: terms.count, rowStart: rowStart, indices: indices, values: values))
    }

    /// The L2-normalised TF-IDF vector of `terms` (columns ascending).
    static func weigh(_ terms: [String], index: [String: Int32], idf: [Float]) -> (indices: [Int32], values: [Float]) {
        var tf: [Int32: Float] = [:]
        for t in terms { if let c = index[t] { tf[c, default: 0] += 1 } }
        let sorted = tf.sorted { $0.key < $1.key }
        var values = sorted.map { (1 + log($0.value)) * idf[Int($0.key)] }
        let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { values = values.map { $0 / norm } }
        return (sorted.map(\.key), values)
    }

    /// The vector of a document not in the model, over the model's vocabulary.
    public func vector(_ document: ItemDocument) -> (indices: [Int32], values: [Float]) {
        Self.weigh(document.terms, index: termIndex, idf: idf)
    }

    /// The `k` items most similar to `vector` (cosine > 0), best first, ties by lower index;
    /// `excluded` items are skipped. Cost: the postings of the vector's terms.
    public func nearest(_ vector: (indices: [Int32], values: [Float]), k: Int, excluded: (Int) -> Bool = { _ in false }) -> [TopK.Entry] {
        var acc: [Int32: Float] = [:]
        for (t, w) in zip(vector.indices, vector.values) {
            for e in postings.rowStart[Int(t)]..<postings.rowStart[Int(t) + 1] {
                acc[postings.indices[e], default: 0] += w * postings.values[e]
            }
        }
        let entries = acc.compactMap { $0.value > 1e-6 && !excluded(Int($0.key)) ? TopK.Entry(index: $0.key, score: $0.value) : nil }
        return TopK.best(entries, k: k).sorted { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
    }

    /// Each item's `k` nearest others, as an item-item table (columns ascending per row).
    public func neighbourTable(k: Int, progress: (Int) throws -> Void = { _ in }) rethrows -> SparseMatrix {
        var rowStart = [0], indices: [Int32] = [], values: [Float] = []
        for i in 0..<vectors.rows {
            if i % 512 == 0 { try progress(i) }
            let range = vectors.rowStart[i]..<vectors.rowStart[i + 1]
            let row = (Array(vectors.indices[range]), Array(vectors.values[range]))
            for e in nearest(row, k: k, excluded: { $0 == i }).sorted(by: { $0.index < $1.index }) {
                indices.append(e.index)
                values.append(e.score)
            }
            rowStart.append(indices.count)
        }
        return SparseMatrix(rows: vectors.rows, cols: vectors.rows, rowStart: rowStart, indices: indices, values: values)
    }
}

import Classifiers
import Foundation
import Math
import Store
import Wire

/// A model's bytes as the registry stores them and GetModel streams them: a checksummed
/// container ("PMDL", format 1: a flag saying whether the body is LZ4-compressed, the body's
/// size, the body, CRC-32C of all of it) around the model's body ("PMDB": kind, catalogue,
/// popularity, then the kind's own tables). A reader refuses any artifact whose checksum,
/// magic or sizes do not hold: a corrupted file is never half loaded.
public enum ModelArtifact {
    public static let formatVersion: UInt32 = 1

    public struct Corrupt: Error, CustomStringConvertible {
        public var description: String
    }

    public static func encode(_ model: RecommenderModel) -> [UInt8] {
        var body = SnapshotWriter(magic: "PMDB", version: formatVersion, expectedBytes: 1 << 20)
        body.string(model.kind.rawValue)
        body.plain(model.itemIDs)
        body.plain(model.itemCategories)
        body.plain(model.popularity)
        body.plain(model.userIDs)
        func matrix(_ m: Matrix?) {
            body.u32(UInt32(m?.rows ?? 0))
            body.u32(UInt32(m?.cols ?? 0))
            body.plain(m?.values ?? [])
        }
        matrix(model.users)
        // The sequence model's item table is in its weights (below).
        matrix(model.kind == .sequence ? nil : model.items)
        body.bool(model.itemBias != nil)
        body.plain(model.itemBias ?? [])
        body.bool(model.itemItem != nil)
        if let w = model.itemItem {
            body.u32(UInt32(w.rows))
            body.u32(UInt32(w.cols))
            body.plain(w.rowStart.map { UInt64($0) })
            body.plain(w.indices)
            body.plain(w.values)
        }
        body.f32(model.foldInRegularization)
        body.f32(model.foldInAlpha)
        // Content models only: the vocabulary, idf and item vectors (the other kinds end above).
        if let c = model.content {
            body.array(c.terms) { $0.string($1) }
            body.plain(c.idf)
            body.u32(UInt32(c.vectors.rows))
            body.u32(UInt32(c.vectors.cols))
            body.plain(c.vectors.rowStart.map { UInt64($0) })
            body.plain(c.vectors.indices)
            body.plain(c.vectors.values)
        }
        // Sequence models only: the network's shape and weights.
        if let n = model.sequence {
            for v in [n.shape.items, n.shape.dim, n.shape.maxLength, n.shape.blocks] { body.u32(UInt32(v)) }
            body.plain(n.weights)
        }
        // Rankers only: the feature names and the trees.
        if let t = model.ranker {
            body.array(model.rankerFeatures) { $0.string($1) }
            t.write(to: &body)
        }
        return ArtifactContainer.seal(body.finish(), magic: "PMDL", version: formatVersion)
    }

    /// The model in `bytes`, indexed and ready to score.
    public static func decode(_ bytes: [UInt8]) throws -> RecommenderModel {
        do {
            var r = try SnapshotReader(
                try ArtifactContainer.open(bytes, magic: "PMDL", version: formatVersion, maxBytes: 1 << 34), magic: "PMDB")
            guard let kind = RecommenderModel.Kind(rawValue: try r.string()) else { throw Corrupt(description: "unknown model kind") }
            let itemIDs = try r.plain(Int64.self)
            var model = RecommenderModel(
                kind: kind, itemIDs: itemIDs, itemCategories: try r.plain(Int64.self), popularity: try r.plain(Float.self))
            model.userIDs = try r.plain(Int64.self)
            func matrix() throws -> Matrix? {
                let rows = Int(try r.u32()), cols = Int(try r.u32())
                let values = try r.plain(Float.self)
                guard values.count == rows * cols else { throw Corrupt(description: "a \(rows)x\(cols) table with \(values.count) values") }
                return rows == 0 && cols == 0 ? nil : Matrix(rows: rows, cols: cols, values: values)
            }
            model.users = try matrix()
            model.items = try matrix()
            let hasBias = try r.bool()
            let bias = try r.plain(Float.self)
            model.itemBias = hasBias ? bias : nil
            /// A CSR table as `encode` writes it, checked before it is built.
            func sparse(_ what: String) throws -> SparseMatrix {
                let rows = Int(try r.u32()), cols = Int(try r.u32())
                let start = try r.plain(UInt64.self).map { Int($0) }
                let indices = try r.plain(Int32.self), values = try r.plain(Float.self)
                guard start.count == rows + 1, start.first == 0, start.last == indices.count, indices.count == values.count,
                    zip(start, start.dropFirst()).allSatisfy({ $0 <= $1 }), indices.allSatisfy({ $0 >= 0 && Int($0) < cols })
                else { throw Corrupt(description: "inconsistent \(what) table") }
                return SparseMatrix(rows: rows, cols: cols, rowStart: start, indices: indices, values: values)
            }
            if try r.bool() { model.itemItem = try sparse("item-item") }
            model.foldInRegularization = try r.f32()
            model.foldInAlpha = try r.f32()
            if kind == .content {
                let terms = try r.array { try $0.string() }
                let idf = try r.plain(Float.self)
                let vectors = try sparse("content vector")
                guard idf.count == terms.count, vectors.cols == terms.count else {
                    throw Corrupt(description: "content vocabulary and vectors disagree")
                }
                model.content = ContentVectors(terms: terms, idf: idf, vectors: vectors)
            }
            if kind == .sequence {
                let items = Int(try r.u32()), dim = Int(try r.u32()), length = Int(try r.u32()), blocks = Int(try r.u32())
                guard items == itemIDs.count, (1...4096).contains(dim), (1...10_000).contains(length), (0...64).contains(blocks) else {
                    throw Corrupt(
                        description: "a sequence model of \(items) items, \(dim) dimensions, \(length) positions, \(blocks) blocks")
                }
                let shape = SASRec.Shape(items: items, dim: dim, maxLength: length, blocks: blocks)
                let weights = try r.plain(Float.self)
                guard weights.count == SASRec.parameterCount(shape) else {
                    throw Corrupt(description: "\(weights.count) sequence weights for \(SASRec.parameterCount(shape))")
                }
                let network = SASRec(shape: shape, weights: weights)
                model.sequence = network
                model.items = network.itemTable
            }
            if kind == .ranker {
                model.rankerFeatures = try r.array { try $0.string() }
                model.ranker = try BoostedTrees.read(from: &r)
            }
            try check(model)
            model.index()
            return model
        } catch let error as StoreError {
            throw Corrupt(description: "\(error)")
        } catch let error as WireError {
            throw Corrupt(description: "\(error)")
        } catch let error as Classifier.Corrupt {
            throw Corrupt(description: error.description)
        }
    }

    /// The artifact `bytes` without the factor rows of `erased` users and how many rows went,
    /// or nil when it holds none of them.
    public static func erasing(_ erased: Set<Int64>, from bytes: [UInt8]) throws -> (bytes: [UInt8], removed: Int)? {
        var model = try decode(bytes)
        let removed = model.forget(erased)
        return removed > 0 ? (encode(model), removed) : nil
    }

    /// The tables agree with the catalogue and the kind (a checksum that held over bytes a
    /// buggy writer got wrong must still not crash a server).
    private static func check(_ m: RecommenderModel) throws {
        let n = m.itemIDs.count
        guard m.itemCategories.count == n, m.popularity.count == n, Set(m.itemIDs).count == n else {
            throw Corrupt(description: "catalogue tables disagree")
        }
        switch m.kind {
        case .popularity: break
        case .itemKNN, .ease, .content:
            guard let w = m.itemItem, w.rows == n, w.cols == n else {
                throw Corrupt(description: "\(m.kind.rawValue) without an item-item table of \(n) items")
            }
            guard m.kind != .content || m.content?.vectors.rows == n else {
                throw Corrupt(description: "content without a vector for each of \(n) items")
            }
        case .sequence:
            guard let s = m.sequence, s.shape.items == n, m.items?.rows == n else {
                throw Corrupt(description: "sequence without a network over \(n) items")
            }
        case .ranker:
            guard let t = m.ranker, t.features == m.rankerFeatures.count else {
                throw Corrupt(description: "a ranker whose trees and feature names disagree")
            }
        case .als, .bpr:
            guard let items = m.items, let users = m.users, items.rows == n, users.cols == items.cols, users.rows == m.userIDs.count,
                Set(m.userIDs).count == m.userIDs.count, m.itemBias.map({ $0.count == n }) ?? true
            else { throw Corrupt(description: "\(m.kind.rawValue) factor tables disagree") }
        }
    }
}

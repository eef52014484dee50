import Foundation
public import Logging
public import Math
public import RPC
import ServiceKit
public import Wire

/// The published versions of the model service's recommenders, as another service holds
/// them (through a `ModelWatcher`): a long poll hears of each new version, fetched in chunks,
/// checked and decoded in the background, then swapped in at once; readers always see a
/// whole model, the old one until the new one is ready. A version that fails its checksum
/// or does not decode is skipped (and retried at the next change), never served.
public final class PublishedModels: @unchecked Sendable {
    public struct Loaded: Sendable {
        public var info: ModelInfo
        public var model: RecommenderModel
        /// A factor model's approximate index over its item vectors (with BPR's bias as
        /// one more column), built on load when the catalogue is large.
        public var index: HNSW?

        public init(info: ModelInfo, model: RecommenderModel, indexAbove threshold: Int = .max, parameters: HNSW.Parameters = .init()) {
            self.info = info
            self.model = model
            if let items = model.items, items.rows > threshold {
                index = HNSW(Self.indexed(items, bias: model.itemBias), parameters: parameters)
            }
        }

        /// The item vectors an index holds: with the bias as a last column, when there is one.
        static func indexed(_ items: Matrix, bias: [Float]?) -> Matrix {
            guard let bias else { return items }
            var m = Matrix(rows: items.rows, cols: items.cols + 1)
            for r in 0..<items.rows {
                for c in 0..<items.cols { m[r, c] = items[r, c] }
                m[r, items.cols] = bias[r]
            }
            return m
        }

        /// A factor model's `k` best items for a user (their row, or a vector folded in from
        /// `history`), best first, skipping items where `excluded` is true: from the index
        /// when there is one and it finds k, else by scoring every item.
        public func top(user: Int32?, history: [(item: Int32, value: Float)], k: Int, excluded: (Int) -> Bool) -> [TopK.Entry] {
            if let index {
                var q = model.userVector(user: user, history: history)
                if model.itemBias != nil { q.append(1) }
                let found = index.search(q, k: k, ef: max(index.parameters.efSearch, 2 * k), excluded: excluded)
                if found.count == k { return found }
            }
            var scores: [Float] = []
            model.score(user: user, history: history, into: &scores)
            return TopK.select(scores, k: k, excluded: excluded)
        }
    }

    private let lock = NSLock()
    private var models: [String: Loaded] = [:]
    private let logger: Logger
    /// Factor models with more items than this get an approximate index.
    private let indexAbove: Int
    private let indexParameters: HNSW.Parameters
    /// Called after each swap (metrics, logs).
    private let swapped: @Sendable (Loaded) -> Void
    private var watcher: ModelWatcher!

    public init(
        client: RPCClient, logger: Logger, accept: @escaping @Sendable (ModelKind) -> Bool = { _ in true }, indexAbove: Int = .max,
        indexParameters: HNSW.Parameters = .init(), swapped: @escaping @Sendable (Loaded) -> Void = { _ in }
    ) {
        self.logger = logger
        self.indexAbove = indexAbove
        self.indexParameters = indexParameters
        self.swapped = swapped
        watcher = ModelWatcher(client: client, logger: logger, accept: accept) { [unowned self] info, bytes in try self.swapIn(info, bytes)
        }
    }

    /// The published version of `name` now, if one is loaded.
    public subscript(name: String) -> Loaded? { lock.withLock { models[name] } }

    /// Name and version of every loaded model.
    public var versions: [String: UInt32] { lock.withLock { models.mapValues(\.info.version) } }

    /// Follows the model service until cancelled (`ModelWatcher.follow`).
    public func follow(wait: Duration = .seconds(20)) async throws { try await watcher.follow(wait: wait) }

    /// Fetches, checks and swaps in one version.
    public func load(_ name: String, version: UInt32) async throws { try await watcher.fetchAndLoad(name, version: version) }

    /// Drops erased users' factor rows from every model held (the model service rewrites
    /// its stored versions too; their new revisions replace these when fetched).
    public func forget(_ users: Set<Int64>) {
        lock.withLock {
            for name in models.keys { models[name]!.model.forget(users) }
        }
    }

    /// Decodes a checked artifact, indexes it when large, and swaps it in.
    private func swapIn(_ info: ModelInfo, _ bytes: [UInt8]) throws {
        let model = try ModelArtifact.decode(bytes)
        let started = ContinuousClock.now
        let loaded = Loaded(info: info, model: model, indexAbove: indexAbove, parameters: indexParameters)
        let indexed = loaded.index.map { _ in ", indexed in \(ContinuousClock.now - started)" } ?? ""
        lock.withLock { models[info.name] = loaded }
        logger.info(
            "loaded \(info.name) v\(info.version) (\(info.kind.name ?? ""), \(model.itemIDs.count) items, \(bytes.count) bytes\(indexed))")
        swapped(loaded)
    }
}

import Foundation
public import Math
public import Logging
public import RPC
public import Wire

/// The published versions of the model service's recommenders, as another service holds
/// them: a long poll (WatchModels) hears of each new version, which is fetched in chunks,
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
    private let client: RPCClient
    private let logger: Logger
    /// The kinds this reader serves (the others are some other service's models).
    private let accept: @Sendable (ModelKind) -> Bool
    /// Published versions of kinds it does not serve, not fetched again.
    private var ignored: [String: UInt32] = [:]
    /// Factor models with more items than this get an approximate index.
    private let indexAbove: Int
    private let indexParameters: HNSW.Parameters
    /// Called after each swap (metrics, logs).
    private let swapped: @Sendable (Loaded) -> Void

    public init(
        client: RPCClient, logger: Logger, accept: @escaping @Sendable (ModelKind) -> Bool = { _ in true }, indexAbove: Int = .max,
        indexParameters: HNSW.Parameters = .init(), swapped: @escaping @Sendable (Loaded) -> Void = { _ in }
    ) {
        self.client = client
        self.logger = logger
        self.accept = accept
        self.indexAbove = indexAbove
        self.indexParameters = indexParameters
        self.swapped = swapped
    }

    /// The published version of `name` now, if one is loaded.
    public subscript(name: String) -> Loaded? { lock.withLock { models[name] } }

    /// Name and version of every loaded model.
    public var versions: [String: UInt32] { lock.withLock { models.mapValues(\.info.version) } }

    /// Follows the model service until cancelled: fetches what is published now, then each
    /// new version as it is announced. Retries with backoff while the service is away.
    public func follow(wait: Duration = .seconds(20)) async throws {
        var backoff = ReconnectBackoff()
        while true {
            try Task.checkCancellation()
            var request = WatchModelsRequest()
            request.known = versions.sorted { $0.key < $1.key }.map { name, version in
                var v = ModelVersion()
                v.name = name
                v.version = version
                return v
            }
            request.waitMs = UInt32(wait / .milliseconds(1))
            do {
                let response = try await client.call(ModelAPI.watchModels, request, timeout: wait + .seconds(5))
                backoff.reset()
                for v in response.published where versions[v.name] != v.version && lock.withLock({ ignored[v.name] }) != v.version {
                    do {
                        try await load(v.name, version: v.version)
                    } catch {
                        logger.warning("could not load \(v.name) v\(v.version): \(error)")
                        try await Task.sleep(for: backoff.nextDelay())
                    }
                }
            } catch let error as RPCError {
                try Task.checkCancellation()
                logger.info("watching models: \(error)")
                try await Task.sleep(for: backoff.nextDelay())
            }
        }
    }

    /// Fetches, checks and swaps in one version.
    public func load(_ name: String, version: UInt32) async throws {
        var request = GetModelRequest()
        request.name = name
        request.version = version
        request.maxBytes = 4 << 20
        var bytes: [UInt8] = []
        var info: ModelInfo? = nil
        repeat {
            let chunk = try await client.call(ModelAPI.getModel, request, timeout: .seconds(30))
            guard let i = chunk.info, i.version == version || version == 0, chunk.offset == UInt64(bytes.count) else {
                throw ModelArtifact.Corrupt(description: "chunk of \(name) out of step")
            }
            guard accept(i.kind) else {
                lock.withLock { ignored[name] = i.version }
                logger.debug("not following \(name) v\(i.version): \(i.kind.name ?? "") is not a kind served here")
                return
            }
            info = i
            request.version = i.version
            bytes += chunk.artifact
            request.offset = UInt64(bytes.count)
            if bytes.count >= chunk.totalBytes { break }
            guard !chunk.artifact.isEmpty else { throw ModelArtifact.Corrupt(description: "empty chunk of \(name)") }
        } while true
        guard let info, ModelArtifact.checksum(bytes) == info.checksum else {
            throw ModelArtifact.Corrupt(description: "\(name) v\(version) does not match its checksum")
        }
        let model = try ModelArtifact.decode(bytes)
        let started = ContinuousClock.now
        let loaded = Loaded(info: info, model: model, indexAbove: indexAbove, parameters: indexParameters)
        let indexed = loaded.index.map { _ in ", indexed in \(ContinuousClock.now - started)" } ?? ""
        lock.withLock { models[name] = loaded }
        logger.info("loaded \(name) v\(info.version) (\(info.kind.name ?? ""), \(model.itemIDs.count) items, \(bytes.count) bytes\(indexed))")
        swapped(loaded)
    }
}

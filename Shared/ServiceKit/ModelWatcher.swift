import Foundation
public import Logging
public import RPC
import Store
public import Wire

/// Follows the model service's published versions as another service holds them: a long
/// poll (WatchModels) hears of each new version; one of a kind this reader serves is fetched
/// in chunks, checked against its checksum, and handed to `load` (which decodes it and swaps
/// it in). A version that fails to fetch or load is retried at the next change with backoff,
/// never half served; versions of other kinds are noted and left alone. A new revision of a
/// loaded version (an erasure rewrote it) is fetched and loaded like a new version.
public final class ModelWatcher: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: [String: UInt32] = [:]
    /// The revision of each loaded version (an erasure rewrites a version as a new revision).
    private var revisions: [String: UInt32] = [:]
    private var ignored: [String: UInt32] = [:]
    private let client: RPCClient
    private let logger: Logger
    private let accept: @Sendable (ModelKind) -> Bool
    private let load: @Sendable (ModelInfo, [UInt8]) async throws -> Void

    public init(
        client: RPCClient, logger: Logger, accept: @escaping @Sendable (ModelKind) -> Bool,
        load: @escaping @Sendable (_ info: ModelInfo, _ artifact: [UInt8]) async throws -> Void
    ) {
        self.client = client
        self.logger = logger
        self.accept = accept
        self.load = load
    }

    /// Name and version of every model loaded.
    public var versions: [String: UInt32] { lock.withLock { loaded } }

    /// Follows until cancelled: what is published now, then each new version as it is
    /// announced. Retries with backoff while the model service is away.
    public func follow(wait: Duration = .seconds(20)) async throws {
        var backoff = ReconnectBackoff()
        while true {
            try Task.checkCancellation()
            var request = WatchModelsRequest()
            request.known = versions.sorted { $0.key < $1.key }.map { name, version in
                var v = ModelVersion()
                v.name = name
                v.version = version
                v.revision = lock.withLock { revisions[name] ?? 0 }
                return v
            }
            request.waitMs = UInt32(wait / .milliseconds(1))
            do {
                let response = try await client.call(ModelAPI.watchModels, request, timeout: wait + .seconds(5))
                backoff.reset()
                let known = lock.withLock { (loaded, revisions) }
                for v in response.published
                where (known.0[v.name] != v.version || (known.1[v.name] ?? 0) != v.revision)
                    && lock.withLock({ ignored[v.name] }) != v.version
                {
                    do {
                        try await fetchAndLoad(v.name, version: v.version)
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

    /// Fetches, checks and loads one version (0: the published one).
    public func fetchAndLoad(_ name: String, version: UInt32) async throws {
        let fetched = try await Self.download(name, version: version, from: client) { [self] info in
            guard accept(info.kind) else {
                lock.withLock { ignored[name] = info.version }
                logger.debug("not following \(name) v\(info.version): \(info.kind.name ?? "") is not a kind served here")
                return false
            }
            return true
        }
        guard let (info, bytes) = fetched else { return }
        try await load(info, bytes)
        lock.withLock {
            loaded[name] = info.version
            revisions[name] = info.revision
        }
    }

    /// One version of a model (0: the published one), fetched in chunks and checked against
    /// its checksum; nil when `accept` turns down its first chunk's info.
    public static func download(
        _ name: String, version: UInt32, from client: RPCClient, accept: (ModelInfo) -> Bool = { _ in true }
    ) async throws -> (ModelInfo, [UInt8])? {
        var request = GetModelRequest()
        request.name = name
        request.version = version
        request.maxBytes = 4 << 20
        var bytes: [UInt8] = []
        var info: ModelInfo? = nil
        repeat {
            let chunk = try await client.call(ModelAPI.getModel, request, timeout: .seconds(30))
            guard let i = chunk.info, i.version == version || version == 0, chunk.offset == UInt64(bytes.count) else {
                throw ServiceError("chunk of \(name) out of step")
            }
            if info == nil, !accept(i) { return nil }
            info = i
            request.version = i.version
            bytes += chunk.artifact
            request.offset = UInt64(bytes.count)
            if bytes.count >= chunk.totalBytes { break }
            guard !chunk.artifact.isEmpty else { throw ServiceError("empty chunk of \(name)") }
        } while true
        guard let info, ArtifactContainer.checksum(bytes) == info.checksum else {
            throw ServiceError("\(name) v\(version) does not match its checksum")
        }
        return (info, bytes)
    }
}

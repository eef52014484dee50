import Foundation
import Recommenders
import Store
public import Wire

/// Versioned model artifacts on disk, under `registry/<name>/`: `v<N>.model` (the
/// checksummed artifact), `v<N>.info` (its ModelInfo and EvaluationReport), and `published`
/// (every version published, in order; the last is current, so a rollback steps back).
/// Every file is written atomically, the artifact before its info: a version exists once
/// its info file does, so a crash mid-training never leaves half a version, and a version
/// is published only after both are durable.
public final class Registry: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public enum Code: Sendable { case notFound, corrupt, invalid }
        public var code: Code
        public var description: String
    }

    let root: String
    private let lock = NSLock()
    private var infos: [String: [UInt32: ModelInfo]] = [:]
    private var reports: [String: [UInt32: EvaluationReport]] = [:]
    private var history: [String: [UInt32]] = [:]
    /// The last artifact read and checked, so a client streaming it in chunks reads the file once.
    private var verified: (name: String, version: UInt32, revision: UInt32, bytes: [UInt8])? = nil

    public init(directory: String) throws {
        root = directory
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: root) where Self.validName(name) {
            let dir = root + "/" + name
            for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasSuffix(".info") {
                guard let bytes = try AtomicFile.read(dir + "/" + file) else { continue }
                var r = try SnapshotReader(bytes, magic: "PMVI")
                let info = try ModelInfo(serializedBytes: try r.plain(UInt8.self))
                let report = try EvaluationReport(serializedBytes: try r.plain(UInt8.self))
                infos[name, default: [:]][info.version] = info
                reports[name, default: [:]][info.version] = report
            }
            if let text = try AtomicFile.read(dir + "/published") {
                history[name] = String(decoding: text, as: UTF8.self).split(separator: "\n").compactMap { UInt32($0) }.filter {
                    infos[name]?[$0] != nil
                }
            }
            // An artifact no info names is one an erasure replaced (a crash came between the
            // info and the removal): it may hold an erased user, so it goes.
            let named = Set((infos[name] ?? [:]).values.map { artifactPath($0) })
            for file in try FileManager.default.contentsOfDirectory(atPath: dir)
            where file.hasSuffix(".model") && !named.contains(dir + "/" + file) {
                try FileManager.default.removeItem(atPath: dir + "/" + file)
            }
        }
    }

    /// Model names: letters, digits, `_` and `-`, up to 64 characters.
    public static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { $0 == 95 || $0 == 45 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }

    private func directory(_ name: String) -> String { root + "/" + name }

    /// The artifact file of a version: `v<N>.model` as trained, `v<N>.r<R>.model` once an
    /// erasure rewrote it R times.
    private func artifactPath(_ info: ModelInfo) -> String {
        "\(directory(info.name))/v\(info.version)\(info.revision == 0 ? "" : ".r\(info.revision)").model"
    }

    /// Stores a new version of `name` and returns its info (version = the next number). With
    /// `publish` it is published in the same step, so no reader lists it unpublished first.
    public func add(
        name: String, artifact: [UInt8], info template: ModelInfo, report reportTemplate: EvaluationReport, publish: Bool = false
    ) throws -> ModelInfo {
        guard Self.validName(name) else {
            throw Failure(code: .invalid, description: "model name '\(name)' must be letters, digits, '_' or '-'")
        }
        return try lock.withLock {
            let version = (infos[name]?.keys.max() ?? 0) + 1
            var info = template
            info.name = name
            info.version = version
            info.artifactBytes = UInt64(artifact.count)
            info.checksum = ArtifactContainer.checksum(artifact)
            info.published = false
            var report = reportTemplate
            report.name = name
            report.version = version
            let dir = directory(name)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try AtomicFile.write(artifact, to: artifactPath(info))
            try writeInfo(info, report)
            infos[name, default: [:]][version] = info
            reports[name, default: [:]][version] = report
            guard publish else { return info }
            try setHistory(name, (history[name] ?? []) + [version])
            return marked(info)
        }
    }

    private func writeInfo(_ info: ModelInfo, _ report: EvaluationReport) throws {
        var w = SnapshotWriter(magic: "PMVI", version: 1)
        w.plain(info.serializedBytes())
        w.plain(report.serializedBytes())
        try AtomicFile.write(w.finish(), to: "\(directory(info.name))/v\(info.version).info")
    }

    /// Every version (of `name`, or of every model), newest first per name.
    public func list(name: String = "") -> [ModelInfo] {
        lock.withLock {
            infos.filter { name.isEmpty || $0.key == name }.sorted { $0.key < $1.key }.flatMap { entry in
                entry.value.values.sorted { $0.version > $1.version }.map { marked($0) }
            }
        }
    }

    private func marked(_ info: ModelInfo) -> ModelInfo {
        var i = info
        i.published = history[info.name]?.last == info.version
        return i
    }

    /// The published version of every model.
    public var published: [String: UInt32] {
        lock.withLock { history.compactMapValues(\.last) }
    }

    /// The published version of every model with its revision, by name.
    public var publishedVersions: [ModelVersion] {
        lock.withLock {
            history.compactMap { name, list in
                list.last.flatMap { v in infos[name]?[v] }.map { info in
                    var m = ModelVersion()
                    m.name = name
                    m.version = info.version
                    m.revision = info.revision
                    return m
                }
            }.sorted { $0.name < $1.name }
        }
    }

    /// Rewrites every stored version whose artifact holds factor rows of `erased` users
    /// without them: the next revision of the same version, its new artifact written before
    /// the info that names it, the old file removed after (so a crash leaves either the old
    /// pair, or the new pair and an orphan the next start removes). Idempotent: a version
    /// without those users is left alone. Returns the versions rewritten.
    @discardableResult
    public func erase(_ erased: Set<Int64>) throws -> [ModelInfo] {
        guard !erased.isEmpty else { return [] }
        let candidates = lock.withLock { infos.values.flatMap(\.values).filter { $0.kind == .als || $0.kind == .bpr } }
        var rewritten: [ModelInfo] = []
        for old in candidates {
            guard let bytes = try AtomicFile.read(artifactPath(old)), let scrubbed = try ModelArtifact.erasing(erased, from: bytes) else {
                continue
            }
            let info = try lock.withLock {
                var info = infos[old.name]?[old.version] ?? old
                guard info.revision == old.revision, let report = reports[old.name]?[old.version] else { return old }
                info.revision += 1
                info.artifactBytes = UInt64(scrubbed.bytes.count)
                info.checksum = ArtifactContainer.checksum(scrubbed.bytes)
                info.users -= UInt32(min(Int(info.users), scrubbed.removed))
                try AtomicFile.write(scrubbed.bytes, to: artifactPath(info))
                try writeInfo(info, report)
                infos[info.name]![info.version] = info
                try FileManager.default.removeItem(atPath: artifactPath(old))
                if verified?.name == info.name, verified?.version == info.version { verified = nil }
                return info
            }
            if info.revision != old.revision { rewritten.append(info) }
        }
        return rewritten
    }

    /// The info of `version` (0: the published one).
    public func info(_ name: String, _ version: UInt32) throws -> ModelInfo {
        try lock.withLock { try resolve(name, version) }
    }

    private func resolve(_ name: String, _ version: UInt32) throws -> ModelInfo {
        guard let versions = infos[name] else { throw Failure(code: .notFound, description: "no model named '\(name)'") }
        let v = version == 0 ? history[name]?.last : version
        guard let v else { throw Failure(code: .notFound, description: "model '\(name)' has no published version") }
        guard let info = versions[v] else { throw Failure(code: .notFound, description: "model '\(name)' has no version \(v)") }
        return marked(info)
    }

    /// The report of `version` (0: the published one, else the latest).
    public func report(_ name: String, _ version: UInt32) throws -> EvaluationReport {
        try lock.withLock {
            let v = version != 0 ? version : (history[name]?.last ?? infos[name]?.keys.max() ?? 0)
            guard let report = reports[name]?[v] else { throw Failure(code: .notFound, description: "model '\(name)' has no version \(v)") }
            return report
        }
    }

    /// The checked bytes of `version` (0: published). A file whose checksum or structure
    /// fails is refused as corrupt, never served.
    public func artifact(_ name: String, _ version: UInt32) throws -> (ModelInfo, [UInt8]) {
        let info = try self.info(name, version)
        if let v = lock.withLock({ verified }), v.name == name, v.version == info.version, v.revision == info.revision {
            return (info, v.bytes)
        }
        guard let bytes = try AtomicFile.read(artifactPath(info)) else {
            throw Failure(code: .corrupt, description: "the artifact of \(name) v\(info.version) is missing")
        }
        // The checksum covers every byte; the services that load it decode and check its tables.
        guard ArtifactContainer.checksum(bytes) == info.checksum, bytes.count == info.artifactBytes else {
            throw Failure(
                code: .corrupt, description: "the artifact of \(name) v\(info.version) does not match its checksum: refusing to serve it")
        }
        lock.withLock { verified = (name, info.version, info.revision, bytes) }
        return (info, bytes)
    }

    /// Publishes `version` (it must exist and its artifact must check).
    public func publish(_ name: String, _ version: UInt32) throws -> ModelInfo {
        _ = try artifact(name, version)
        return try lock.withLock {
            let info = try resolve(name, version)
            var list = history[name] ?? []
            if list.last != version { list.append(version) }
            try setHistory(name, list)
            return marked(info)
        }
    }

    /// Publishes the version published before the current one, or `version` when given.
    public func rollback(_ name: String, to version: UInt32) throws -> ModelInfo {
        if version != 0 { return try publish(name, version) }
        let previous: UInt32 = try lock.withLock {
            guard let list = history[name], let current = list.last else {
                throw Failure(code: .notFound, description: "model '\(name)' has no published version to roll back")
            }
            guard let previous = list.last(where: { $0 != current }) else {
                throw Failure(code: .notFound, description: "model '\(name)' has no earlier published version than v\(current)")
            }
            return previous
        }
        _ = try artifact(name, previous)
        return try lock.withLock {
            var list = history[name] ?? []
            while let last = list.last, last != previous { list.removeLast() }
            try setHistory(name, list)
            return marked(try resolve(name, previous))
        }
    }

    private func setHistory(_ name: String, _ list: [UInt32]) throws {
        try AtomicFile.write(Array(list.map(String.init).joined(separator: "\n").utf8), to: directory(name) + "/published")
        history[name] = list
    }
}

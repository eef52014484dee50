import Foundation
import Wire

/// The container a published model's bytes travel in: a checksummed snapshot file (`magic`,
/// format `version`, CRC-32C of every byte) holding a flag saying whether the body is
/// LZ4-compressed, the body's size, and the body. A reader gets the body back only when the
/// checksum, magic, version and sizes all hold.
public enum ArtifactContainer {
    /// The checksum the registry lists for an artifact file and its readers compare: CRC-32C
    /// of every byte, as 8 hex digits.
    public static func checksum(_ bytes: [UInt8]) -> String {
        String(format: "%08x", CRC32C.checksum(bytes))
    }

    public static func seal(_ body: [UInt8], magic: String, version: UInt32) -> [UInt8] {
        let compressed = LZ4Block.compress(body)
        var out = SnapshotWriter(magic: magic, version: version, expectedBytes: (compressed?.count ?? body.count) + 64)
        out.bool(compressed != nil)
        out.u64(UInt64(body.count))
        out.plain(compressed ?? body)
        return out.finish()
    }

    public static func open(_ bytes: [UInt8], magic: String, version: UInt32, maxBytes: Int) throws -> [UInt8] {
        var r = try SnapshotReader(bytes, magic: magic)
        guard r.version == version else { throw StoreError(.corrupt, "\(magic) format \(r.version) is not \(version)") }
        let compressed = try r.bool()
        let size = Int(try r.u64())
        let stored = try r.plain(UInt8.self)
        guard size <= maxBytes else { throw StoreError(.corrupt, "\(magic) body of \(size) bytes") }
        return compressed ? try LZ4Block.decompress(stored, originalSize: size) : stored
    }
}

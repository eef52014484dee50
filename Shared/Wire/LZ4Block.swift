internal import CLZ4

/// LZ4 block compression (liblz4), used by the RPC layer for large payloads.
public enum LZ4Block {
    /// Largest input liblz4 accepts in one block.
    public static let maxInputSize = Int(LZ4_MAX_INPUT_SIZE)

    /// Worst-case compressed size of `count` input bytes.
    public static func compressBound(_ count: Int) -> Int {
        Int(LZ4_compressBound(Int32(clamping: count)))
    }

    /// Compresses `source` into `destination` (at least `compressBound(source.count)` bytes).
    /// Returns the compressed size, or nil when the input is too large.
    public static func compress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Int? {
        guard source.count <= maxInputSize, let src = source.baseAddress, let dst = destination.baseAddress else {
            return nil
        }
        let n = LZ4_compress_default(
            src.assumingMemoryBound(to: CChar.self), dst.assumingMemoryBound(to: CChar.self),
            Int32(source.count), Int32(clamping: destination.count))
        return n > 0 ? Int(n) : nil
    }

    /// Decompresses exactly `destination.count` bytes from `source`. The caller caps
    /// `destination.count` before allocating it, so a lying header cannot make us allocate more.
    public static func decompress(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        guard let src = source.baseAddress, let dst = destination.baseAddress else {
            throw WireError(code: .badCompression, message: "empty LZ4 block")
        }
        let n = LZ4_decompress_safe(
            src.assumingMemoryBound(to: CChar.self), dst.assumingMemoryBound(to: CChar.self),
            Int32(clamping: source.count), Int32(clamping: destination.count))
        guard n == destination.count else {
            throw WireError(code: .badCompression, message: "LZ4 block decompressed to \(n) bytes, header declared \(destination.count)")
        }
    }
}

extension LZ4Block {
    /// Convenience for tests and tools: compresses into a new array, nil if it does not shrink.
    public static func compress(_ bytes: [UInt8]) -> [UInt8]? {
        bytes.withUnsafeBytes { src in
            var out = [UInt8](repeating: 0, count: compressBound(src.count))
            let n = out.withUnsafeMutableBytes { compress(src, into: $0) }
            guard let n, n < src.count else { return nil }
            out.removeSubrange(n...)
            return out
        }
    }

    public static func decompress(_ bytes: [UInt8], originalSize: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: originalSize)
        try bytes.withUnsafeBytes { src in try out.withUnsafeMutableBytes { try decompress(src, into: $0) } }
        return out
    }
}

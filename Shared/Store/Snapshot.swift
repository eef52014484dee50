/// A snapshot file's bytes: a 4-byte magic naming the format, a format version, the body,
/// and a CRC-32C of everything before it. Services write their state with
/// `SnapshotWriter`, store it with `AtomicFile`, and read it back with `SnapshotReader`,
/// which refuses a file whose magic, version or checksum is wrong (a typed error, never a
/// half-read state).
///
/// The methods are inlinable so that a service's own writing and reading code specialises
/// them: a snapshot holds millions of values.
public struct SnapshotWriter {
    @usableFromInline var storage: [UInt8] = []
    /// Streaming: where each full chunk goes, the chunk size, the checksum of what went.
    private let file: AtomicFileWriter?
    private let chunkBytes: Int
    private var crc: UInt32 = 0

    /// The bytes written so far (in memory; streamed ones are in the file).
    public var bytes: [UInt8] { storage }

    /// A snapshot built in memory. `expectedBytes`: a guess at the size, so that a large
    /// snapshot's buffer is not regrown (each regrowth copies it and faults in fresh pages).
    public init(magic: String, version: UInt32, expectedBytes: Int = 1 << 16) {
        self.init(magic: magic, version: version, file: nil, chunkBytes: expectedBytes)
    }

    /// A snapshot streamed into `file` a chunk at a time (`flushIfFull()` sends a chunk once
    /// `chunkBytes` are waiting): a state of hundreds of megabytes never needs a buffer of its
    /// size, whose fresh pages the kernel would first have to zero. `finishStreaming()` ends it.
    public init(magic: String, version: UInt32, streamingTo file: AtomicFileWriter, chunkBytes: Int = 4 << 20) {
        self.init(magic: magic, version: version, file: file, chunkBytes: chunkBytes)
    }

    private init(magic: String, version: UInt32, file: AtomicFileWriter?, chunkBytes: Int) {
        precondition(magic.utf8.count == 4, "snapshot magic is 4 bytes")
        self.file = file
        self.chunkBytes = chunkBytes
        storage.reserveCapacity(file == nil ? chunkBytes : chunkBytes + (64 << 10))
        storage += Array(magic.utf8)
        u32(version)
    }

    /// When streaming, sends what is waiting to the file once it reaches a chunk. Writers call
    /// it between records (the byte-level methods do not check); in memory it does nothing.
    public mutating func flushIfFull() throws {
        guard let file, storage.count >= chunkBytes else { return }
        try flush(to: file)
    }

    private mutating func flush(to file: AtomicFileWriter) throws {
        crc = storage.withUnsafeBytes { CRC32C.checksum($0, continuing: crc) }
        try storage.withUnsafeBytes { try file.append($0) }
        storage.removeAll(keepingCapacity: true)
    }

    @inlinable public mutating func u8(_ v: UInt8) { storage.append(v) }
    @inlinable public mutating func bool(_ v: Bool) { storage.append(v ? 1 : 0) }
    @inlinable public mutating func u16(_ v: UInt16) { little(UInt64(v), bytes: 2) }
    @inlinable public mutating func u32(_ v: UInt32) { little(UInt64(v), bytes: 4) }
    @inlinable public mutating func u64(_ v: UInt64) { little(v, bytes: 8) }

    /// The low `bytes` bytes of `v`, least significant first (a byte at a time: appending
    /// a few bytes through a buffer pointer went through the generic, slow path).
    @inlinable mutating func little(_ v: UInt64, bytes: Int) {
        var v = v
        for _ in 0..<bytes {
            storage.append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
    }
    @inlinable public mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    @inlinable public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    @inlinable public mutating func f32(_ v: Float) { u32(v.bitPattern) }
    @inlinable public mutating func f64(_ v: Double) { u64(v.bitPattern) }

    /// Variable-length count (LEB128), for lengths and small numbers.
    @inlinable public mutating func count(_ n: Int) {
        var v = UInt64(n)
        while v >= 0x80 {
            storage.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        storage.append(UInt8(v))
    }

    @inlinable public mutating func string(_ s: String) {
        count(s.utf8.count)
        storage += s.utf8
    }

    @inlinable public mutating func array<T>(_ values: [T], _ write: (inout SnapshotWriter, T) -> Void) {
        count(values.count)
        for v in values { write(&self, v) }
    }

    /// A count, then the values' bytes as they lie in memory (little-endian hosts): factor
    /// tables and index arrays of millions of values, without a call per value.
    public mutating func plain<T: BitwiseCopyable>(_ values: [T]) {
        count(values.count)
        values.withUnsafeBytes { storage += $0 }
    }

    /// The finished file: the bytes so far and their checksum (appended in place, so the
    /// bytes are not copied; the writer is used up).
    public consuming func finish() -> [UInt8] {
        precondition(file == nil, "a streaming snapshot ends with finishStreaming()")
        appendChecksum()
        return storage
    }

    /// Ends a streamed snapshot: the rest and the checksum go to the file (which the caller
    /// then commits). Returns the file's size.
    public consuming func finishStreaming() throws -> Int {
        guard let file else { preconditionFailure("an in-memory snapshot ends with finish()") }
        appendChecksum()
        try storage.withUnsafeBytes { try file.append($0) }
        return file.size
    }

    /// The CRC-32C of everything written (what was streamed, continued over what waits).
    private mutating func appendChecksum() {
        let crc = storage.withUnsafeBytes { CRC32C.checksum($0, continuing: self.crc) }
        withUnsafeBytes(of: crc.littleEndian) { storage += $0 }
    }
}

public struct SnapshotReader {
    @usableFromInline let bytes: [UInt8]
    @usableFromInline var position = 0
    @usableFromInline let end: Int
    public let version: UInt32

    /// Checks the magic and checksum; `version` is the format version found.
    public init(_ file: [UInt8], magic: String) throws {
        guard file.count >= 12, Array(file[0..<4]) == Array(magic.utf8) else {
            throw StoreError(.corrupt, "not a \(magic) snapshot")
        }
        let body = file.count - 4
        let stored = file[body...].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        let actual = file.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
        guard stored == actual else { throw StoreError(.corrupt, "\(magic) snapshot checksum mismatch") }
        self.bytes = file
        self.end = body
        self.version = file.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) }
        self.position = 8
    }

    public var isAtEnd: Bool { position == end }

    @inlinable mutating func take<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard position + size <= end else { throw StoreError(.corrupt, "snapshot ends early") }
        let v = bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: T.self)) }
        position += size
        return v
    }

    @inlinable public mutating func u8() throws -> UInt8 { try take(UInt8.self) }
    @inlinable public mutating func bool() throws -> Bool { try take(UInt8.self) != 0 }
    @inlinable public mutating func u16() throws -> UInt16 { try take(UInt16.self) }
    @inlinable public mutating func u32() throws -> UInt32 { try take(UInt32.self) }
    @inlinable public mutating func u64() throws -> UInt64 { try take(UInt64.self) }
    @inlinable public mutating func i32() throws -> Int32 { Int32(bitPattern: try u32()) }
    @inlinable public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    @inlinable public mutating func f32() throws -> Float { Float(bitPattern: try u32()) }
    @inlinable public mutating func f64() throws -> Double { Double(bitPattern: try u64()) }

    @inlinable public mutating func count() throws -> Int {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try u8()
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { break }
            shift += 7
            guard shift < 63 else { throw StoreError(.corrupt, "snapshot count too long") }
        }
        guard v <= UInt64(end - position) * 8 + 64 else { throw StoreError(.corrupt, "snapshot count \(v) exceeds the file") }
        return Int(v)
    }

    @inlinable public mutating func string() throws -> String {
        let n = try count()
        guard position + n <= end else { throw StoreError(.corrupt, "snapshot ends early") }
        defer { position += n }
        return String(decoding: bytes[position..<position + n], as: UTF8.self)
    }

    /// Values written by `SnapshotWriter.plain`.
    public mutating func plain<T: BitwiseCopyable>(_: T.Type) throws -> [T] {
        let n = try count()
        let size = n * MemoryLayout<T>.stride
        guard size <= end - position else { throw StoreError(.corrupt, "snapshot ends early") }
        let values = [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[position..<position + size]))
            }
            initialized = n
        }
        position += size
        return values
    }

    /// The bytes not read yet.
    public var remaining: Int { end - position }

    @inlinable public mutating func array<T>(_ read: (inout SnapshotReader) throws -> T) throws -> [T] {
        let n = try count()
        var out: [T] = []
        out.reserveCapacity(min(n, 1 << 16))
        for _ in 0..<n { out.append(try read(&self)) }
        return out
    }
}

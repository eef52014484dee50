/// A snapshot file's bytes: a 4-byte magic naming the format, a format version, the body,
/// and a CRC-32C of everything before it. Services write their state with
/// `SnapshotWriter`, store it with `AtomicFile`, and read it back with `SnapshotReader`,
/// which refuses a file whose magic, version or checksum is wrong (a typed error, never a
/// half-read state).
public struct SnapshotWriter {
    public private(set) var bytes: [UInt8] = []

    public init(magic: String, version: UInt32) {
        precondition(magic.utf8.count == 4, "snapshot magic is 4 bytes")
        bytes.reserveCapacity(1 << 16)
        bytes += Array(magic.utf8)
        u32(version)
    }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    public mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    public mutating func f32(_ v: Float) { u32(v.bitPattern) }
    public mutating func f64(_ v: Double) { u64(v.bitPattern) }

    /// Variable-length count (LEB128), for lengths and small numbers.
    public mutating func count(_ n: Int) {
        var v = UInt64(n)
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func string(_ s: String) {
        count(s.utf8.count)
        bytes += s.utf8
    }

    public mutating func array<T>(_ values: [T], _ write: (inout SnapshotWriter, T) -> Void) {
        count(values.count)
        for v in values { write(&self, v) }
    }

    /// The finished file: the bytes so far and their checksum.
    public func finish() -> [UInt8] {
        var out = bytes
        withUnsafeBytes(of: CRC32C.checksum(bytes).littleEndian) { out += $0 }
        return out
    }
}

public struct SnapshotReader {
    private let bytes: [UInt8]
    private var position = 0
    private let end: Int
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

    private mutating func take<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard position + size <= end else { throw StoreError(.corrupt, "snapshot ends early") }
        let v = bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: T.self)) }
        position += size
        return v
    }

    public mutating func u8() throws -> UInt8 { try take(UInt8.self) }
    public mutating func bool() throws -> Bool { try take(UInt8.self) != 0 }
    public mutating func u16() throws -> UInt16 { try take(UInt16.self) }
    public mutating func u32() throws -> UInt32 { try take(UInt32.self) }
    public mutating func u64() throws -> UInt64 { try take(UInt64.self) }
    public mutating func i32() throws -> Int32 { Int32(bitPattern: try u32()) }
    public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }
    public mutating func f32() throws -> Float { Float(bitPattern: try u32()) }
    public mutating func f64() throws -> Double { Double(bitPattern: try u64()) }

    public mutating func count() throws -> Int {
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

    public mutating func string() throws -> String {
        let n = try count()
        guard position + n <= end else { throw StoreError(.corrupt, "snapshot ends early") }
        defer { position += n }
        return String(decoding: bytes[position..<position + n], as: UTF8.self)
    }

    public mutating func array<T>(_ read: (inout SnapshotReader) throws -> T) throws -> [T] {
        let n = try count()
        var out: [T] = []
        out.reserveCapacity(min(n, 1 << 16))
        for _ in 0..<n { out.append(try read(&self)) }
        return out
    }
}

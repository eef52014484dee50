import Wire

/// One stored batch: a 32-byte little-endian header, then the body (the records, each as
/// `u32 length` + bytes), LZ4-compressed when that shrinks it.
///
/// | offset | size | field |
/// | ---: | ---: | --- |
/// | 0 | 4 | magic "PSB1" |
/// | 4 | 4 | CRC-32C of bytes 16..<end followed by bytes 8..<16 |
/// | 8 | 8 | offset of the first record |
/// | 16 | 4 | record count |
/// | 20 | 4 | body length as stored |
/// | 24 | 4 | body length uncompressed |
/// | 28 | 1 | flags: bit 0 = LZ4 |
/// | 29 | 3 | zero |
///
/// The checksum covers the offset last so that appenders can compress and checksum their
/// batch in parallel, and the single writer only patches in the offset and extends the CRC
/// over those 8 bytes.
struct Batch {
    static let headerSize = 32
    static let magic: [UInt8] = Array("PSB1".utf8)

    /// Encoded batch with its offset still zero and its CRC covering bytes 16..<end only.
    var bytes: [UInt8]
    let count: Int
    private let partialCRC: UInt32

    init(records: Records, compress: Bool) {
        let body = records.body
        let capacity = Self.headerSize + max(body.count, LZ4Block.compressBound(body.count))
        var flags: UInt8 = 0
        // Header and body written straight into one buffer: the body compressed in place when
        // that shrinks it, else copied.
        bytes = body.withUnsafeBytes { source in
            [UInt8](unsafeUninitializedCapacity: capacity) { out, count in
                let raw = UnsafeMutableRawBufferPointer(out)
                let room = UnsafeMutableRawBufferPointer(rebasing: raw[Self.headerSize...])
                var stored = body.count
                if compress, body.count >= 256, let n = LZ4Block.compress(source, into: room), n < body.count {
                    stored = n
                    flags = 1
                } else if let base = source.baseAddress {
                    room.baseAddress!.copyMemory(from: base, byteCount: body.count)
                }
                raw.copyBytes(from: Self.magic)
                raw.storeBytes(of: 0, toByteOffset: 4, as: UInt32.self)
                raw.storeBytes(of: 0, toByteOffset: 8, as: UInt64.self)
                raw.storeBytes(of: UInt32(records.count).littleEndian, toByteOffset: 16, as: UInt32.self)
                raw.storeBytes(of: UInt32(stored).littleEndian, toByteOffset: 20, as: UInt32.self)
                raw.storeBytes(of: UInt32(body.count).littleEndian, toByteOffset: 24, as: UInt32.self)
                raw.storeBytes(of: UInt32(flags).littleEndian, toByteOffset: 28, as: UInt32.self)
                count = Self.headerSize + stored
            }
        }
        self.count = records.count
        self.partialCRC = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[16...])) }
    }

    /// Patches in the first record's offset and completes the checksum.
    mutating func seal(baseOffset: UInt64) {
        bytes.withUnsafeMutableBytes { b in
            b.storeBytes(of: baseOffset.littleEndian, toByteOffset: 8, as: UInt64.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[8..<16]), continuing: partialCRC)
            b.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    /// The fields of a header, read without trusting them.
    struct Header {
        var crc: UInt32
        var baseOffset: UInt64
        var count: UInt32
        var storedLength: Int
        var rawLength: Int
        var flags: UInt8
        var totalLength: Int { Batch.headerSize + storedLength }

        init?(_ b: UnsafeRawBufferPointer) {
            guard b.count >= Batch.headerSize, b[0] == 0x50, b[1] == 0x53, b[2] == 0x42, b[3] == 0x31 else { return nil }
            crc = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            baseOffset = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            count = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
            storedLength = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 20, as: UInt32.self)))
            rawLength = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: UInt32.self)))
            flags = b[28]
        }
    }

    /// Whether `b` (a whole batch) matches its checksum.
    static func verify(_ b: UnsafeRawBufferPointer, header: Header) -> Bool {
        guard b.count == header.totalLength else { return false }
        let crc = CRC32C.checksum(
            UnsafeRawBufferPointer(rebasing: b[8..<16]), continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[16...])))
        return crc == header.crc
    }

    /// Calls `body` with the index and bytes of each record of a verified batch (the bytes
    /// valid only during the call): the body is decompressed once, no array per record.
    static func forEachRecord(
        _ b: UnsafeRawBufferPointer, header: Header, maxRawLength: Int, _ body: (Int, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard header.rawLength <= maxRawLength else {
            throw StoreError(.corrupt, "batch at offset \(header.baseOffset) claims \(header.rawLength) bytes")
        }
        let stored = UnsafeRawBufferPointer(rebasing: b[Batch.headerSize...])
        func split(_ raw: UnsafeRawBufferPointer) throws {
            var i = 0
            for n in 0..<Int(header.count) {
                guard i + 4 <= raw.count else { throw StoreError(.corrupt, "batch at offset \(header.baseOffset) is short") }
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
                i += 4
                guard length <= raw.count - i else {
                    throw StoreError(.corrupt, "record in batch at offset \(header.baseOffset) overruns it")
                }
                try body(n, UnsafeRawBufferPointer(rebasing: raw[i..<(i + length)]))
                i += length
            }
        }
        guard header.flags & 1 == 1 else { return try split(stored) }
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: header.rawLength, alignment: 16)
        defer { raw.deallocate() }
        try LZ4Block.decompress(stored, into: raw)
        try split(UnsafeRawBufferPointer(raw))
    }
}

/// Records laid out as a batch body, each as `u32 length` + bytes, ready to append to a
/// `SegmentedLog`. Producers that encode records themselves write them straight in here
/// (`append(writing:)`) instead of handing over one array per record.
public struct Records: Sendable {
    public private(set) var body: [UInt8] = []
    public private(set) var count = 0
    public var isEmpty: Bool { count == 0 }

    /// `bytes`: room to reserve for the records and their lengths.
    public init(reservingCapacity bytes: Int = 0) {
        body.reserveCapacity(bytes)
    }

    public init(_ records: [[UInt8]]) {
        body.reserveCapacity(records.reduce(0) { $0 + 4 + $1.count })
        for r in records { append(r) }
    }

    public mutating func append(_ record: [UInt8]) {
        append { $0 += record }
    }

    /// Appends one record: whatever `write` appends to the buffer it is given.
    public mutating func append(writing write: (inout [UInt8]) -> Void) {
        let start = body.count
        body.append(contentsOf: repeatElement(0, count: 4))
        write(&body)
        let length = UInt32(body.count - start - 4)
        body.withUnsafeMutableBytes { $0.storeBytes(of: length.littleEndian, toByteOffset: start, as: UInt32.self) }
        count += 1
    }
}

/// Errors of the store. A struct with a growable code.
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public static let io = Code(name: "io")
        public static let corrupt = Code(name: "corrupt")
        public static let outOfRange = Code(name: "out_of_range")
        public static let closed = Code(name: "closed")
        public static let tooLarge = Code(name: "too_large")
        /// A setting or argument the store cannot work with.
        public static let invalidArgument = Code(name: "invalid_argument")
        /// A remote log engine did not answer or did not acknowledge in time.
        public static let unavailable = Code(name: "unavailable")
        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

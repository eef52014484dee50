/// The few pieces of the protobuf wire format that Persona writes and reads around
/// messages libprotobuf-c has already encoded: tags, varints and length-delimited fields.
/// They let a service pass an encoded message through (ingest stores a producer's event as
/// sent; a read answers with stored events as stored) instead of decoding and re-encoding it.
/// Everything inside the messages is still encoded and decoded by libprotobuf-c, with one
/// exception: ingest's Append answer (`AppendStatuses`), thousands of three-number statuses,
/// is written field by field; a test holds it byte for byte to libprotobuf-c's encoding.
public enum Framing {
    /// Wire type 2: a length-delimited field (strings, bytes, messages).
    static let lengthDelimited: UInt64 = 2
    /// Wire type 0: a varint field.
    static let varint: UInt64 = 0

    public static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        if value < 0x80 {
            bytes.append(UInt8(value))
            return
        }
        // Written on the stack, then appended at once (one capacity check, not one a byte).
        var room: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &room) { b in
            let start = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var writer = VarintWriter(start)
            writer.varint(value)
            bytes.append(contentsOf: UnsafeBufferPointer(start: start, count: writer.position - start))
        }
    }

    /// An int64/uint64 field as protobuf encodes it (negative int64 as ten bytes). Proto3
    /// leaves zero out.
    public static func appendVarintField(_ field: UInt64, _ value: UInt64, to bytes: inout [UInt8]) {
        guard value != 0 else { return }
        appendVarint(field << 3 | varint, to: &bytes)
        appendVarint(value, to: &bytes)
    }

    /// The tag and length of a length-delimited field whose `length` bytes follow.
    public static func appendLengthDelimitedHeader(_ field: UInt64, length: Int, to bytes: inout [UInt8]) {
        appendVarint(field << 3 | lengthDelimited, to: &bytes)
        appendVarint(UInt64(length), to: &bytes)
    }

    /// Reads a varint at `i`, advancing it; nil when the bytes end first or it runs past ten bytes.
    static func readVarint(_ bytes: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while i < bytes.count, shift < 70 {
            let b = bytes[i]
            i += 1
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
        return nil
    }

    /// A field's value as `forEachField` reads it.
    enum FieldValue {
        case varint(UInt64)
        case bytes(Range<Int>)
        /// A fixed64 or fixed32 field (its value is not read).
        case fixed
    }

    /// Calls `body` with each field of `message`, in order; false when the bytes are not a
    /// well-formed message (then `body` may have seen some fields).
    static func forEachField(in message: UnsafeRawBufferPointer, _ body: (_ field: UInt64, FieldValue) -> Void) -> Bool {
        var i = 0
        while i < message.count {
            guard let tag = readVarint(message, &i) else { return false }
            switch tag & 7 {
            case varint:
                guard let value = readVarint(message, &i) else { return false }
                body(tag >> 3, .varint(value))
            case lengthDelimited:
                guard let length = readVarint(message, &i), length <= UInt64(message.count - i) else { return false }
                body(tag >> 3, .bytes(i..<(i + Int(length))))
                i += Int(length)
            case 1:  // fixed64
                guard message.count - i >= 8 else { return false }
                i += 8
                body(tag >> 3, .fixed)
            case 5:  // fixed32
                guard message.count - i >= 4 else { return false }
                i += 4
                body(tag >> 3, .fixed)
            default:
                return false
            }
        }
        return true
    }

    /// The byte ranges of the occurrences of length-delimited field `field` in `message`, in
    /// order; nil when the message holds anything else (then the caller falls back to a
    /// full decode and encode).
    static func ranges(ofOnly field: UInt64, in message: UnsafeRawBufferPointer) -> [Range<Int>]? {
        var out: [Range<Int>] = []
        var onlyField = true
        let wellFormed = forEachField(in: message) { number, value in
            if number == field, case .bytes(let range) = value { out.append(range) } else { onlyField = false }
        }
        return wellFormed && onlyField ? out : nil
    }
}

/// Writes protobuf fields through a pointer into room the caller has sized
/// (`size`/`fieldSize` tell how much).
struct VarintWriter {
    private(set) var position: UnsafeMutablePointer<UInt8>

    init(_ start: UnsafeMutablePointer<UInt8>) {
        position = start
    }

    static func size(_ value: UInt64) -> Int {
        (64 - value.leadingZeroBitCount + 6) / 7 + (value == 0 ? 1 : 0)
    }

    /// A varint field's size; zero for a zero value (proto3 leaves it out).
    static func fieldSize(_ field: UInt64, _ value: UInt64) -> Int {
        value == 0 ? 0 : size(field << 3) + size(value)
    }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            position.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            position += 1
            v >>= 7
        }
        position.pointee = UInt8(v)
        position += 1
    }

    mutating func field(_ field: UInt64, _ value: UInt64) {
        guard value != 0 else { return }
        varint(field << 3 | Framing.varint)
        varint(value)
    }

    mutating func lengthDelimitedHeader(_ field: UInt64, length: Int) {
        varint(field << 3 | Framing.lengthDelimited)
        varint(UInt64(length))
    }

    /// A length-delimited field, left out when empty.
    mutating func bytes(_ field: UInt64, _ value: UnsafeRawBufferPointer) {
        guard let base = value.baseAddress, value.count > 0 else { return }
        lengthDelimitedHeader(field, length: value.count)
        position.update(from: base.assumingMemoryBound(to: UInt8.self), count: value.count)
        position += value.count
    }
}

/// The encoding of a `M`, built by other means than encoding an `M` value (see `Framing`).
public struct Encoded<M: WireMessage>: Sendable {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(_ message: M) {
        bytes = message.serializedBytes()
    }
}

extension StoredEvent {
    /// The event id (UTF-8 bytes, empty without an event) and ingestion time of an encoded
    /// `StoredEvent`, read without decoding the rest: ingest re-learns every stored id at
    /// each start. Nil when the bytes are not a well-formed message. Where a field occurs
    /// more than once the last occurrence counts (ingest writes each once).
    public static func idAndIngestionTime(of encoded: UnsafeRawBufferPointer) -> (eventID: UnsafeRawBufferPointer, ingestedAtMs: Int64)? {
        var ingestedAtMs: Int64 = 0
        var event: Range<Int>?
        // StoredEvent: ingested_at_ms = 2, event = 3.
        let ok = Framing.forEachField(in: encoded) { field, value in
            switch (field, value) {
            case (2, .varint(let v)): ingestedAtMs = Int64(bitPattern: v)
            case (3, .bytes(let r)): event = r
            default: break
            }
        }
        guard ok else { return nil }
        guard let event else { return (UnsafeRawBufferPointer(rebasing: encoded[0..<0]), ingestedAtMs) }
        let eventBytes = UnsafeRawBufferPointer(rebasing: encoded[event])
        var id = 0..<0
        // Event: event_id = 1.
        let eventOK = Framing.forEachField(in: eventBytes) { field, value in
            if field == 1, case .bytes(let r) = value { id = r }
        }
        guard eventOK else { return nil }
        return (UnsafeRawBufferPointer(rebasing: eventBytes[id]), ingestedAtMs)
    }
}

extension StoredEvent {
    /// The kind and user id of an encoded `StoredEvent`'s event, read without decoding the
    /// rest (ingest's erasure and kind-filtered reads); nil when the bytes are not a
    /// well-formed message or hold no event.
    public static func kindAndUser(of encoded: UnsafeRawBufferPointer) -> (kind: EventKind, userID: Int64)? {
        var event: Range<Int>?
        guard
            Framing.forEachField(
                in: encoded,
                { field, value in
                    if field == 3, case .bytes(let r) = value { event = r }
                }), let event
        else { return nil }
        var kind: Int32 = 0
        var user: Int64 = 0
        // Event: kind = 2, user_id = 3.
        guard
            Framing.forEachField(
                in: UnsafeRawBufferPointer(rebasing: encoded[event]),
                { field, value in
                    switch (field, value) {
                    case (2, .varint(let v)): kind = Int32(truncatingIfNeeded: v)
                    case (3, .varint(let v)): user = Int64(bitPattern: v)
                    default: break
                    }
                })
        else { return nil }
        return (EventKind(rawValue: kind), user)
    }
}

/// A ReadResponse of stored records as stored (each an encoded `StoredEvent` without its
/// offset), each record's offset written in front of it, as field 1 comes first.
public struct ReadResponseWriter {
    private var out: [UInt8] = []

    /// `expectedBytes`: about how many bytes the records take (room is reserved).
    public init(expectedBytes: Int = 0) {
        out.reserveCapacity(expectedBytes + 32)
    }

    public mutating func append(offset: UInt64, record: UnsafeRawBufferPointer) {
        // ReadResponse.events = 1; StoredEvent.offset = 1.
        let offsetField = VarintWriter.fieldSize(1, offset)
        Framing.appendLengthDelimitedHeader(1, length: offsetField + record.count, to: &out)
        Framing.appendVarintField(1, offset, to: &out)
        out.append(contentsOf: record)
    }

    public consuming func finish(nextOffset: UInt64, endOffset: UInt64) -> Encoded<ReadResponse> {
        Framing.appendVarintField(2, nextOffset, to: &out)
        Framing.appendVarintField(3, endOffset, to: &out)
        return Encoded(bytes: out)
    }
}

internal import CPersonaProto
internal import CProtobufC

#if canImport(Glibc)
import Glibc
#endif

/// An `AppendRequest` decoded by libprotobuf-c and kept as its C structs: ingest's hot path.
///
/// Ingest reads each event's top-level fields here, rewrites the few it must (pseudonyms,
/// the IP's country, a normalised event) in place, and packs each event as a `StoredEvent`
/// straight from the C tree. Common events therefore never become Swift values: no string
/// copies, no boxes, no second encode. Events that need more work are taken out as `Event`
/// values with `event(_:)` and put back with `replace(_:with:)`.
///
/// Not thread-safe; one task owns a batch from decode to pack.
public final class EventBatch {
    /// The top-level string fields of an event.
    public enum Text: CaseIterable, Sendable {
        case eventID, sessionID, deviceID, ip, channel, ipCountry
    }

    /// An event's scalar fields, and whether it carries anything else.
    public struct Header: Sendable {
        public var kind: EventKind
        public var userId: Int64
        public var timestampMs: Int64
        public var itemId: Int64
        public var quantity: Int32
        /// True when the event has a sub-message (order, payment, ...) or fields this build
        /// does not know: then only its `Event` value shows all of it.
        public var hasDetail: Bool
    }

    private let arena: Arena
    private let events: UnsafeMutablePointer<UnsafeMutablePointer<Persona__V1__Event>?>?
    public let count: Int
    /// The request as sent and where each event's encoding lies in it (nil when the request
    /// holds anything besides its events). An event ingest leaves as it is is stored as sent.
    private let request: [UInt8]
    private let ranges: [Range<Int>]?
    /// Per event, `rewritten` and `replaced` bits. Raw memory the batch owns rather than an
    /// array in a class property, which would pay an exclusivity check on every access.
    private let flags: UnsafeMutableBufferPointer<UInt8>
    /// The event was rewritten since decoding: it is packed again.
    private static let rewritten: UInt8 = 1
    /// The event was put back as an `Event` value (`replace(_:with:)`).
    private static let replaced: UInt8 = 2

    /// Decodes an `AppendRequest`, under the same limits as `AppendRequest(serializedBytes:)`.
    public init(appendRequest bytes: UnsafeRawBufferPointer, limits: DecodingLimits = .default) throws {
        let (arena, request) = try unpackC(bytes, limits: limits, name: "AppendRequest", persona__v1__append_request__unpack)
        self.arena = arena
        self.events = request.pointee.events
        self.count = request.pointee.n_events
        self.request = Array(bytes)
        let ranges = Framing.ranges(ofOnly: 1, in: bytes)
        self.ranges = ranges?.count == count ? ranges : nil
        self.flags = .allocate(capacity: count)
        flags.initialize(repeating: 0)
    }

    deinit {
        flags.deallocate()
    }

    private func c(_ i: Int) -> UnsafeMutablePointer<Persona__V1__Event> {
        precondition(i >= 0 && i < count, "event \(i) of \(count)")
        return events![i]!
    }

    public func header(_ i: Int) -> Header {
        let e = c(i).pointee
        let detail =
            e.order != nil || e.payment != nil || e.refund != nil || e.review != nil || e.search != nil
            || e.login != nil || e.register_ != nil || e.profile != nil || e.item != nil || e.impression != nil
            || e.label != nil || e.base.n_unknown_fields > 0
        return Header(
            kind: EventKind(rawValue: Int32(truncatingIfNeeded: e.kind.rawValue)), userId: e.user_id,
            timestampMs: e.timestamp_ms, itemId: e.item_id, quantity: e.quantity, hasDetail: detail)
    }

    private func text(_ e: UnsafeMutablePointer<Persona__V1__Event>, _ field: Text) -> UnsafeMutablePointer<CChar>? {
        switch field {
        case .eventID: e.pointee.event_id
        case .sessionID: e.pointee.session_id
        case .deviceID: e.pointee.device_id
        case .ip: e.pointee.ip
        case .channel: e.pointee.channel
        case .ipCountry: e.pointee.ip_country
        }
    }

    /// The UTF-8 bytes of one string field, valid only inside `body`.
    public func withText<R>(_ i: Int, _ field: Text, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        // Empty strings (most events carry some) skip the length scan.
        guard let p = text(c(i), field), p.pointee != 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: p, count: strlen(p)))
    }

    /// Replaces one string field (the new bytes live in the batch's arena).
    public func setText(_ i: Int, _ field: Text, _ bytes: UnsafeRawBufferPointer) {
        let p = arena.allocate(CChar.self, count: bytes.count + 1)
        if let base = bytes.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: bytes.count) }
        p[bytes.count] = 0
        let e = c(i)
        flags[i] |= Self.rewritten
        switch field {
        case .eventID: e.pointee.event_id = p
        case .sessionID: e.pointee.session_id = p
        case .deviceID: e.pointee.device_id = p
        case .ip: e.pointee.ip = p
        case .channel: e.pointee.channel = p
        case .ipCountry: e.pointee.ip_country = p
        }
    }

    /// Event `i` as a Swift value.
    public func event(_ i: Int) -> Event {
        Event(cMessage: c(i))
    }

    /// Puts `event` in place of event `i`.
    public func replace(_ i: Int, with event: Event) {
        precondition(i >= 0 && i < count)
        events![i] = arena.message(event)
        flags[i] |= Self.rewritten | Self.replaced
    }

    /// Whether event `i` was put back as an `Event` value.
    public func isReplaced(_ i: Int) -> Bool {
        precondition(i >= 0 && i < count, "event \(i) of \(count)")
        return flags[i] & Self.replaced != 0
    }

    /// Appends event `i`, wrapped in a `StoredEvent` stamped `ingestedAtMs`, to `bytes`.
    /// An event nobody rewrote keeps the encoding its producer sent.
    public func appendStored(_ i: Int, ingestedAtMs: Int64, to bytes: inout [UInt8]) {
        precondition(i >= 0 && i < count, "event \(i) of \(count)")
        if let ranges, flags[i] & Self.rewritten == 0 {
            // StoredEvent { ingested_at_ms = 2; event = 3 }, the event's bytes as they came.
            Framing.appendVarintField(2, UInt64(bitPattern: ingestedAtMs), to: &bytes)
            Framing.appendLengthDelimitedHeader(3, length: ranges[i].count, to: &bytes)
            request.withUnsafeBytes { bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[ranges[i]])) }
            return
        }
        var stored = Persona__V1__StoredEvent()
        persona__v1__stored_event__init(&stored)
        stored.ingested_at_ms = ingestedAtMs
        stored.event = c(i)
        withUnsafePointer(to: &stored) { s in
            let base = UnsafeRawPointer(s).assumingMemoryBound(to: ProtobufCMessage.self)
            let start = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: protobuf_c_message_get_packed_size(base)))
            bytes.withUnsafeMutableBufferPointer { _ = protobuf_c_message_pack(base, $0.baseAddress! + start) }
        }
    }
}

import Foundation
import TestSupport
import Testing

@testable import Wire

@Suite("Codec round trips")
struct CodecRoundTripTests {
    @Test("every message survives encode and decode with edge values", arguments: allMessageSamples.map(\.protoName))
    func roundTrip(protoName: String) throws {
        let samples = try #require(allMessageSamples.first { $0.protoName == protoName }).samples
        for sample in samples {
            try checkRoundTrip(sample)
        }
    }

    private func checkRoundTrip<M: WireMessage>(_ message: M) throws {
        let bytes = message.serializedBytes()
        let decoded = try M(serializedBytes: bytes)
        #expect(decoded == message)
        #expect(decoded.serializedBytes() == bytes)
    }

    @Test func defaultMessageEncodesToNothing() throws {
        #expect(Event().serializedBytes().isEmpty)
        #expect(try Event(serializedBytes: []) == Event())
    }

    @Test func unknownEnumValueSurvivesRoundTrip() throws {
        var event = Event()
        event.kind = EventKind(rawValue: 4242)
        event.userId = 7
        let decoded = try Event(serializedBytes: event.serializedBytes())
        #expect(decoded.kind.rawValue == 4242)
        #expect(decoded.kind.name == nil)
        #expect(decoded.kind.description == "EventKind(4242)")
    }

    @Test func unknownFieldsAreKeptAndReEncoded() throws {
        var kv = KeyValue()
        kv.key = "k"
        // Field 15 (varint 300) and field 16 (bytes "hi"), neither known to KeyValue.
        let extra: [UInt8] = [0x78, 0xAC, 0x02, 0x82, 0x01, 0x02, 0x68, 0x69]
        let decoded = try KeyValue(serializedBytes: kv.serializedBytes() + extra)
        #expect(decoded.key == "k")
        #expect(decoded.unknownFields.fields.map(\.number) == [15, 16])
        #expect(decoded.unknownFields.fields[1].data == [0x02, 0x68, 0x69])
        #expect(decoded.serializedBytes() == kv.serializedBytes() + extra)
    }

    @Test func enumNamesAreTheProtoNamesWithoutPrefix() {
        #expect(EventKind.addToCart.name == "add_to_cart")
        #expect(EventKind(name: "add_to_cart") == .addToCart)
        #expect(StatusCode.overloaded.rawValue == 17)
    }
}

@Suite("Bounded decoding")
struct BoundedDecodingTests {
    @Test func truncatedInputIsMalformed() throws {
        var event = Event()
        event.eventId = "e-1"
        event.userId = 42
        let bytes = event.serializedBytes()
        #expect(bytes == [0x0A, 0x03, 0x65, 0x2D, 0x31, 0x18, 0x2A])
        // Every cut inside a field fails; a cut at the field boundary is a shorter valid message.
        for cut in [1, 2, 3, 4, 6] {
            #expect(throws: WireError.self) { try Event(serializedBytes: Array(bytes.prefix(cut))) }
        }
        #expect(try Event(serializedBytes: Array(bytes.prefix(5))).eventId == "e-1")
    }

    @Test func garbageIsMalformedNotACrash() {
        #expect {
            try Event(serializedBytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        } throws: { ($0 as? WireError)?.code == .malformed }
    }

    @Test func oversizedInputIsRefusedBeforeDecoding() {
        let limits = DecodingLimits(maxMessageBytes: 16, allocationFactor: 10, baseAllocation: 1024)
        #expect {
            try Event(serializedBytes: [UInt8](repeating: 0, count: 17), limits: limits)
        } throws: { ($0 as? WireError)?.code == .tooLarge }
    }

    @Test("a hostile frame of empty sub-messages cannot allocate past the budget")
    func allocationBudget() throws {
        // 1 MiB of empty Events inside an AppendRequest: field 1, length 0, repeated.
        let hostile: [UInt8] = (0..<(1 << 20)).map { $0 % 2 == 0 ? 0x0A : 0x00 }
        #expect {
            try AppendRequest(serializedBytes: hostile)
        } throws: { ($0 as? WireError)?.code == .allocationBudgetExceeded }
        // The same shape, small enough to fit its budget, decodes.
        let small = Array(hostile.prefix(200))
        #expect(try AppendRequest(serializedBytes: small).events.count == 100)
        // A legitimate batch of minimal events (a catalogue's item upserts) fits the default budget.
        var catalogue = AppendRequest()
        catalogue.events = (0..<5000).map { i in
            var e = Event()
            e.eventId = "item-\(i)"
            e.kind = .itemUpsert
            var u = ItemUpsert()
            u.itemId = Int64(i + 1)
            u.categoryId = Int64(i % 50 + 1)
            u.price = Double(i % 100) + 0.99
            e.item = u
            return e
        }
        #expect(try AppendRequest(serializedBytes: catalogue.serializedBytes()).events.count == 5000)
    }
}

@Suite("LZ4")
struct LZ4Tests {
    @Test func compressesRepetitiveDataAndRestoresIt() throws {
        let input = [UInt8](repeating: 0x41, count: 10_000) + Array("persona".utf8)
        let compressed = try #require(LZ4Block.compress(input))
        #expect(compressed.count < input.count / 10)
        #expect(try LZ4Block.decompress(compressed, originalSize: input.count) == input)
    }

    @Test func incompressibleDataIsNotCompressed() {
        var rng = SystemRandomNumberGenerator()
        let input = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        #expect(LZ4Block.compress(input) == nil)
    }

    @Test func wrongDeclaredSizeIsRejected() throws {
        let input = [UInt8](repeating: 7, count: 5000)
        let compressed = try #require(LZ4Block.compress(input))
        #expect(throws: WireError.self) { try LZ4Block.decompress(compressed, originalSize: 4999) }
        #expect(throws: WireError.self) { try LZ4Block.decompress(compressed, originalSize: 5001) }
        #expect(throws: WireError.self) { try LZ4Block.decompress([0xFF, 0x00, 0x01], originalSize: 100) }
    }
}

@Suite("Batch encoding")
struct BatchEncodingTests {
    @Test("serializedBytes(each:) equals encoding one by one, small and large messages mixed")
    func eachMatchesOneByOne() throws {
        var small = Event()
        small.eventId = "e"
        var large = Event()
        large.eventId = String(repeating: "x", count: 20_000)  // bigger than an arena block
        var order = Order()
        order.lines = (0..<500).map {
            var l = OrderLine(); l.itemId = Int64($0 + 1); return l
        }
        large.order = order
        let messages = [small, large, small, Event(), large, small]
        #expect(Event.serializedBytes(each: messages) == messages.map { $0.serializedBytes() })
    }
}

@Suite("Framing around encoded messages")
struct FramingTests {
    @Test("a ReadResponse framed from stored records is byte for byte the encoded message")
    func readResponseFromStoredRecords() throws {
        let stored = (0..<40).map { n -> StoredEvent in
            var e = Event()
            e.eventId = "e\(n)"
            e.userId = Int64(n) - 3  // negative ids encode as ten-byte varints
            e.timestampMs = n % 3 == 0 ? 0 : 1_700_000_000_000
            var s = StoredEvent()
            s.ingestedAtMs = n % 5 == 0 ? -1 : Int64(n)
            s.event = n == 7 ? nil : e
            return s
        }
        let offsets: [UInt64] = (0..<40).map { $0 == 0 ? 0 : UInt64($0) * 1_000_003 }
        var writer = ReadResponseWriter()
        for (offset, event) in zip(offsets, stored) {
            event.serializedBytes().withUnsafeBytes { writer.append(offset: offset, record: $0) }
        }
        let framed = writer.finish(nextOffset: 99_000_000_000, endOffset: 0)
        var expected = ReadResponse()
        expected.events = zip(offsets, stored).map {
            var s = $1; s.offset = $0; return s
        }
        expected.nextOffset = 99_000_000_000
        #expect(framed.bytes == expected.serializedBytes())
        #expect(try ReadResponse(serializedBytes: framed.bytes) == expected)
    }

    @Test("AppendStatuses encode byte for byte as their AppendResponse value")
    func appendStatusesEncodeAsTheResponse() throws {
        var statuses = AppendStatuses(count: 300)
        statuses.reject(3, .invalidUser, detail: "user_id must be positive, got -1")
        statuses.reject(4, .unknownKind, detail: "")
        statuses.reject(5, RejectReason(rawValue: -7), detail: "a reason this build does not know: ten bytes on the wire")
        statuses.reject(299, .textTooLong, detail: String(repeating: "é", count: 100))  // a length past one varint byte
        for i in [0, 7, 8, 100] { statuses.duplicate(i) }
        let open = (0..<300).filter { ![0, 3, 4, 5, 7, 8, 100, 299].contains($0) }
        let (even, odd) = (open.filter { $0 % 2 == 0 }, open.filter { $0 % 2 == 1 })
        statuses.accept(even, partition: 0, firstOffset: 0)
        statuses.accept(odd, partition: 3, firstOffset: 1 << 40)
        let expected = statuses.response
        #expect(expected.accepted == UInt32(open.count) && expected.duplicates == 4 && expected.rejected == 4)
        #expect(expected.statuses[5].reason.rawValue == -7 && expected.statuses[299].detail.count == 100)
        #expect(expected.statuses[even[0]].offset == 0 && expected.statuses[even[1]].offset == 1)
        #expect(expected.statuses[odd[1]].partition == 3 && expected.statuses[odd[1]].offset == 1 << 40 + 1)
        #expect(statuses.encoded().bytes == expected.serializedBytes())
        #expect(try AppendResponse(serializedBytes: statuses.encoded().bytes) == expected)
        #expect(AppendStatuses(count: 0).encoded().bytes.isEmpty)
    }

    @Test("a stored event's id and ingestion time read from its bytes equal the decoded ones")
    func idAndIngestionTimeFromBytes() throws {
        var cases = [StoredEvent.sample(0), StoredEvent.sample(1), StoredEvent()]
        // Every field of the samples set (fixed-width ones included), an empty id, no event.
        var noID = StoredEvent.sample(1)
        noID.event!.eventId = ""
        cases.append(noID)
        var noEvent = StoredEvent.sample(0)
        noEvent.event = nil
        cases.append(noEvent)
        for stored in cases {
            let bytes = stored.serializedBytes()
            let read = bytes.withUnsafeBytes { b in
                StoredEvent.idAndIngestionTime(of: b).map { (String(decoding: $0.eventID, as: UTF8.self), $0.ingestedAtMs) }
            }
            #expect(read?.0 == (stored.event?.eventId ?? ""))
            #expect(read?.1 == stored.ingestedAtMs)
            // Cut anywhere inside, the bytes are refused (or read as a shorter well-formed
            // message), never read past.
            for cut in 0..<bytes.count {
                let prefix = Array(bytes[..<cut])
                _ = prefix.withUnsafeBytes { StoredEvent.idAndIngestionTime(of: $0) }
            }
        }
        // Fixed-width fields are stepped over: field 4 fixed64, field 5 fixed32, then
        // ingested_at_ms = 5 and an event with id "x".
        let mixed: [UInt8] =
            [0x21] + [UInt8](repeating: 0xFF, count: 8) + [0x2D, 0x01, 0x02, 0x03, 0x04, 0x10, 0x05, 0x1A, 0x03, 0x0A, 0x01, 0x78]
        let read = mixed.withUnsafeBytes { b in StoredEvent.idAndIngestionTime(of: b).map { (Array($0.eventID), $0.ingestedAtMs) } }
        #expect(read?.0 == [0x78] && read?.1 == 5)
        #expect([0x1A, 0x05, 0x0A].withUnsafeBytes { StoredEvent.idAndIngestionTime(of: $0) } == nil)  // event longer than the bytes
        #expect([0x0F].withUnsafeBytes { StoredEvent.idAndIngestionTime(of: $0) } == nil)  // wire type 7
    }

    @Test func rangesOfOnlyOneRepeatedField() {
        var request = AppendRequest()
        request.events = (0..<3).map {
            var e = Event(); e.eventId = String(repeating: "x", count: $0 * 100); return e
        }
        let bytes = request.serializedBytes()
        let ranges = bytes.withUnsafeBytes { Framing.ranges(ofOnly: 1, in: $0) }
        #expect(ranges?.map { Array(bytes[$0]) } == request.events.map { $0.serializedBytes() })
        // Anything else, or a truncated field, and there are no ranges to trust.
        #expect((bytes + [0x10, 0x01]).withUnsafeBytes { Framing.ranges(ofOnly: 1, in: $0) } == nil)
        #expect(bytes.dropLast().withUnsafeBytes { Framing.ranges(ofOnly: 1, in: $0) } == nil)
    }
}

import Foundation
import PersonalData
import ServiceKit
import Testing
import Wire

@testable import Ingest

/// Ingest checks plain events (views, clicks, carts, favourites with clean strings) in place
/// in their decoded batch, and every other event as an `Event` value. Both must give the
/// same answer and store the same bytes.
@Suite("Ingest's in-place path")
struct PlainPathTests {
    /// Random events, many plain, some with strings that need normalising, some invalid.
    func randomEvents(_ count: Int) -> [Event] {
        var rng = SystemRandomNumberGenerator()
        let clean = ["", "", "abc", "web", "10.0.0.1", "dev-9", "sess-1"]
        let dirty = ["Web", " app", "app ", "2001:DB8::1", "x\u{301}", "é", "sess\t1", String(repeating: "k", count: 1_200)]
        func text() -> String {
            Int.random(in: 0..<12, using: &rng) == 0 ? dirty.randomElement(using: &rng)! : clean.randomElement(using: &rng)!
        }
        func pick<T>(_ valid: T, _ invalid: [T]) -> T {
            Int.random(in: 0..<8, using: &rng) == 0 ? invalid.randomElement(using: &rng)! : valid
        }
        let kinds: [EventKind] = [
            .view, .click, .addToCart, .removeFromCart, .favorite, .view, .view, .search, .login, .register, EventKind(rawValue: 77),
        ]
        return (0..<count).map { n in
            var e = Event()
            e.eventId = pick("id-\(n)", ["", " id-\(n)", "\u{301}\(n)"])
            e.kind = kinds.randomElement(using: &rng)!
            e.userId = pick(Int64(n + 1), [-1, 0])
            e.timestampMs = pick(nowMs - Int64(n) * 1000, [nowMs + 3_600_000, 5])
            e.itemId = pick(Int64(n % 97 + 1), [0, -3])
            e.quantity = pick(Int32(n % 3), [-1, 50_000])
            e.sessionId = text()
            e.deviceId = text()
            e.ip = text()
            e.channel = text()
            if Int.random(in: 0..<10, using: &rng) == 0 {
                var s = Search()
                s.query = "shoes"
                e.search = s
            }
            return e
        }
    }

    @Test("the in-place check answers what the Event check answers, and needs no rewrite")
    func plainPathAgreesWithEventPath() throws {
        let validator = EventValidator()
        let events = randomEvents(5_000)
        var request = AppendRequest()
        request.events = events
        let batch = try request.serializedBytes().withUnsafeBytes { try EventBatch(appendRequest: $0) }
        #expect(batch.count == events.count)
        var plain = 0
        var plainAccepted = 0
        for (i, event) in events.enumerated() {
            #expect(batch.event(i) == event)
            let full = validator.validate(event, nowMs: nowMs)
            guard let fast = validator.validatePlain(batch, i, nowMs: nowMs) else { continue }
            plain += 1
            switch (fast, full) {
            case (.success, .success(let normalised)):
                // Stored in place as it came: normalising must not have changed anything.
                #expect(normalised == event)
                plainAccepted += 1
            case (.failure(let a), .failure(let b)):
                #expect(a.reason == b.reason, "\(event)")
            default:
                Issue.record("paths disagree on \(event): in place \(fast), as Event \(full)")
            }
        }
        // Both paths were exercised.
        #expect(plain > 500 && plainAccepted > 50 && plain < events.count - 500)
    }

    @Test("pseudonyms of bytes and of strings are the same")
    func pseudonymBytesMatchStrings() {
        let p = Pseudonymizer(key: Array("0123456789abcdef".utf8))
        for value in ["", "10.0.0.1", "dev-1", "é-device", "p:0123456789abcdef0123456789abcdef"] {
            var copy = value
            let bytes = copy.withUTF8 { p.pseudonym(UnsafeRawBufferPointer($0)) }
            #expect((bytes.map { String(decoding: $0, as: UTF8.self) } ?? value) == p.pseudonym(value))
        }
    }

    @Test("a stored event packed from the batch decodes to the event, stamped")
    func packedFromTheBatch() throws {
        var request = AppendRequest()
        request.events = randomEvents(50)
        let batch = try request.serializedBytes().withUnsafeBytes { try EventBatch(appendRequest: $0) }
        var replaced = request.events[3]
        replaced.channel = "replaced"
        batch.replace(3, with: replaced)
        "p:new".utf8CString.dropLast().withUnsafeBytes { batch.setText(4, .ip, $0) }
        for i in 0..<batch.count {
            var bytes: [UInt8] = [9]
            batch.appendStored(i, ingestedAtMs: 1234, to: &bytes)
            #expect(bytes.first == 9)
            let stored = try StoredEvent(serializedBytes: Array(bytes.dropFirst()))
            var expected = i == 3 ? replaced : request.events[i]
            if i == 4 { expected.ip = "p:new" }
            #expect(stored.ingestedAtMs == 1234 && stored.event == expected)
            // As sent or packed again, the bytes are those of encoding the StoredEvent.
            var direct = StoredEvent()
            direct.ingestedAtMs = 1234
            direct.event = expected
            #expect(Array(bytes.dropFirst()) == direct.serializedBytes())
        }
    }

    @Test func malformedBatchIsATypedError() {
        #expect(throws: WireError.self) { try [0x0A, 0x05, 0x01].withUnsafeBytes { try EventBatch(appendRequest: $0) } }
    }
}

import Foundation
import TestSupport
import Testing
import Wire

/// Our bytes checked against Google's own implementation: `protoc --decode` reads what we
/// encode, and we read what `protoc --encode` writes.
@Suite("Compatibility with protoc", .enabled(if: FileManager.default.isExecutableFile(atPath: protoc)))
struct ProtocCompatibilityTests {
    @Test("protoc decodes our bytes and re-encodes them identically", arguments: allMessageSamples.map(\.protoName))
    func crossCheck(protoName: String) async throws {
        let samples = try #require(allMessageSamples.first { $0.protoName == protoName }).samples
        for sample in samples {
            try await check(sample, protoName: protoName)
        }
    }

    private func check<M: WireMessage>(_ message: M, protoName: String) async throws {
        let ours = message.serializedBytes()
        let decoded = try await runProcess(protoc, protocArguments("--decode=\(protoName)"), input: ours)
        #expect(decoded.status == 0, "protoc --decode failed: \(decoded.stderr)")
        let text = String(decoding: decoded.stdout, as: UTF8.self)
        // protoc prints fields it does not know by number: there must be none.
        #expect(!text.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).first?.isNumber == true })
        let encoded = try await runProcess(protoc, protocArguments("--encode=\(protoName)"), input: decoded.stdout)
        #expect(encoded.status == 0, "protoc --encode failed: \(encoded.stderr)")
        #expect(encoded.stdout == ours)
        #expect(try M(serializedBytes: encoded.stdout) == message)
    }

    @Test func weDecodeWhatProtocEncodes() async throws {
        let text = """
            event_id: "order-8812"
            kind: EVENT_KIND_PURCHASE
            user_id: 42
            timestamp_ms: 1511654400000
            order { order_id: "8812" total: 59.9 currency: "EUR" lines { item_id: 7 quantity: 2 unit_price: 29.95 } }
            """
        let encoded = try await runProcess(protoc, protocArguments("--encode=persona.v1.Event"), input: Array(text.utf8))
        #expect(encoded.status == 0, "\(encoded.stderr)")
        let event = try Event(serializedBytes: encoded.stdout)
        #expect(event.eventId == "order-8812")
        #expect(event.kind == .purchase)
        #expect(event.userId == 42)
        #expect(event.order?.lines.first?.quantity == 2)
        #expect(event.order?.total == 59.9)
    }

    private func protocArguments(_ mode: String) -> [String] {
        let schema = repositoryRoot.appendingPathComponent("Shared/Schema").path
        let files = (try? FileManager.default.contentsOfDirectory(atPath: schema + "/persona/v1")) ?? []
        return [mode, "--proto_path=\(schema)"] + files.filter { $0.hasSuffix(".proto") }.sorted().map { "persona/v1/\($0)" }
    }
}

let protoc = "/usr/bin/protoc"

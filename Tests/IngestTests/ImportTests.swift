import Foundation
import Ingest
import RPC
import TestSupport
import Testing
import Wire

/// `persona import` against a running ingest, for each dataset format, with the counts
/// recomputed independently from the fixture files.
@Suite("persona import", .serialized, .timeLimit(.minutes(2)))
struct ImportTests {
    static func fixture(_ name: String) -> String { repositoryRoot.appendingPathComponent("Tests/Fixtures/\(name)").path }

    static func lines(_ name: String) throws -> [String] {
        try String(contentsOfFile: fixture(name), encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init)
    }

    /// Runs the CLI and returns the summary's numbers.
    static func importFile(_ name: String, format: String, port: Int, extra: [String] = []) async throws -> (
        accepted: Int, duplicates: Int, rejected: Int, output: String
    ) {
        let cli = ChildProcess.productsDirectory.appendingPathComponent("persona").path
        let result = try await runProcess(
            cli, ["import", fixture(name), "--format", format, "--ingest", "127.0.0.1:\(port)", "--batch-size", "64"] + extra)
        let out = String(decoding: result.stdout, as: UTF8.self)
        #expect(result.status == 0, "\(out)\(result.stderr)")
        #expect(result.stderr.contains("events/s"), "a progress line is printed")
        func number(_ label: String) -> Int {
            let line = out.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) } ?? ""
            return Int(line.split(separator: " ").last ?? "") ?? -1
        }
        return (number("accepted"), number("duplicates"), number("rejected"), out)
    }

    static func storedEvents(_ client: RPCClient) async throws -> UInt64 {
        try await client.call(IngestAPI.logInfo, LogInfoRequest()).partitions.reduce(0) { $0 + $1.endOffset }
    }

    @Test func everyFormatImportsWithTheRightCountsAndOnlyOnce() async throws {
        try await withIngest { client, _ in
            let health = try await client.call(HealthAPI.check, HealthRequest())
            #expect(health.service == "ingest")
            let port = client.config.port
            var total = 0

            let taobao = try Self.lines("taobao-300.csv")
            var r = try await Self.importFile("taobao-300.csv", format: "taobao", port: port)
            #expect(r.accepted == taobao.count && r.rejected == 0)
            total += r.accepted

            let cdnow = try Self.lines("cdnow-200.txt").filter { !$0.contains("customer_id") }
            r = try await Self.importFile("cdnow-200.txt", format: "cdnow", port: port)
            #expect(r.accepted == cdnow.count)
            total += r.accepted

            let fraud = try Self.lines("fraud-100.csv").dropFirst()
            r = try await Self.importFile("fraud-100.csv", format: "fraud", port: port, extra: ["--without-labels"])
            #expect(r.accepted == 3 * fraud.count)
            total += r.accepted
            // Labels come on their own later; the rest is already there.
            r = try await Self.importFile("fraud-100.csv", format: "fraud", port: port)
            #expect(r.accepted == fraud.count && r.duplicates == 3 * fraud.count)
            total += r.accepted

            let ratings = try Self.lines("ratings-5.dat")
            r = try await Self.importFile("ratings-5.dat", format: "ratings", port: port)
            #expect(r.accepted == ratings.count - 1)
            #expect(r.output.contains("rows skipped, unparsable row: 1"))
            total += r.accepted

            // Online Retail: one purchase per invoice, one refund per cancelled line, one
            // catalog entry per stock code; rows without a customer are skipped.
            let retail = try Self.lines("online-retail-400.csv").dropFirst().map {
                $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            }
            let withCustomer = retail.filter { !$0[$0.count - 2].isEmpty }
            let invoices = Set(withCustomer.filter { !$0[0].hasPrefix("C") }.map { $0[0] }).count
            let refunds = withCustomer.filter { $0[0].hasPrefix("C") }.count
            let items = Set(withCustomer.map { $0[1] }).count
            r = try await Self.importFile("online-retail-400.csv", format: "online-retail", port: port)
            #expect(r.accepted == invoices + refunds + items)
            #expect(
                r.output.contains("row without customer id: \(retail.count - withCustomer.count)") || retail.count == withCustomer.count)
            total += r.accepted

            #expect(try await Self.storedEvents(client) == UInt64(total))

            // Importing the same file again appends nothing.
            r = try await Self.importFile("taobao-300.csv", format: "taobao", port: port)
            #expect(r.accepted == 0 && r.duplicates == taobao.count)
            #expect(try await Self.storedEvents(client) == UInt64(total))
        }
    }
}

import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona audit`: the admin calls every service recorded (erasure, training, publishing,
/// rollback, rule, list and label changes), merged oldest first: when, where, who, what.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Show the audit log of admin calls across the services (needs an admin token).",
        discussion: "Examples: persona audit; persona audit --since 7d --token admin-1; persona audit --service risk-control")

    @OptionGroup var endpoints: Endpoints

    @Option(help: "Only this service (ingest, feature, model, risk-control, recommend).") var service: String?
    @Option(help: "Calls at or after (a time, or an age such as 24h or 7d).") var since: String?
    @Option(help: "Only the calls made with this token id.") var token: String?
    @Option(help: "At most this many entries, the newest.") var limit = 100

    func run() async throws {
        let names = try endpoints.all().map(\.service).filter { service == nil || $0 == service }
        guard !names.isEmpty else { throw ValidationError("no service '\(service ?? "")'") }
        var request = AuditRequest()
        request.sinceMs = try since.map(RiskText.since) ?? 0
        request.tokenId = token ?? ""
        request.limit = UInt32(max(1, limit))
        var entries: [AuditEntry] = []
        var unreachable: [String] = []
        for name in names {
            do {
                entries += try await endpoints.call(name) { try await $0.call(AuditAPI.read, request, timeout: .seconds(5)).entries }
            } catch {
                // One service down still shows the others' entries.
                unreachable.append("\(name): \(error)")
            }
        }
        entries.sort { ($0.timeMs, $0.service) < ($1.timeMs, $1.service) }
        entries = Array(entries.suffix(max(1, limit)))
        if entries.isEmpty {
            print("no admin calls recorded")
        } else {
            print(
                Table.render(
                    header: ["TIME", "SERVICE", "TOKEN", "ROLE", "FOR", "METHOD", "STATUS", "PEER", "WHAT"],
                    rows: entries.map { e in
                        [
                            RiskText.time(e.timeMs), e.service, e.tokenId.isEmpty ? "-" : e.tokenId, e.role.isEmpty ? "-" : e.role,
                            e.actingFor.isEmpty ? "-" : e.actingFor, e.method, e.status, e.peer, e.what,
                        ]
                    }))
        }
        for line in unreachable { FileHandle.standardError.write(Data("not read: \(line)\n".utf8)) }
        if !unreachable.isEmpty { throw ExitCode(1) }
    }
}

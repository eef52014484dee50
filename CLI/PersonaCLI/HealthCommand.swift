import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona health`: calls Health on all five services and prints one row each.
/// Exits 1 when any service is not serving.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Show the health of every service.")

    @OptionGroup var endpoints: Endpoints

    @Option(help: "Seconds to wait for each service.")
    var timeout: Double = 2

    func run() async throws {
        let all = try endpoints.all()
        let rows = await withTaskGroup(of: (Int, [String], Bool).self) { group in
            for (index, endpoint) in all.enumerated() {
                group.addTask { await probe(endpoint, index: index) }
            }
            return await group.reduce(into: []) { $0.append($1) }.sorted { $0.0 < $1.0 }
        }
        print(
            Table.render(
                header: ["SERVICE", "ADDRESS", "STATUS", "VERSION", "UPTIME", "IN-FLIGHT", "LATENCY", "CHECKS"],
                rows: rows.map(\.1)))
        if rows.contains(where: { !$0.2 }) { throw ExitCode(1) }
    }

    private func probe(_ endpoint: Endpoints.Endpoint, index: Int) async -> (Int, [String], Bool) {
        var config = RPCClient.Config.defaults(host: endpoint.host, port: endpoint.port)
        config.connectTimeout = .milliseconds(Int(timeout * 1000))
        let client = RPCClient(config: config)
        let row = await probe(client, endpoint, index: index)
        await client.shutdown()
        return row
    }

    private func probe(_ client: RPCClient, _ endpoint: Endpoints.Endpoint, index: Int) async -> (Int, [String], Bool) {
        let start = ContinuousClock.now
        do {
            let health = try await client.call(HealthAPI.check, HealthRequest(), timeout: .milliseconds(Int(timeout * 1000)))
            let latency = start.duration(to: .now)
            let checks = health.checks.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return (
                index,
                [
                    health.service, endpoint.address, health.status.name?.uppercased() ?? "?", health.version,
                    Table.duration(seconds: health.uptimeSeconds), "\(health.callsInFlight)", Table.latency(latency), checks,
                ], health.status == .serving
            )
        } catch {
            let reason = (error as? RPCError)?.description ?? "\(error)"
            return (index, [endpoint.service, endpoint.address, "DOWN", "-", "-", "-", "-", reason], false)
        }
    }
}

import ArgumentParser
import Foundation
import RPC
import ServiceKit
import Wire

/// Where the five services listen. Each address comes from its flag, else from the
/// environment (`PERSONA_INGEST_ADDR`, ...), else 127.0.0.1 and the default port.
struct Endpoints: ParsableArguments {
    @Option(help: Peer.ingest.help("where events are appended"))
    var ingest: String?
    @Option(help: Peer.feature.help("profiles and features"))
    var feature: String?
    @Option(help: Peer.model.help("training and models"))
    var model: String?
    @Option(help: Peer.riskControl.help("decisions, rules and lists"))
    var riskControl: String?
    @Option(help: Peer.recommend.help("recommendations"))
    var recommend: String?
    @Option(
        help:
            """
            File holding the token to present: the secret alone, or a tokens file (its admin token is used). \
            Default: PERSONA_TOKEN (the secret), else PERSONA_TOKENS_FILE, else ./data/tokens when there is one \
            (make run writes it).
            """
    )
    var tokenFile: String?

    struct Endpoint {
        var service: String
        var host: String
        var port: Int
        var address: String { "\(host):\(port)" }
    }

    /// Every service's endpoint; one per feature replica when `--feature` lists several.
    func all() throws -> [Endpoint] {
        let env = ProcessInfo.processInfo.environment
        let flags = [(Peer.ingest, ingest), (.feature, feature), (.model, model), (.riskControl, riskControl), (.recommend, recommend)]
        return try flags.flatMap { peer, flag in
            let addresses = try peer.addresses(flag: flag, environment: env) ?? [("127.0.0.1", peer.defaultPort)]
            return addresses.map { Endpoint(service: peer.rawValue, host: $0.host, port: $0.port) }
        }
    }

    /// The feature replicas, each user's calls routed to the one serving their partition;
    /// the calls carry `credential()`.
    func featureReplicas() throws -> FeatureReplicas {
        ProcessCredential.set(try credential())
        return FeatureReplicas(try all().filter { $0.service == Peer.feature.rawValue }.map { ($0.host, $0.port) })
    }

    /// The token this command presents, if any (see `--token-file`).
    func credential() throws -> [UInt8]? {
        let env = ProcessInfo.processInfo.environment
        if tokenFile == nil, let secret = env["PERSONA_TOKEN"], !secret.isEmpty { return Array(secret.utf8) }
        let fallback = FileManager.default.fileExists(atPath: "data/tokens") ? "data/tokens" : nil
        guard let path = tokenFile ?? env["PERSONA_TOKENS_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) ?? fallback else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the token file \(path)")
        }
        if let tokens = try? AccessToken.parse(text, file: path), let token = tokens.first(where: { $0.role == .admin }) ?? tokens.first {
            return token.secret
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return secret.isEmpty ? nil : Array(secret.utf8)
    }

    /// One service's endpoint, by name; the calls made to it carry `credential()`.
    func endpoint(_ service: String) throws -> Endpoint {
        ProcessCredential.set(try credential())
        guard let e = try all().first(where: { $0.service == service }) else { throw ValidationError("no service \(service)") }
        return e
    }
}

extension Endpoints {
    /// One call to `service` through a client made for it, its RPC errors as a message that
    /// names the address.
    func call<T: Sendable>(_ service: String, _ body: (RPCClient) async throws -> T) async throws -> T {
        let endpoint = try self.endpoint(service)
        let client = RPCClient(host: endpoint.host, port: endpoint.port)
        do {
            let value = try await body(client)
            await client.shutdown()
            return value
        } catch let error as RPCError {
            await client.shutdown()
            throw ValidationError("\(service) at \(endpoint.address): \(error)")
        }
    }
}

extension Endpoints {
    /// Polls until each service's Health check `check` (its offsets in the log, one a
    /// partition) reaches the log's end offsets as they are now.
    func waitUntilRead(by services: [(service: String, check: String)], timeout: Double) async throws {
        let ends = try await call("ingest") { try await $0.call(IngestAPI.logInfo, LogInfoRequest(), timeout: .seconds(5)) }
            .partitions.sorted { $0.partition < $1.partition }.map(\.endOffset)
        let started = ContinuousClock.now
        for (service, check) in services {
            for endpoint in try all().filter({ $0.service == service }) {
                try await waitUntilRead(endpoint, check: check, ends: ends, started: started, timeout: timeout)
            }
        }
    }

    private func waitUntilRead(_ endpoint: Endpoint, check: String, ends: [UInt64], started: ContinuousClock.Instant, timeout: Double)
        async throws
    {
        let client = RPCClient(host: endpoint.host, port: endpoint.port)
        defer { Task { await client.shutdown() } }
        let service = "\(endpoint.service) at \(endpoint.address)"
        do {
            while true {
                let health = try await client.call(HealthAPI.check, HealthRequest(), timeout: .seconds(5))
                let offsets = health.checks.first { $0.key == check }?.value.split(separator: ",").compactMap { UInt64($0) } ?? []
                if offsets.count == ends.count, zip(offsets, ends).allSatisfy({ $0 >= $1 }) { break }
                guard started.duration(to: .now) < .seconds(timeout) else {
                    throw ValidationError(
                        """
                        \(service) has read up to \(offsets.map(String.init).joined(separator: ",")) of \
                        \(ends.map(String.init).joined(separator: ",")) after \(Int(timeout)) s
                        """
                    )
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        } catch let error as RPCError {
            throw ValidationError("\(service): \(error)")
        }
    }
}

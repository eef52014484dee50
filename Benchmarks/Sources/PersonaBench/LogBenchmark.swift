// The event log's engines under ingest: Append events/s and acknowledgement latency through
// the ingest service (validation, pseudonymisation, duplicate check, then the log) on the
// embedded segmented log, on NATS JetStream with one server (R1) and on a three-server
// JetStream cluster with three replicas (R3), loopback, same run. The servers are real
// `nats-server` processes (Debian's), each with its own store folder.
import EventLog
import Foundation
import Ingest
import TestSupport

func logBenchmark(output: String, seconds: Double) async throws {
    let events = try taobaoEvents()
    struct Row {
        var engine: String
        var result: StoreResult
    }
    var rows: [Row] = []
    // Batches of 1,000 from 4 producers, and single events from 16 (what a shop's web
    // servers sending each event as it happens look like).
    let cases = [(batch: 1000, producers: 4), (batch: 1, producers: 16)]
    for engine in ["file", "JetStream R1", "JetStream R3"] {
        for c in cases {
            // Fresh servers for every case, as the file log gets a fresh folder: the cases'
            // event ids repeat, and an ingest on an old stream would take them for repeats.
            let servers = engine == "file" ? nil : try NATSServers(count: engine.hasSuffix("R3") ? 3 : 1)
            defer { servers?.stop() }
            var settings = IngestSettings()
            if let servers {
                settings.log = try LogChoice(parsing: servers.url)
                settings.logReplicas = engine.hasSuffix("R3") ? 3 : 1
            }
            let result = try await appendIngest(events, batch: c.batch, producers: c.producers, seconds: seconds, settings: settings)
            print("\(engine), batch \(c.batch): \(Int(result.eventsPerSecond)) events/s, p99 \(result.p99Millis) ms")
            rows.append(Row(engine: engine, result: result))
        }
    }
    let fileAt = { (batch: Int) in rows.first { $0.engine == "file" && $0.result.batch == batch }!.result }
    var md = """
        # The event log's engines under ingest

        \(ProcessInfo.processInfo.activeProcessorCount) cores, \(seconds) s per case, loopback, \(ingestPartitions) partitions. Producers \
        send ready-encoded Append calls of Taobao events over RPC to the ingest service (in this process), which validates, \
        pseudonymises, checks duplicates and appends to its log; an Append is answered once the log holds every event \
        (file: fsync'd; JetStream: acknowledged by a quorum of the replicas). The NATS servers are Debian's nats-server \
        \(natsVersion()), separate processes with their own store folders on this machine's disk, sharing its cores.
        Anchor: NATS's published bench of batched JetStream publishing, about 630,000 messages/s on one server (a client \
        publishing alone, no service in front). Goal (issue 31): at least 500,000 events/s through ingest on R3 in \
        batches of 1,000, p99 acknowledgement at most 10 ms.

        | engine | batch | producers | events/s | p50 ack ms | p99 ack ms | events/s vs file |
        | --- | ---: | ---: | ---: | ---: | ---: | ---: |

        """
    for r in rows {
        md += String(
            format: "| %@ | %d | %d | %.0f | %.2f | %.2f | %.2fx |\n", r.engine as NSString, r.result.batch, r.result.producers,
            r.result.eventsPerSecond, percentile(r.result.latenciesMillis, 0.5), r.result.p99Millis,
            r.result.eventsPerSecond / fileAt(r.result.batch).eventsPerSecond)
    }
    let picture = URL(fileURLWithPath: output).deletingPathExtension().lastPathComponent
    md += "\n![events/s and acknowledgement latency by engine](\(picture).png)\n"
    print(md)
    try md.write(toFile: output, atomically: true, encoding: .utf8)
    try drawLatencies(
        rows.map {
            LatencyRow(
                group: "batch \($0.result.batch), \($0.result.producers) producers", system: $0.engine,
                throughput: $0.result.eventsPerSecond, latencies: $0.result.latenciesMillis)
        },
        output: output, title: "Append through ingest: the embedded log against NATS JetStream", peer: "file",
        throughput: "events/s", latency: "acknowledgement latency (ms)", distributions: ["batch 1000, 4 producers"])
}

/// `nats-server --version`'s answer.
private func natsVersion() -> String {
    guard let path = NATSServers.executable else { return "(not installed)" }
    let process = Process()
    let pipe = Pipe()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = ["--version"]
    process.standardOutput = pipe
    guard (try? process.run()) != nil else { return "" }
    process.waitUntilExit()
    return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

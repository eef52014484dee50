public import ArgumentParser
public import EventLog
import Foundation
public import PersonalData
import ServiceKit
import Store

/// Settings of the ingest service beyond the common flags. Each flag falls back to the
/// environment variable named in its help, then to its default.
public struct IngestOptions: ParsableArguments, Sendable {
    @Option(help: "Partitions of the log, by user id hash (env PERSONA_INGEST_PARTITIONS, default 4). Fixed once data exists.")
    public var partitions: Int?

    @Option(help: "Earliest accepted event time, ISO 8601 date (env PERSONA_TIMESTAMP_FLOOR, default 1990-01-01).")
    public var timestampFloor: String?

    @Option(help: "Event ids remembered for duplicate detection (env PERSONA_DEDUP_CAPACITY, default 20000000).")
    public var dedupCapacity: Int?

    @Option(
        help: "Forget event ids ingested longer ago than this many hours (env PERSONA_DEDUP_HOURS, default: only the count bounds them).")
    public var dedupHours: Int?

    @Option(help: "Most events in one Append call (env PERSONA_MAX_BATCH_EVENTS, default 10000).")
    public var maxBatchEvents: Int?

    @Option(help: "File holding the pseudonymisation key (env PERSONA_PSEUDONYM_KEY_FILE; PERSONA_PSEUDONYM_KEY gives the key itself).")
    public var pseudonymKeyFile: String?

    @Option(
        help:
            """
            IPv4-to-country CSV (lower,upper,country) used to set each event's ip_country before the IP is \
            pseudonymised (env PERSONA_IP_COUNTRY_FILE).
            """
    )
    public var ipCountryFile: String?

    @OptionGroup public var eventLog: LogOptions

    @Option(help: "Segment size in MiB (env PERSONA_SEGMENT_MB, default 128).")
    public var segmentMb: Int?

    @Option(help: "Keep at most this many MiB of log per partition (env PERSONA_RETENTION_MB, default: keep all).")
    public var retentionMb: Int?

    @Option(help: "Delete segments older than this many hours (env PERSONA_RETENTION_HOURS, default: keep all).")
    public var retentionHours: Int?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> IngestSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        func int(_ flag: Int?, _ name: String) throws -> Int? {
            if let flag { return flag }
            guard let text = env[name] else { return nil }
            guard let v = Int(text) else { throw ValidationError("\(name)=\(text) is not a number") }
            return v
        }
        var s = IngestSettings()
        s.partitions = try int(partitions, "PERSONA_INGEST_PARTITIONS") ?? s.partitions
        guard (1...256).contains(s.partitions) else { throw ValidationError("partitions must be 1...256") }
        if let floor = timestampFloor ?? env["PERSONA_TIMESTAMP_FLOOR"] {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withFullDate]
            guard let date = f.date(from: floor) ?? ISO8601DateFormatter().date(from: floor) else {
                throw ValidationError("timestamp floor '\(floor)' is not an ISO 8601 date")
            }
            s.rules.timestampFloorMs = Int64(date.timeIntervalSince1970 * 1000)
        }
        s.dedupCapacity = try int(dedupCapacity, "PERSONA_DEDUP_CAPACITY") ?? s.dedupCapacity
        s.dedupAge = try int(dedupHours, "PERSONA_DEDUP_HOURS").map { Duration.seconds($0 * 3600) }
        s.maxBatchEvents = try int(maxBatchEvents, "PERSONA_MAX_BATCH_EVENTS") ?? s.maxBatchEvents
        s.pseudonymKeyFile = pseudonymKeyFile ?? env["PERSONA_PSEUDONYM_KEY_FILE"]
        if let path = ipCountryFile ?? env["PERSONA_IP_COUNTRY_FILE"], !path.isEmpty {
            s.ipCountries = try IPCountryTable(contentsOf: path)
        }
        (s.log, s.logReplicas) = try eventLog.resolve(environment: env)
        if let mb = try int(segmentMb, "PERSONA_SEGMENT_MB") { s.segmentBytes = mb << 20 }
        s.retentionBytes = try int(retentionMb, "PERSONA_RETENTION_MB").map { $0 << 20 }
        s.retentionAge = try int(retentionHours, "PERSONA_RETENTION_HOURS").map { Duration.seconds($0 * 3600) }
        return s
    }
}

/// Resolved ingest settings, with defaults.
public struct IngestSettings: Sendable {
    public var partitions = 4
    public var rules = EventValidator.Rules.defaults
    public var dedupCapacity = 20_000_000
    public var dedupAge: Duration?
    public var maxBatchEvents = 10_000
    public var pseudonymKeyFile: String?
    public var ipCountries: IPCountryTable?
    public var log = LogChoice.file
    public var logReplicas = 3
    public var segmentBytes = 128 << 20
    public var retentionBytes: Int?
    public var retentionAge: Duration?

    public init() {}
}

public import ArgumentParser
import Foundation
public import Math
import Recommenders
public import ServiceKit

/// Settings of the recommend service beyond the common flags.
public struct RecommendOptions: ParsableArguments, Sendable {
    @Option(help: Peer.model.help("whose published models are served"))
    public var model: String?

    @Option(help: Peer.feature.help("where recent items and the catalogue are read"))
    public var feature: String?

    @Option(help: Peer.ingest.help("where impressions go"))
    public var ingest: String?

    @Option(
        help:
            """
            Leave out an item shown to a user this many times without a view, cart or purchase; 0 turns it off (env \
            PERSONA_IMPRESSION_FATIGUE, default 3).
            """
    )
    public var impressionFatigue: Int?

    @Option(
        help:
            """
            Blend weights and boosts, name=value,... over factors, neighbours, content, sequence, popularity, \
            trending, category_affinity, price_band (env PERSONA_RECOMMEND_WEIGHTS; default \
            factors=1,neighbours=0.3,content=0.1,sequence=0.3,popularity=0.05,trending=0.06,category_affinity=0.1,price_band=0.1).
            """
    )
    public var weights: String?

    @Option(
        help:
            """
            How long after a purchase an item is not recommended again: default=never|Nd|Nh|Nm and CATEGORY=... \
            overrides (env PERSONA_REPURCHASE_WINDOW, default 'default=never').
            """
    )
    public var repurchaseWindow: String?

    @Option(help: "Business boosts and burials by catalogue tag: tag=factor,... (> 1 boosts, < 1 buries; env PERSONA_TAG_FACTORS).")
    public var tagFactors: String?

    @Option(
        help:
            """
            Longest wait for one feature read in milliseconds, never past half the caller's deadline (env \
            PERSONA_FEATURE_TIMEOUT_MS, default 100).
            """
    )
    public var featureTimeoutMs: Int?

    @Option(
        help:
            """
            Factor models with more items than this are served from an approximate HNSW index, built on load (env \
            PERSONA_INDEX_ABOVE, default 200000).
            """
    )
    public var indexAbove: Int?

    public init() {}

    public func resolve(environment: [String: String]? = nil) throws -> RecommendSettings {
        let env = environment ?? ProcessInfo.processInfo.environment
        var s = RecommendSettings()
        if let (host, port) = try Peer.model.address(flag: model, environment: env) {
            s.modelHost = host
            s.modelPort = port
        }
        try s.resolveFeature(flag: feature, environment: env)
        if let (host, port) = try Peer.ingest.address(flag: ingest, environment: env) {
            s.ingestHost = host
            s.ingestPort = port
        }
        if let text = impressionFatigue.map(String.init) ?? env["PERSONA_IMPRESSION_FATIGUE"] {
            guard let n = Int(text), (0...1000).contains(n) else { throw ValidationError("impression fatigue '\(text)' is not 0...1000") }
            s.impressionFatigue = n
        }
        if let text = weights ?? env["PERSONA_RECOMMEND_WEIGHTS"] {
            do { s.weights = try Recommender.Weights(parsing: text) } catch { throw ValidationError("\(error)") }
        }
        if let text = repurchaseWindow ?? env["PERSONA_REPURCHASE_WINDOW"] {
            do { s.repurchase = try Recommender.RepurchaseWindows(parsing: text) } catch { throw ValidationError("\(error)") }
        }
        if let text = tagFactors ?? env["PERSONA_TAG_FACTORS"] {
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty, let f = Float(parts[1]), f.isFinite, f >= 0 else {
                    throw ValidationError("tag factor '\(pair)' is not tag=factor with a factor >= 0")
                }
                s.tagFactors[parts[0]] = f
            }
        }
        if let text = featureTimeoutMs.map(String.init) ?? env["PERSONA_FEATURE_TIMEOUT_MS"] {
            guard let ms = Int(text), (1...60_000).contains(ms) else {
                throw ValidationError("feature timeout '\(text)' is not 1...60000 ms")
            }
            s.featureTimeout = .milliseconds(ms)
        }
        if let text = indexAbove.map(String.init) ?? env["PERSONA_INDEX_ABOVE"] {
            guard let n = Int(text), n >= 0 else { throw ValidationError("index threshold '\(text)' is not a count >= 0") }
            s.indexAbove = n
        }
        return s
    }
}

public struct RecommendSettings: Sendable, FeatureCaller {
    public var modelHost = "127.0.0.1"
    public var modelPort = Peer.model.defaultPort
    public var featureHost = "127.0.0.1"
    public var featurePort = Peer.feature.defaultPort
    public var moreFeatureReplicas: [(host: String, port: Int)] = []
    public var ingestHost = "127.0.0.1"
    public var ingestPort = Peer.ingest.defaultPort
    /// Impressions without a touch after which an item is left out for that user (0: off).
    public var impressionFatigue = 3
    public var weights = Recommender.Weights()
    public var repurchase = Recommender.RepurchaseWindows()
    public var tagFactors: [String: Float] = [:]
    public var featureTimeout: Duration = .milliseconds(100)
    /// How old a trending list or catalogue entry kept from feature may grow before it is read
    /// again (in the background; calls read them from memory).
    public var liveTTL: Duration = .seconds(2)
    public var indexAbove = 200_000
    /// The index: M 16, a construction beam of 100 (half hnswlib's default: a million items
    /// index in about half the time, for a little recall), searched with a beam of 100.
    public var index: HNSW.Parameters = {
        var p = HNSW.Parameters()
        p.efConstruction = 100
        return p
    }()
    public init() {}
}

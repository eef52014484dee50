/// The settings of a service that calls the feature service (model, recommend, risk-control):
/// every replica's address, as `--feature host:port[,host:port...]` lists them.
public protocol FeatureCaller {
    var featureHost: String { get set }
    var featurePort: Int { get set }
    /// Feature replicas beyond the first.
    var moreFeatureReplicas: [(host: String, port: Int)] { get set }
}

extension FeatureCaller {
    /// Every feature replica's address.
    public var featureReplicas: [(host: String, port: Int)] { [(featureHost, featurePort)] + moreFeatureReplicas }

    /// Takes the replicas the flag lists, else `PERSONA_FEATURE_ADDR`; keeps the defaults when neither is set.
    public mutating func resolveFeature(flag: String?, environment: [String: String]) throws {
        guard let list = try Peer.feature.addresses(flag: flag, environment: environment) else { return }
        (featureHost, featurePort) = list[0]
        moreFeatureReplicas = Array(list.dropFirst())
    }
}

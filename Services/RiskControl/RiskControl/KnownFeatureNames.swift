import RPC
import ServiceKit
import Synchronization
import Wire

/// The feature service's catalogue of names (what rules may read), fetched once it answers.
final class KnownFeatureNames: Sendable {
    private let names = Mutex<[String]?>(nil)

    /// The feature service's names, asked once and kept; nil while it has not answered within
    /// the call's budget (at most 10 s).
    func names(_ feature: FeatureReplicas) async -> [String]? {
        if let known = names.withLock({ $0 }) { return known }
        guard let answer = try? await feature.call(FeatureAPI.getFeatures, GetFeaturesRequest(), timeout: RPCContext.budget(.seconds(10)))
        else { return nil }
        names.withLock { $0 = answer.names }
        return answer.names
    }
}

import Classifiers
import Math
import Store

/// An uplift model as the model service stores it: the campaign it learned from, the
/// feature names its rows are in (as the feature service serves them), and the model.
public struct UpliftArtifact: Sendable {
    public var campaign: String
    public var features: [String]
    public var schemaVersion: UInt32
    public var model: UpliftModel

    public init(campaign: String, features: [String], schemaVersion: UInt32, model: UpliftModel) {
        self.campaign = campaign
        self.features = features
        self.schemaVersion = schemaVersion
        self.model = model
    }

    public static let formatVersion: UInt32 = 1

    public struct Corrupt: Error, CustomStringConvertible {
        public var description: String
    }

    /// A checksummed container ("PUPL") around the body ("PUPB"): campaign, names, method,
    /// then the treated (or only) trees and the control trees of a two-model.
    public func encode() -> [UInt8] {
        var w = SnapshotWriter(magic: "PUPB", version: Self.formatVersion, expectedBytes: 1 << 16)
        w.string(campaign)
        w.array(features) { $0.string($1) }
        w.u32(schemaVersion)
        w.string(model.method.rawValue)
        model.treated.write(to: &w)
        w.bool(model.control != nil)
        model.control?.write(to: &w)
        return ArtifactContainer.seal(w.finish(), magic: "PUPL", version: Self.formatVersion)
    }

    public static func decode(_ bytes: [UInt8]) throws -> UpliftArtifact {
        do {
            var r = try SnapshotReader(
                try ArtifactContainer.open(bytes, magic: "PUPL", version: formatVersion, maxBytes: 1 << 30), magic: "PUPB")
            let campaign = try r.string()
            let features = try r.array { try $0.string() }
            let schema = try r.u32()
            guard let method = UpliftModel.Method(rawValue: try r.string()) else {
                throw Corrupt(description: "unknown uplift method")
            }
            let treated = try BoostedTrees.read(from: &r)
            let control = try r.bool() ? try BoostedTrees.read(from: &r) : nil
            guard treated.features == features.count, control.map({ $0.features == features.count }) ?? true,
                (method == .twoModel) == (control != nil)
            else {
                throw Corrupt(description: "uplift trees disagree with \(features.count) features or the method")
            }
            return UpliftArtifact(
                campaign: campaign, features: features, schemaVersion: schema,
                model: UpliftModel(method: method, treated: treated, control: control))
        } catch let error as StoreError {
            throw Corrupt(description: "\(error)")
        }
    }
}

import DataStructures
import Math

/// Which side of a campaign a user lands on: a hash of campaign and user, so the same user
/// is always on the same side of the same campaign (on every replica, in every run), and the
/// sides of two campaigns are independent of each other.
public enum ControlGroup {
    /// The user's place in [0, 1) for `campaign`: FNV-1a of "campaign|user", mixed by
    /// SplitMix64's finaliser so that neighbouring ids spread evenly.
    public static func position(user: Int64, campaign: String) -> Double {
        var mixer = SplitMix(seed: StableHash.fnv1a("\(campaign)|\(user)"))
        return Double(mixer.next() >> 11) / Double(1 << 53)
    }

    /// Whether `user` is in the control group (a `share` of the audience that gets nothing).
    public static func isControl(user: Int64, campaign: String, share: Double) -> Bool {
        position(user: user, campaign: campaign) < share
    }
}

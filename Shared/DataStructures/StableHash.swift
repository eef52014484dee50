/// Hashes that mean the same from run to run and machine to machine (Swift's `hashValue`
/// is seeded per process): for ids derived from data, partitions, and anything a snapshot
/// or the log keeps.
public enum StableHash {
    /// FNV-1a over the text's UTF-8 bytes.
    public static func fnv1a(_ text: String) -> UInt64 {
        var text = text
        return text.withUTF8 { fnv1a(UnsafeRawBufferPointer($0)) }
    }

    public static func fnv1a(_ text: Substring) -> UInt64 {
        var text = text
        return text.withUTF8 { fnv1a(UnsafeRawBufferPointer($0)) }
    }

    /// FNV-1a over bytes (a String's stored UTF-8 is hashed in place, with no generic
    /// iteration: the feature service hashes identifiers on every event).
    public static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            hash ^= UInt64(b)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// The key of a list of names (RequestFeatures' `names_key`): FNV-1a of the names joined by
    /// newlines, never 0.
    public static func key(of names: [String]) -> UInt64 { max(1, fnv1a(names.joined(separator: "\n"))) }

    /// The log partition of `user` among `count`: ingest appends the user's events to it, and
    /// the feature replica serving it holds the user's profile.
    public static func partition(of user: Int64, among count: Int) -> Int {
        Int(mix64(UInt64(bitPattern: user)) % UInt64(count))
    }

    /// splitmix64's step and finaliser: a well-spread mix of 64 bits.
    @inline(__always)
    public static func mix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

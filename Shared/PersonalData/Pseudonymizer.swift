import Foundation
import Store

/// Replaces personal identifiers (IP, device id, email, payment instrument) by a keyed
/// hash before anything is written: SipHash-2-4 with 128-bit output under a secret key.
/// Equal inputs give equal pseudonyms, so risk features still count shared devices, but
/// the raw value never reaches disk and cannot be recovered without the key. Ingest
/// pseudonymises every event; risk-control, holding the same key, pseudonymises a request's
/// identifiers and its list entries so that they compare with what the log holds.
public struct Pseudonymizer: Sendable {
    let k0: UInt64
    let k1: UInt64

    public init(key: [UInt8]) {
        precondition(key.count >= 16, "pseudonym key must be at least 16 bytes")
        k0 = key.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) }
        k1 = key.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
    }

    /// `p:` and 32 hex digits; empty stays empty; already pseudonymised values pass through
    /// (a relayed or re-imported event is not hashed twice).
    public func pseudonym(_ value: String) -> String {
        var value = value
        guard let bytes = value.withUTF8({ pseudonym(UnsafeRawBufferPointer($0)) }) else { return value }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The pseudonym of these UTF-8 bytes, or nil when they stay as they are.
    public func pseudonym(_ value: UnsafeRawBufferPointer) -> [UInt8]? {
        if value.isEmpty || (value.count == 34 && value[0] == UInt8(ascii: "p") && value[1] == UInt8(ascii: ":")) { return nil }
        let (h0, h1) = SipHash128.hash(value, k0: k0, k1: k1)
        return [UInt8](unsafeUninitializedCapacity: 34) { out, count in
            out[0] = UInt8(ascii: "p")
            out[1] = UInt8(ascii: ":")
            var i = 2
            for word in [h0, h1] {
                withUnsafeBytes(of: word.littleEndian) { bytes in
                    for b in bytes {
                        out[i] = Self.hexDigits[Int(b >> 4)]
                        out[i + 1] = Self.hexDigits[Int(b & 15)]
                        i += 2
                    }
                }
            }
            count = 34
        }
    }

    /// The pseudonym of an erased user's id: negative (user ids are positive, so it never
    /// names a live user), equal for equal ids, so an erased user's decisions still group.
    public func pseudonym(userID: Int64) -> Int64 {
        var text = "user:\(userID)"
        let (h0, _) = text.withUTF8 { SipHash128.hash(UnsafeRawBufferPointer($0), k0: k0, k1: k1) }
        return -Int64(h0 & 0x3FFF_FFFF_FFFF_FFFF) - 1
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The key from `PERSONA_PSEUDONYM_KEY` (hex or text, at least 16 bytes), else from the
    /// file `keyFile` names, else from `<data dir>/pseudonym.key`, created with a random key
    /// on first start so that pseudonyms stay stable across restarts.
    public static func loadKey(environment: [String: String], keyFile: String?, dataDirectory: String) throws -> [UInt8] {
        if let text = environment["PERSONA_PSEUDONYM_KEY"], !text.isEmpty {
            let bytes = Array(text.utf8)
            guard bytes.count >= 16 else { throw PersonalDataError("PERSONA_PSEUDONYM_KEY must be at least 16 bytes") }
            return bytes
        }
        let path = keyFile ?? dataDirectory + "/pseudonym.key"
        if let existing = try AtomicFile.read(path) {
            guard existing.count >= 16 else { throw PersonalDataError("\(path) holds fewer than 16 bytes") }
            return existing
        }
        guard keyFile == nil else { throw PersonalDataError("pseudonym key file \(path) does not exist") }
        var rng = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        try AtomicFile.write(key, to: path)
        chmod(path, 0o600)
        return key
    }
}

/// SipHash-2-4 with 128-bit output (Aumasson and Bernstein's reference construction).
public enum SipHash128 {
    /// Hashes a string's UTF-8 bytes in place (no copy: this runs for every ingested event).
    public static func hash(_ string: String, k0: UInt64, k1: UInt64) -> (UInt64, UInt64) {
        var string = string
        return string.withUTF8 { hash(UnsafeRawBufferPointer($0), k0: k0, k1: k1) }
    }

    public static func hash(_ data: UnsafeRawBufferPointer, k0: UInt64, k1: UInt64) -> (UInt64, UInt64) {
        var v0: UInt64 = k0 ^ 0x736f_6d65_7073_6575
        var v1: UInt64 = k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee
        var v2: UInt64 = k0 ^ 0x6c79_6765_6e65_7261
        var v3: UInt64 = k1 ^ 0x7465_6462_7974_6573

        @inline(__always) func round() {
            v0 &+= v1; v1 = v1.rotl(13); v1 ^= v0; v0 = v0.rotl(32)
            v2 &+= v3; v3 = v3.rotl(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotl(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotl(17); v1 ^= v2; v2 = v2.rotl(32)
        }

        let whole = data.count / 8 * 8
        var i = 0
        while i < whole {
            var m: UInt64 = 0
            for j in 0..<8 { m |= UInt64(data[i + j]) << (8 * UInt64(j)) }
            v3 ^= m; round(); round(); v0 ^= m
            i += 8
        }
        var last = UInt64(data.count & 0xFF) << 56
        for j in 0..<(data.count - whole) { last |= UInt64(data[whole + j]) << (8 * UInt64(j)) }
        v3 ^= last; round(); round(); v0 ^= last
        v2 ^= 0xee
        round(); round(); round(); round()
        let h0 = v0 ^ v1 ^ v2 ^ v3
        v1 ^= 0xdd
        round(); round(); round(); round()
        let h1 = v0 ^ v1 ^ v2 ^ v3
        return (h0, h1)
    }
}

extension UInt64 {
    fileprivate func rotl(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}

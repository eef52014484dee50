import Foundation
import Wire

/// How enums and lists are spelled in the database (text an analyst reads): the schema's
/// own value names (`Action.decline.name` is "decline").
enum StoredNames {
    static func action(_ a: Action) -> String { a.name ?? "unspecified" }
    static func action(_ s: String) -> Action { Action(name: s) ?? .unspecified }

    /// An unspecified kind is an order.
    static func kind(_ k: RequestKind) -> String { k == .unspecified ? "order" : k.name ?? "order" }
    static func kind(_ s: String) -> RequestKind { RequestKind(name: s) ?? .order }

    static func label(_ k: LabelKind) -> String { k.name ?? "unspecified" }
    static func label(_ s: String) -> LabelKind { LabelKind(name: s) ?? .unspecified }

    /// Chargebacks and confirmed fraud are fraud; false positives and legitimate orders are not.
    static func isFraud(_ k: LabelKind) -> Bool { k == .chargeback || k == .confirmedFraud }

    static func list(_ k: ListKind) -> String { k == .allow ? "allow" : "block" }
    static func list(_ s: String) -> ListKind { s == "allow" ? .allow : .block }

    static func field(_ f: ListField) -> String { f.name ?? "unspecified" }
    static func field(_ s: String) -> ListField { ListField(name: s) ?? .unspecified }

    static func reasonKind(_ k: ReasonKind) -> String { k.name ?? "unspecified" }
    static func reasonKind(_ s: String) -> ReasonKind { ReasonKind(name: s) ?? .unspecified }

    private struct StoredReason: Codable {
        var kind: String
        var code: String
        var description: String
        var contribution: Double
        var value: Double
    }

    /// `[{"kind": ..., "code": ..., "description": ..., "contribution": ..., "value": ...}, ...]`,
    /// written by hand (every decision writes one; JSONEncoder was a tenth of the insert).
    static func reasonsJSON(_ reasons: [ReasonCode]) -> String {
        var out = "["
        for (i, r) in reasons.enumerated() {
            if i > 0 { out += "," }
            out += "{\"kind\":\"\(reasonKind(r.kind))\",\"code\":"
            quote(r.code, into: &out)
            out += ",\"description\":"
            quote(r.description, into: &out)
            out += ",\"contribution\":\(number(r.contribution)),\"value\":\(number(r.value))}"
        }
        return out + "]"
    }

    private static func number(_ v: Double) -> String {
        v.isFinite ? (v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)) : "0"
    }

    private static func quote(_ s: String, into out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        out += "\""
    }

    static func reasons(_ json: String) -> [ReasonCode] {
        guard let stored = try? JSONDecoder().decode([StoredReason].self, from: Data(json.utf8)) else { return [] }
        return stored.map {
            var r = ReasonCode()
            r.kind = reasonKind($0.kind)
            r.code = $0.code
            r.description = $0.description
            r.contribution = $0.contribution
            r.value = $0.value
            return r
        }
    }

    static func floatBytes(_ values: [Float]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    static func floats(_ bytes: [UInt8]) -> [Float] {
        bytes.withUnsafeBytes { raw in (0..<bytes.count / 4).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
    }
}

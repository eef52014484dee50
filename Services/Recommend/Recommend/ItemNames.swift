/// How reasons name items. A source writes an item as a marker (`mark`); the answer names it
/// by its catalogue title (`resolve`) once the catalogue entries are read, in the same read as
/// the candidates' own entries, so a reason says `because you bought "JUMBO BAG RED"` and only
/// an item the catalogue does not describe is named by its id.
public enum ItemNames {
    static let open: Character = "\u{E000}"
    static let close: Character = "\u{E001}"

    /// The item as a reason writes it before it is named.
    static func mark(_ id: Int64) -> String { "\(open)\(id)\(close)" }

    /// The markers' UTF-8 (U+E000, U+E001): three bytes each, differing in the last.
    private static let lead: [UInt8] = [0xEE, 0x80]
    private static let openLast: UInt8 = 0x80, closeLast: UInt8 = 0x81

    /// Walks `text` over its UTF-8 bytes: `plain` hears each run of plain text, `marked` each
    /// marked item's digits.
    private static func walk(_ text: String, plain: (Substring) -> Void, marked: (Substring) -> Void) {
        let bytes = text.utf8
        var rest = bytes.startIndex
        var i = rest
        var opened: String.Index?
        while i < bytes.endIndex {
            guard bytes[i] == lead[0] else {
                i = bytes.index(after: i)
                continue
            }
            let second = bytes.index(after: i)
            guard second < bytes.endIndex, bytes[second] == lead[1], case let third = bytes.index(after: second), third < bytes.endIndex
            else {
                i = second
                continue
            }
            let next = bytes.index(after: third)
            if bytes[third] == openLast {
                opened = i
            } else if bytes[third] == closeLast, let start = opened {
                plain(text[rest..<start])
                marked(text[bytes.index(start, offsetBy: 3)..<i])
                rest = next
                opened = nil
            }
            i = next
        }
        plain(text[rest...])
    }

    /// Whether `text` holds a marker at all (most reasons name no item).
    private static func marks(_ text: String) -> Bool {
        var previous: UInt8 = 0
        for b in text.utf8 {
            if previous == lead[0] && b == lead[1] { return true }
            previous = b
        }
        return false
    }

    /// The items `text` marks.
    static func items(in text: String) -> [Int64] {
        guard marks(text) else { return [] }
        var out: [Int64] = []
        walk(text, plain: { _ in }, marked: { if let id = Int64($0) { out.append(id) } })
        return out
    }

    /// `text` with each marked item named by its title in quotes, else by its id.
    public static func resolve(_ text: String, titles: [Int64: String]) -> String {
        guard marks(text) else { return text }
        var out = ""
        walk(text, plain: { out += $0 }) { digits in
            if let id = Int64(digits), let title = titles[id], !title.isEmpty { out += "\"\(title)\"" } else { out += digits }
        }
        return out
    }

    /// The candidate with its reason and every term's detail named.
    static func resolve(_ c: Recommender.Candidate, titles: [Int64: String]) -> Recommender.Candidate {
        var c = c
        c.reason = resolve(c.reason, titles: titles)
        for i in c.contributions.indices { c.contributions[i].detail = resolve(c.contributions[i].detail, titles: titles) }
        return c
    }

    /// Every item the candidates' reasons and terms mark.
    static func items(in candidates: [Recommender.Candidate]) -> Set<Int64> {
        var ids = Set<Int64>()
        for c in candidates {
            ids.formUnion(items(in: c.reason))
            for t in c.contributions { ids.formUnion(items(in: t.detail)) }
        }
        return ids
    }
}

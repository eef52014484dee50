/// How reasons name items. A source writes an item as a marker (`mark`); the answer names it
/// by its catalogue title (`resolve`) once the catalogue entries are read, in the same read as
/// the candidates' own entries, so a reason says `because you bought "JUMBO BAG RED"` and only
/// an item the catalogue does not describe is named by its id.
public enum ItemNames {
    static let open: Character = "\u{E000}"
    static let close: Character = "\u{E001}"

    /// The item as a reason writes it before it is named.
    static func mark(_ id: Int64) -> String { "\(open)\(id)\(close)" }

    /// Walks `text`: `plain` hears each run of plain text, `marked` each marked item's digits.
    private static func walk(_ text: String, plain: (Substring) -> Void, marked: (Substring) -> Void) {
        var rest = Substring(text)
        while let start = rest.firstIndex(of: open), let end = rest[start...].firstIndex(of: close) {
            plain(rest[..<start])
            marked(rest[rest.index(after: start)..<end])
            rest = rest[rest.index(after: end)...]
        }
        plain(rest)
    }

    /// The items `text` marks.
    static func items(in text: String) -> [Int64] {
        guard text.contains(open) else { return [] }
        var out: [Int64] = []
        walk(text, plain: { _ in }, marked: { if let id = Int64($0) { out.append(id) } })
        return out
    }

    /// `text` with each marked item named by its title in quotes, else by its id.
    public static func resolve(_ text: String, titles: [Int64: String]) -> String {
        guard text.contains(open) else { return text }
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

/// Sets of log partitions as flags and health checks write them: `0-3,6`.
public enum PartitionSet {
    /// The partitions `text` names (`0-3`, `0,2,5`, `0-3,6-7`), or nil when it is not such a list.
    public static func parse(_ text: String) -> Set<Int>? {
        var set = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(bounds.count), let low = bounds.first!, let high = bounds.last!, low >= 0, low <= high, high < 65_536
            else { return nil }
            set.formUnion(low...high)
        }
        return set
    }

    /// `set` as runs: `0-3,6`; `-` when empty.
    public static func format(_ set: some Sequence<Int>) -> String {
        let sorted = Set(set).sorted()
        guard var start = sorted.first else { return "-" }
        var runs: [String] = []
        var last = start
        for p in sorted.dropFirst() {
            if p == last + 1 {
                last = p
                continue
            }
            runs.append(start == last ? "\(start)" : "\(start)-\(last)")
            (start, last) = (p, p)
        }
        runs.append(start == last ? "\(start)" : "\(start)-\(last)")
        return runs.joined(separator: ",")
    }
}

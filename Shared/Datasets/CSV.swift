/// One line of comma-separated values as the shared datasets and the console's list files
/// write them: a cell in double quotes may hold commas, and a doubled quote stands for one.
public enum CSV {
    /// The cells of `line`.
    public static func fields<S: StringProtocol>(_ line: S) -> [String] {
        var cells: [String] = []
        var cell = ""
        var quoted = false
        var chars = line.makeIterator()
        var pending: Character?
        while let c = pending ?? chars.next() {
            pending = nil
            if quoted {
                if c != "\"" {
                    cell.append(c)
                } else if let next = chars.next() {
                    // A doubled quote is one quote; a single one ends the quoted part.
                    if next == "\"" { cell.append("\"") } else { (quoted, pending) = (false, next) }
                } else {
                    quoted = false
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                cells.append(cell)
                cell = ""
            } else {
                cell.append(c)
            }
        }
        cells.append(cell)
        return cells
    }

    /// `text` as one cell: quoted when it holds a comma, a quote or a line end.
    public static func cell(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

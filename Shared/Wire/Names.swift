/// The names people give things that travel the wire and land in URLs, files and metrics:
/// audiences, case teams. 1 to 64 of a-z, 0-9, '-' and '_'.
public enum Names {
    public static let rule = "1 to 64 of a-z, 0-9, '-' and '_'"

    public static func valid(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
    }
}

import Foundation

/// IPv4 ranges to country names, loaded from a CSV of `lower,upper,country` rows with the
/// bounds as decimal numbers (the shared fraud case's IpAddress_to_Country.csv). Ingest
/// looks each raw IP up before pseudonymising it, so the country survives while the
/// address never reaches disk; risk-control looks up a scored request's IP the same way.
public struct IPCountryTable: Sendable {
    struct Range: Sendable {
        let lower: UInt32
        let upper: UInt32
        let country: Int
    }

    let ranges: [Range]
    let countries: [String]

    public var count: Int { ranges.count }

    /// Parses the CSV. A header line and lines that are not three fields are skipped;
    /// decimals such as `732758368.8` are truncated, as the dataset's IPs are.
    public init(csv: String) {
        var names: [String: Int] = [:]
        var countries: [String] = []
        var ranges: [Range] = []
        for line in csv.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == 3, let lo = Double(fields[0]), let hi = Double(fields[1]), lo >= 0, hi <= Double(UInt32.max), lo <= hi
            else { continue }
            let name = fields[2].trimmingCharacters(in: .whitespaces)
            let index =
                names[name]
                ?? {
                    countries.append(name); names[name] = countries.count - 1; return countries.count - 1
                }()
            ranges.append(Range(lower: UInt32(lo), upper: UInt32(hi), country: index))
        }
        self.ranges = ranges.sorted { $0.lower < $1.lower }
        self.countries = countries
    }

    public init(contentsOf path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PersonalDataError("IP-to-country table \(path) cannot be read")
        }
        self.init(csv: text)
        guard !ranges.isEmpty else { throw PersonalDataError("IP-to-country table \(path) holds no ranges") }
    }

    /// The country of a dotted IPv4 address, or nil (not IPv4, or in no range).
    public func country(of ip: String) -> String? {
        guard let address = Self.ipv4(ip) else { return nil }
        // Last range starting at or below the address.
        var lo = 0
        var hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].lower <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, ranges[lo - 1].upper >= address else { return nil }
        return countries[ranges[lo - 1].country]
    }

    static func ipv4(_ text: String) -> UInt32? {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var parts = 0
        for c in text.utf8 {
            if c == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                part = 0
                digits = 0
                parts += 1
            } else if c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
                part = part * 10 + UInt32(c - UInt8(ascii: "0"))
                digits += 1
                guard digits <= 3, part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }
}

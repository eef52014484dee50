import Foundation
import PersonalData
import RPC
import ServiceKit
import Testing
import Wire

@testable import Ingest

@Suite("IP to country")
struct IPCountryTableTests {
    static let csv = """
        lower_bound_ip_address,upper_bound_ip_address,country
        16777216,16777471,Australia
        16777472,16777727,China
        3232235520.0,3232301055.9,Private
        not,a,row
        """

    @Test("ranges from the shared table's format; addresses outside every range, or not IPv4, have none")
    func lookup() {
        let table = IPCountryTable(csv: Self.csv)
        #expect(table.count == 3)
        #expect(table.country(of: "1.0.0.0") == "Australia")
        #expect(table.country(of: "1.0.0.255") == "Australia")
        #expect(table.country(of: "1.0.1.0") == "China")
        #expect(table.country(of: "192.168.255.255") == "Private")
        #expect(table.country(of: "1.0.4.0") == nil)
        #expect(table.country(of: "0.0.0.1") == nil)
        for bad in ["", "1.0.0", "1.0.0.256", "1.0.0.0.1", "a.b.c.d", "1..0.0", "::1", "p:0123"] {
            #expect(table.country(of: bad) == nil, "\(bad)")
        }
    }

    @Test("ingest records the country of the raw IP, then stores only the pseudonym")
    func enrichesBeforePseudonymising() async throws {
        var settings = IngestSettings()
        settings.ipCountries = IPCountryTable(csv: Self.csv)
        try await withIngest(settings: settings) { client, _ in
            var e = view("geo-1", user: 3)
            e.ip = "1.0.1.7"
            var unknown = view("geo-2", user: 3)
            unknown.ip = "9.9.9.9"
            #expect(try await append(client, [e, unknown]).accepted == 2)
            let stored = try await readAll(client, partitions: settings.partitions).compactMap(\.event)
            #expect(stored.map(\.ipCountry) == ["China", ""])
            #expect(stored.allSatisfy { $0.ip.hasPrefix("p:") })
        }
    }
}

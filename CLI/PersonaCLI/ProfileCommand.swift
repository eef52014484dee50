import ArgumentParser
import Foundation
import RPC
import Wire

/// `persona profile USER`: prints a user's profile from the feature service, as of the
/// latest event it has folded.
struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "profile", abstract: "Show a user's profile, risk features included.")

    @Argument(help: "The user id.")
    var user: Int64

    @OptionGroup var endpoints: Endpoints

    func run() async throws {
        let feature = try endpoints.featureReplicas()
        var request = GetProfileRequest()
        request.userId = user
        let response: GetProfileResponse
        do {
            response = try await feature.call(FeatureAPI.getProfile, request, user: user, timeout: .seconds(5))
        } catch {
            await feature.shutdown()
            throw ValidationError("feature: \(error)")
        }
        await feature.shutdown()
        guard response.found, let profile = response.profile else {
            print("user \(user): no profile (no event of this user has been folded)")
            throw ExitCode(1)
        }
        print(ProfileText.render(profile))
    }
}

/// A profile as text for an analyst: one section per portrait.
enum ProfileText {
    static func date(_ ms: Int64) -> String {
        guard ms > 0 else { return "-" }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.2f", v)
    }

    static func render(_ p: UserProfile) -> String {
        var out: [String] = []
        let gender = p.gender.name.map { $0.replacingOccurrences(of: "GENDER_", with: "").lowercased() } ?? "-"
        let memberships =
            p.segmentMemberships.isEmpty
            ? "" : " (" + p.segmentMemberships.enumerated().map { String(format: "%d: %.0f%%", $0, 100 * $1) }.joined(separator: ", ") + ")"
        out.append(
            """
            user \(p.userId)   tags: \
            \(p.tags.isEmpty ? "-" : p.tags.joined(separator: ", "))\(p.hasSegment ? "   segment \(p.segmentId)\(memberships)" : "")
            """
        )
        if !p.scores.isEmpty {
            out.append(
                "scores    "
                    + p.scores.map { String(format: "%@ %.3f (next %d days)", $0.name, Double($0.probability), Int($0.horizonDays)) }
                    .joined(separator: "  "))
        }
        out.append("")
        out.append(
            """
            basic     age \(p.age == 0 ? "-" : String(p.age))  gender \(gender)  region \
            \(p.region.isEmpty ? "-" : p.region)  interests \
            \(p.interests.isEmpty ? "-" : p.interests.joined(separator: ","))
            """
        )
        out.append("          signup \(date(p.signupMs))  first seen \(date(p.firstSeenMs))  last seen \(date(p.lastSeenMs))")
        out.append("")
        let rows = p.counts.map { c -> [String] in
            let w = c.counts ?? WindowCounts()
            let kind = (c.kind.name ?? "\(c.kind.rawValue)").replacingOccurrences(of: "EVENT_KIND_", with: "").lowercased()
            return [kind, "\(w.last1h)", "\(w.last24h)", "\(w.last7d)", "\(w.last30d)", "\(w.lifetime)"]
        }
        out.append(Table.render(header: ["EVENTS", "1H", "24H", "7D", "30D", "LIFETIME"], rows: rows))
        out.append("")
        out.append(
            """
            behaviour distinct items \(p.distinctItems)  categories \(p.distinctCategories)  sessions \(p.sessions)  \
            browse depth \(number(p.browseDepth))
            """
        )
        out.append(
            """
                      purchase interval \(number(p.purchaseIntervalMeanDays)) ± \(number(p.purchaseIntervalStdDays)) \
            days  return rate \(number(p.returnRate))  reviews \(p.reviewCount) (mean \(number(p.meanRating)))
            """
        )
        if let r = p.rfm {
            out.append(
                """
                value     recency \(number(r.recencyDays)) days  frequency \(r.frequency)  monetary \
                \(number(r.monetary))  AOV \(number(r.averageOrderValue))  RFM \(r.rScore)-\(r.fScore)-\(r.mScore)
                """
            )
        }
        let cats = p.categories.prefix(5).map { "\($0.id) (\(number($0.score)))" }.joined(separator: ", ")
        let brands = p.brands.prefix(5).map { "\($0.name) (\(number($0.score)))" }.joined(separator: ", ")
        out.append("interests categories \(cats.isEmpty ? "-" : cats)")
        out.append("          brands \(brands.isEmpty ? "-" : brands)")
        out.append(
            """
                      price bands <10 \(pct(p.priceBands, 0))  10-50 \(pct(p.priceBands, 1))  50-200 \
            \(pct(p.priceBands, 2))  200-1000 \(pct(p.priceBands, 3))  1000+ \(pct(p.priceBands, 4))
            """
        )
        out.append("          active hours (UTC) \(sparkline(p.activeHours))  weekdays Mon-Sun \(sparkline(p.weekdays))")
        out.append(
            """
                      channel \(p.preferredChannel.isEmpty ? "-" : p.preferredChannel)  device \
            \(p.preferredDevice.isEmpty ? "-" : p.preferredDevice)
            """
        )
        out.append("recent    viewed \(list(p.recentViews))")
        out.append("          carted \(list(p.recentCarts))")
        out.append("          bought \(list(p.recentPurchases))")
        if let r = p.risk {
            out.append("")
            out.append(
                """
                risk      account age \(number(r.accountAgeDays)) days (\(number(r.secondsSinceSignup)) s since \
                signup)  first purchase \(r.firstPurchase ? "yes" : "no")  new device \(r.newDevice ? "yes" : "no")
                """
            )
            out.append(
                """
                          orders 1m/10m/1h/24h \(r.orders1m)/\(r.orders10m)/\(r.orders1h)/\(r.orders24h)  amount \
                \(number(r.amount1m))/\(number(r.amount10m))/\(number(r.amount1h))/\(number(r.amount24h))  z-score \
                \(number(r.amountZscore))
                """
            )
            out.append(
                """
                          distinct 24h/7d: devices \(r.distinctDevices24h)/\(r.distinctDevices7d)  IPs \
                \(r.distinctIps24h)/\(r.distinctIps7d)  instruments \
                \(r.distinctInstruments24h)/\(r.distinctInstruments7d)
                """
            )
            out.append(
                """
                          users sharing device \(r.usersSharingDevice)  IP \(r.usersSharingIp)  failed payments 1h \
                \(r.failedPayments1h)  failed logins 1h \(r.failedLogins1h)
                """
            )
            out.append(
                "          IP country \(r.ipCountry.isEmpty ? "-" : r.ipCountry)\(r.ipCountryMismatch ? " (differs from region)" : "")")
        }
        return out.joined(separator: "\n")
    }

    static func pct(_ shares: [Double], _ i: Int) -> String {
        i < shares.count ? "\(Int((shares[i] * 100).rounded()))%" : "-"
    }

    static func list(_ ids: [Int64]) -> String {
        ids.isEmpty ? "-" : ids.prefix(10).map(String.init).joined(separator: " ") + (ids.count > 10 ? " …" : "")
    }

    static func sparkline(_ values: [UInt32]) -> String {
        let bars = Array("▁▂▃▄▅▆▇█")
        let top = values.max() ?? 0
        guard top > 0 else { return String(repeating: "▁", count: values.count) }
        return String(values.map { $0 == 0 ? " " : bars[min(7, Int(Double($0) / Double(top) * 7.999))] })
    }
}

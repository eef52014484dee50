import Foundation
import Math
import RPC
import ServiceKit
import TestSupport
import Testing
import Uplift
import Wire

/// Campaigns through a real ingest, feature and model service on the Online Retail sample:
/// defined and launched through the log, measured from orders the test plants.
@Suite("Campaigns", .serialized, .timeLimit(.minutes(4)))
struct CampaignTests {
    static let day: Int64 = 86_400_000

    static func campaign(
        _ name: String, audience: String, start: Int64, end: Int64, control: Double = 0.3, coupon: String = "", uplift: String = ""
    ) -> DefineCampaignRequest {
        var d = CampaignDefinition()
        (d.name, d.audience, d.startMs, d.endMs, d.controlShare) = (name, audience, start, end, control)
        var offer = CampaignOffer()
        (offer.couponCode, offer.discountShare, offer.costPerSend) = (coupon.isEmpty ? "\(name.uppercased())10" : coupon, 0.1, 0.05)
        d.offer = offer
        if !uplift.isEmpty { (d.upliftModel, d.upliftShare) = (uplift, 0.5) }
        var r = DefineCampaignRequest()
        r.campaign = d
        return r
    }

    static func order(_ user: Int64, at ms: Int64, total: Double, coupon: String, id: String) -> Event {
        var e = Event()
        (e.eventId, e.kind, e.userId, e.timestampMs) = (id, .purchase, user, ms)
        var o = Order()
        o.orderId = id
        var line = OrderLine()
        (line.itemId, line.quantity, line.unitPrice) = (1, 1, total)
        o.lines = [line]
        o.total = total
        if !coupon.isEmpty { (o.couponCode, o.discount) = (coupon, (total * 0.1 * 100).rounded() / 100) }
        e.order = o
        return e
    }

    @Test(
        """
        a campaign defined, launched and measured: the control split is the hash's and near its share, a relaunch \
        reaches no one twice, a planted effect is found with its interval covering it, redemptions and the offer's cost \
        are counted, and an uplift model trained on it targets half of the next audience
        """
    )
    func campaignEndToEnd() async throws {
        let events = try onlineRetailSample()
        try await withCoreSuite { ingest, feature, model in
            try await append(ingest.client, events)
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            var audience = DefineAudienceRequest()
            (audience.name, audience.expression) = ("buyers", "purchase_lifetime >= 1")
            #expect(try await feature.client.call(FeatureAPI.defineAudience, audience, timeout: .seconds(20)).errors.isEmpty)
            var members: [Int64] = []
            var page = AudienceMembersRequest()
            (page.name, page.pageSize) = ("buyers", 10_000)
            members = try await feature.client.call(FeatureAPI.audienceMembers, page).userIds
            #expect(members.count > 300, "\(members.count) buyers")

            // Refused with reasons, nothing stored.
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let (start, end) = (now - 2 * Self.day, now + Self.day)
            var bad = Self.campaign("winback", audience: "nobody", start: end, end: start, control: 0)
            bad.campaign?.offer = CampaignOffer()
            let errors = try await model.client.call(ModelAPI.defineCampaign, bad, timeout: .seconds(40)).errors
            #expect(errors.count == 4, "\(errors)")
            #expect(errors.contains { $0.contains("no audience 'nobody'") } && errors.contains { $0.contains("control share") })
            #expect(try await model.client.call(ModelAPI.listCampaigns, ListCampaignsRequest()).campaigns.isEmpty)

            let define = Self.campaign("winback", audience: "buyers", start: start, end: end)
            #expect(try await model.client.call(ModelAPI.defineCampaign, define, timeout: .seconds(40)).errors.isEmpty)
            var launch = LaunchCampaignRequest()
            launch.name = "winback"
            let launched = try await model.client.call(ModelAPI.launchCampaign, launch, timeout: .seconds(60))
            #expect(Int(launched.treated + launched.controls) == members.count && launched.already == 0)
            let share = Double(launched.controls) / Double(members.count)
            #expect(abs(share - 0.3) < 0.07, "control share \(share)")
            let again = try await model.client.call(ModelAPI.launchCampaign, launch, timeout: .seconds(60))
            #expect(again.treated == 0 && again.controls == 0 && Int(again.already) == members.count)

            // Plant: every reached user orders with chance 0.15; the treated also redeem the
            // coupon with chance 0.25 more. The true uplift in conversion is 0.85 * 0.25.
            var rng = SplitMix(seed: 11)
            var planted: [Event] = []
            var redemptions = 0, discounts = 0.0
            for user in members.sorted() {
                let control = ControlGroup.isControl(user: user, campaign: "winback", share: 0.3)
                let at = start + Int64(Double.random(in: 0..<1, using: &rng) * Double(now - start - 60_000))
                if Double.random(in: 0..<1, using: &rng) < 0.15 {
                    planted.append(
                        Self.order(user, at: at, total: 20 + 80 * Double.random(in: 0..<1, using: &rng), coupon: "", id: "base-\(user)"))
                }
                if !control && Double.random(in: 0..<1, using: &rng) < 0.25 {
                    let o = Self.order(
                        user, at: at + 1000, total: 20 + 80 * Double.random(in: 0..<1, using: &rng), coupon: "WINBACK10",
                        id: "coupon-\(user)")
                    planted.append(o)
                    redemptions += 1
                    discounts += o.order?.discount ?? 0
                }
            }
            try await append(ingest.client, planted)

            var ask = CampaignReportRequest()
            ask.name = "winback"
            let report = try await model.client.call(ModelAPI.campaignReport, ask, timeout: .seconds(60))
            let window = try #require(report.periods.first { $0.name == "window" })
            let conversion = try #require(window.conversion)
            let truth = 0.85 * 0.25
            #expect(window.treated == launched.treated && window.controls == launched.controls)
            #expect(conversion.low > 0 && conversion.low <= truth && truth <= conversion.high, "\(conversion)")
            #expect(conversion.pValue < 0.05)
            #expect(Int(window.redemptions) == redemptions && redemptions > 40)
            #expect(abs(window.offerCost - (discounts + 0.05 * Double(launched.treated))) < 0.01, "\(window.offerCost)")
            // The days after are measured once the window has closed; it is still open.
            #expect(report.periods.map(\.name) == ["window"] && window.cautions.first?.hasPrefix("The period is still open") == true)
            #expect(report.daily.map(\.name) == ["treatment", "control"] && report.daily[0].y.last ?? 0 > report.daily[1].y.last ?? 1)
            var list = ListCampaignsRequest()
            list.name = "winback"
            let info = try #require(try await model.client.call(ModelAPI.listCampaigns, list).campaigns.first)
            #expect(Int(info.redemptions) == redemptions && info.treated == launched.treated && info.launchedMs > 0)

            // An uplift model from it, published, cuts the next campaign's audience in half.
            try await waitConsumed(ingest: ingest.client, consumer: feature.client)
            let job = try await waitJob(
                model.client, try await train(model.client, .uplift, params: ["campaign": "winback"], publish: true))
            #expect(job.state == .succeeded, "\(job.message)")
            let withQini = try await model.client.call(ModelAPI.campaignReport, ask, timeout: .seconds(60))
            #expect(
                Set(withQini.qini.map(\.name)) == ["qini_uplift", "qini_propensity", "qini_random"] && withQini.upliftModel == "uplift",
                "\(withQini.qini.map(\.name))")
            let next = Self.campaign("next", audience: "buyers", start: now, end: end, uplift: "uplift")
            #expect(try await model.client.call(ModelAPI.defineCampaign, next, timeout: .seconds(40)).errors.isEmpty)
            launch.name = "next"
            let targeted = try await model.client.call(ModelAPI.launchCampaign, launch, timeout: .seconds(60))
            #expect(
                Int(targeted.treated + targeted.controls) == (members.count + 1) / 2 && Int(targeted.notTargeted) == members.count / 2,
                "\(targeted)")

            // Deleted, it is gone.
            var remove = DefineCampaignRequest()
            remove.campaign = CampaignDefinition()
            remove.campaign?.name = "next"
            remove.remove = true
            _ = try await model.client.call(ModelAPI.defineCampaign, remove, timeout: .seconds(40))
            list.name = "next"
            await #expect { try await model.client.call(ModelAPI.listCampaigns, list) } throws: { ($0 as? RPCError)?.code == .notFound }
        }
    }

    @Test("the book: the first word on a user's side stands, orders of reached users only, boosts only for the treated in the window")
    func book() {
        let book = CampaignBook()
        book.start(partitions: 1)
        var c = CampaignDefinition()
        (c.name, c.audience, c.startMs, c.endMs, c.controlShare) = ("spring", "all", 1000, 5000, 0.5)
        var offer = CampaignOffer()
        (offer.boostCategories, offer.boostFactor, offer.surface, offer.couponCode) = ([7], 3, "home", "SPRING")
        c.offer = offer
        func event(_ kind: EventKind, user: Int64, at ms: Int64, _ fill: (inout Event) -> Void) -> StoredEvent {
            var e = Event()
            (e.kind, e.userId, e.timestampMs, e.eventId) = (kind, user, ms, "\(kind.rawValue)-\(user)-\(ms)")
            fill(&e)
            var s = StoredEvent()
            s.event = e
            return s
        }
        func sent(_ user: Int64, control: Bool) -> StoredEvent {
            event(.campaignSent, user: user, at: 1500) {
                var s = CampaignSent()
                (s.campaign, s.control) = ("spring", control)
                $0.campaignSent = s
            }
        }
        book.fold(
            [
                event(.purchase, user: 1, at: 900) { $0.order = Order() },
                event(.campaign, user: 0, at: 1000) { $0.campaign = c },
                sent(1, control: false), sent(2, control: true), sent(1, control: true),
                event(.purchase, user: 1, at: 2000) {
                    var o = Order()
                    (o.total, o.couponCode) = (50, "SPRING")
                    $0.order = o
                },
                event(.purchase, user: 3, at: 2000) { $0.order = Order() },
            ], partition: 0, next: 7)
        #expect(book.reached("spring") == [1: .init(control: false, atMs: 1500), 2: .init(control: true, atMs: 1500)])
        #expect(book.purchases(of: [1, 3]).mapValues(\.count) == [1: 1])
        #expect(book.ordersCarrying("SPRING") == 1 && book.offset(0) == 7 && book.caughtUp(to: [7]))
        #expect(book.boosts(user: 1, surface: "home", nowMs: 2000).map(\.campaign) == ["spring"])
        #expect(book.boosts(user: 1, surface: "cart", nowMs: 2000).isEmpty && book.boosts(user: 1, surface: "home", nowMs: 6000).isEmpty)
        #expect(book.boosts(user: 2, surface: "home", nowMs: 2000).isEmpty)
        let outcomes = CampaignOutcomes(
            reached: book.reached("spring"), purchases: book.purchases(of: [1, 2]), offer: offer, from: 1000, to: 5000)
        #expect(outcomes.treatment == [UserOutcome(orders: 1, revenue: 50)] && outcomes.control == [UserOutcome(orders: 0, revenue: 0)])
        #expect(outcomes.redemptions == 1 && outcomes.discounts == 0)
        book.fold([event(.erasure, user: 1, at: 3000) { _ in }], partition: 0, next: 8)
        #expect(book.reached("spring").keys.sorted() == [2] && book.purchases(of: [1]).isEmpty)
        // A deleted campaign no longer keeps its users' orders; another campaign's reach still does.
        var other = c
        other.name = "summer"
        var deleted = c
        deleted.deleted = true
        book.fold(
            [
                event(.campaign, user: 0, at: 3100) { $0.campaign = other },
                event(.campaignSent, user: 4, at: 3200) {
                    var s = CampaignSent()
                    s.campaign = "summer"
                    $0.campaignSent = s
                },
                sent(4, control: false),
                event(.campaign, user: 0, at: 3300) { $0.campaign = deleted },
                event(.purchase, user: 2, at: 3400) { $0.order = Order() },
                event(.purchase, user: 4, at: 3400) { $0.order = Order() },
            ], partition: 0, next: 9)
        #expect(book.reached("spring").isEmpty && book.reached("summer").keys.sorted() == [4])
        #expect(book.purchases(of: [2, 4]).mapValues(\.count) == [4: 1])
    }
}

import Datasets
import Foundation
import Math
import TestSupport
import Testing
import Wire

@testable import Uplift

/// The Online Retail sample's customers as a campaign's audience: what each did before
/// 2010-12-05 (the features) and over the three days after (the outcome without any offer).
struct RetailAudience {
    struct Customer {
        var id: Int64
        var features: [Float]
        var outcome: UserOutcome
    }

    let customers: [Customer]
    /// The order values of the window (planted conversions draw their revenue from them).
    let orderValues: [Double]

    static let shared: RetailAudience = {
        let events = try! onlineRetailSample()
        let cut: Int64 = 1_291_507_200_000  // 2010-12-05 00:00 UTC (the sample holds 1 to 7 December)
        var before: [Int64: (orders: Int, spend: Double, last: Int64, lines: Int)] = [:]
        var after: [Int64: UserOutcome] = [:]
        var values: [Double] = []
        for e in events where e.kind == .purchase {
            let total = (e.order?.lines ?? []).reduce(0) { $0 + $1.unitPrice * Double(max(1, $1.quantity)) }
            if e.timestampMs < cut {
                var b = before[e.userId] ?? (0, 0, 0, 0)
                b = (b.orders + 1, b.spend + total, max(b.last, e.timestampMs), b.lines + (e.order?.lines.count ?? 0))
                before[e.userId] = b
            } else {
                after[e.userId, default: UserOutcome(orders: 0, revenue: 0)].orders += 1
                after[e.userId]!.revenue += total
                values.append(total)
            }
        }
        let ids = Set(before.keys).union(after.keys).sorted()
        let customers = ids.map { id -> Customer in
            let b = before[id] ?? (0, 0, 0, 0)
            let recency = b.orders == 0 ? 10 : Float(cut - b.last) / 86_400_000
            return Customer(
                id: id, features: [Float(b.orders), Float(b.spend), recency, Float(b.lines)],
                outcome: after[id] ?? UserOutcome(orders: 0, revenue: 0))
        }
        return RetailAudience(customers: customers, orderValues: values)
    }()

    /// A simulated campaign over the audience: `controlShare` kept out by the hash split, and
    /// the offer converting treated users who would not have converted so that the treated
    /// conversion rate rises by `effect` (absolute), each planted order worth a window order.
    func campaign(_ name: String, controlShare: Double, effect: Double, seed: UInt64) -> (treatment: [UserOutcome], control: [UserOutcome])
    {
        let base = Double(customers.filter(\.outcome.converted).count) / Double(customers.count)
        var rng = SplitMix(seed: seed)
        var treatment: [UserOutcome] = [], control: [UserOutcome] = []
        for c in customers {
            if ControlGroup.isControl(user: c.id, campaign: name, share: controlShare) {
                control.append(c.outcome)
                continue
            }
            var o = c.outcome
            if !o.converted && Double(rng.next() >> 11) / Double(1 << 53) < effect / (1 - base) {
                o = UserOutcome(orders: 1, revenue: orderValues[rng.below(orderValues.count)])
            }
            treatment.append(o)
        }
        return (treatment, control)
    }
}

@Suite("Campaign measurement and uplift")
struct UpliftTests {
    @Test("the control split is stable, close to its share, and independent between campaigns")
    func controlSplit() {
        let users = (1...20_000).map { Int64($0) }
        let a = users.filter { ControlGroup.isControl(user: $0, campaign: "spring-coupon", share: 0.1) }
        #expect(a == users.filter { ControlGroup.isControl(user: $0, campaign: "spring-coupon", share: 0.1) }, "the same users every time")
        #expect(abs(Double(a.count) / 20_000 - 0.1) < 0.01, "\(a.count) of 20,000 in control")
        let b = Set(users.filter { ControlGroup.isControl(user: $0, campaign: "summer-boost", share: 0.1) })
        let both = Double(a.filter(b.contains).count) / 20_000
        #expect(abs(both - 0.01) < 0.004, "another campaign's control overlaps by chance only: \(both)")
        // A larger share keeps every user of a smaller one in control.
        #expect(Set(a).isSubset(of: users.filter { ControlGroup.isControl(user: $0, campaign: "spring-coupon", share: 0.3) }))
    }

    @Test("a planted effect on the Online Retail sample is found with the right sign and its interval covers it in 90% of seeds")
    func plantedEffect() {
        let audience = RetailAudience.shared
        #expect(audience.customers.count > 400)
        let planted = 0.12
        var covered = 0, positive = 0, significant = 0
        for seed in 0..<200 {
            let (t, c) = audience.campaign("planted-\(seed)", controlShare: 0.3, effect: planted, seed: UInt64(seed))
            let m = CampaignMeasurement.measure(treatment: t, control: c, offerCost: 100, bootstrap: 200, seed: UInt64(seed))
            if m.conversion.low <= planted && planted <= m.conversion.high { covered += 1 }
            if m.conversion.difference > 0 { positive += 1 }
            if m.conversion.significant { significant += 1 }
            #expect(m.revenueBootstrap.low < m.revenuePerUser.difference && m.revenuePerUser.difference < m.revenueBootstrap.high)
        }
        #expect(covered >= 180, "the 95% interval covered the planted \(planted) in \(covered) of 200 seeds")
        #expect(positive >= 190, "the difference had the right sign in \(positive) of 200 seeds")
        #expect(significant >= 100, "significant in \(significant) of 200 seeds")
    }

    @Test("a campaign with no effect is called significant in about 5% of seeds, and the report says so")
    func noEffect() {
        let audience = RetailAudience.shared
        var significant = 0
        var cautioned = 0
        for seed in 0..<200 {
            let (t, c) = audience.campaign("null-\(seed)", controlShare: 0.3, effect: 0, seed: UInt64(seed))
            let m = CampaignMeasurement.measure(treatment: t, control: c, bootstrap: 0)
            if m.conversion.significant { significant += 1 }
            if m.cautions.contains(where: { $0.contains("within what chance gives") }) { cautioned += 1 }
        }
        #expect(significant <= 16, "significant in \(significant) of 200 seeds")
        #expect(cautioned == 200 - significant)
        // A small campaign is flagged as small.
        let small = CampaignMeasurement.measure(
            treatment: Array(repeating: UserOutcome(orders: 1, revenue: 10), count: 40)
                + Array(repeating: UserOutcome(orders: 0, revenue: 0), count: 40),
            control: Array(repeating: UserOutcome(orders: 0, revenue: 0), count: 20), bootstrap: 0)
        #expect(small.cautions.first?.hasPrefix("Only 20 users in control and 80 treated") == true)
    }

    @Test("Welch's interval and p-value agree with known values; the t quantile with tables")
    func statistics() {
        #expect(abs(Statistics.normalQuantile(0.975) - 1.959964) < 1e-6)
        #expect(abs(Statistics.tQuantile(0.975, df: 10) - 2.228139) < 2e-3)
        #expect(abs(Statistics.tQuantile(0.975, df: 30) - 2.042272) < 1e-3)
        // R's t.test(1:6, 4:9): t = -2.7775, df = 10, p = 0.01955, interval -5.4066 to -0.5934.
        let e = CampaignMeasurement.welch([1, 2, 3, 4, 5, 6], [4, 5, 6, 7, 8, 9])
        #expect(e.difference == -3 && abs(e.pValue - 0.01955) < 0.003, "\(e)")
        #expect(abs(e.low + 5.4066) < 0.002 && abs(e.high + 0.5934) < 0.002)
    }

    @Test("an uplift model finds a planted responsive group better than a propensity model does (Qini)")
    func upliftBeatsPropensity() {
        let audience = RetailAudience.shared
        // Sixteen copies of each customer seen before the cut, each its own user. Those whose
        // last order was three or more days before (lapsing) respond to the offer (+40 points);
        // the rest buy as often as they would anyway, which rises with what they spent: the
        // users a propensity model puts first are those the offer does not move.
        var rng = SplitMix(seed: 7)
        var train: [UpliftRow] = [], test: [UpliftRow] = []
        let known = audience.customers.filter { $0.features[0] >= 1 }
        #expect(known.count > 200)
        for (k, c) in known.enumerated() {
            for copy in 0..<16 {
                let id = Int64(k * 16 + copy)
                let treated = !ControlGroup.isControl(user: id, campaign: "qini", share: 0.5)
                let base = 0.05 + 0.6 * min(1, Double(c.features[1]) / 1000)
                let responsive = c.features[2] >= 3
                let p = base + (treated && responsive ? 0.4 : 0)
                let row = UpliftRow(features: c.features, treated: treated, converted: Double(rng.next() >> 11) / Double(1 << 53) < p)
                if k % 2 == 0 { train.append(row) } else { test.append(row) }
            }
        }
        func qini(_ score: (UpliftRow) -> Float) -> Double {
            QiniCurve(scores: test.map(score), treated: test.map(\.treated), converted: test.map(\.converted)).coefficient
        }
        let twoModel = UpliftModel.train(train, method: .twoModel)
        let transformed = UpliftModel.train(train, method: .classTransformation)
        let propensity = BoostedTrees.train(
            rows: train.flatMap(\.features), labels: train.map { $0.converted ? 1 : 0 }, features: 4, parameters: UpliftModel.defaults)
        let (q2, qt, qp) = (
            qini { twoModel.uplift($0.features) }, qini { transformed.uplift($0.features) }, qini { propensity.probability($0.features) }
        )
        let random = qini { _ in Float(Double(rng.next() >> 11) / Double(1 << 53)) }
        #expect(q2 > qp + 0.01 && qt > qp + 0.01, "Qini: two-model \(q2), class transformation \(qt), propensity \(qp)")
        #expect(q2 > random + 0.01 && abs(random) < 0.01, "random order \(random)")
    }
}

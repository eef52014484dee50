import Foundation
import Math

/// What one user of a campaign's audience did over the measured window.
public struct UserOutcome: Sendable, Equatable {
    public var orders: Int
    public var revenue: Double
    public var converted: Bool { orders > 0 }

    public init(orders: Int, revenue: Double) {
        self.orders = orders
        self.revenue = revenue
    }
}

/// A difference between treatment and control, with its 95% interval and two-sided p-value.
public struct Effect: Sendable, Equatable {
    public var treatment: Double
    public var control: Double
    /// treatment − control.
    public var difference: Double
    public var low: Double
    public var high: Double
    public var pValue: Double
    /// The smallest true difference this campaign's sizes would find significant four times
    /// in five (80% power at the 5% level).
    public var minimumDetectable: Double

    public var significant: Bool { pValue < 0.05 }
    /// The difference relative to control (nil when control is 0).
    public var relative: Double? { control == 0 ? nil : difference / control }
}

/// A campaign measured: treatment against control over a window (docs/CAMPAIGNS.md).
public struct CampaignMeasurement: Sendable, Equatable {
    public var treated: Int
    public var controls: Int
    public var conversion: Effect
    public var ordersPerUser: Effect
    public var revenuePerUser: Effect
    /// Revenue per user's difference with a percentile bootstrap interval (revenue is heavy
    /// tailed: a few large orders dominate it).
    public var revenueBootstrap: (low: Double, high: Double)
    /// The revenue the offer brought: the difference per user times the treated users, with
    /// its interval.
    public var incrementalRevenue: Effect
    public var offerCost: Double
    /// (incremental revenue − cost) / cost; nil without a cost.
    public var returnOnCost: Double? { offerCost > 0 ? (incrementalRevenue.difference - offerCost) / offerCost : nil }
    /// Why not to read too much into this campaign, in words (empty when nothing stands out).
    public var cautions: [String]

    public static func == (a: Self, b: Self) -> Bool {
        a.treated == b.treated && a.controls == b.controls && a.conversion == b.conversion && a.ordersPerUser == b.ordersPerUser
            && a.revenuePerUser == b.revenuePerUser && a.revenueBootstrap == b.revenueBootstrap
            && a.incrementalRevenue == b.incrementalRevenue && a.offerCost == b.offerCost && a.cautions == b.cautions
    }

    /// Measures `treatment` against `control`; `bootstrap` resamples (seeded: the same input
    /// gives the same report).
    public static func measure(
        treatment: [UserOutcome], control: [UserOutcome], offerCost: Double = 0, bootstrap: Int = 1000, seed: UInt64 = 1
    ) -> CampaignMeasurement {
        let conversion = welch(treatment.map { $0.converted ? 1 : 0 }, control.map { $0.converted ? 1 : 0 })
        let orders = welch(treatment.map { Double($0.orders) }, control.map { Double($0.orders) })
        let revenue = welch(treatment.map(\.revenue), control.map(\.revenue))
        let n = Double(treatment.count)
        var incremental = revenue
        (incremental.treatment, incremental.control) = (revenue.treatment * n, revenue.control * n)
        (incremental.difference, incremental.low, incremental.high) = (revenue.difference * n, revenue.low * n, revenue.high * n)
        incremental.minimumDetectable = revenue.minimumDetectable * n
        var m = CampaignMeasurement(
            treated: treatment.count, controls: control.count, conversion: conversion, ordersPerUser: orders, revenuePerUser: revenue,
            revenueBootstrap: bootstrapInterval(treatment.map(\.revenue), control.map(\.revenue), resamples: bootstrap, seed: seed),
            incrementalRevenue: incremental, offerCost: offerCost, cautions: [])
        m.cautions = cautions(m)
        return m
    }

    /// Welch's unequal-variance comparison of two means.
    static func welch(_ t: [Double], _ c: [Double]) -> Effect {
        let (mt, vt) = meanAndVariance(t), (mc, vc) = meanAndVariance(c)
        let (nt, nc) = (Double(t.count), Double(c.count))
        let (st, sc) = (nt > 0 ? vt / nt : 0, nc > 0 ? vc / nc : 0)
        let se = (st + sc).squareRoot()
        // Welch–Satterthwaite degrees of freedom.
        let df = se > 0 ? (st + sc) * (st + sc) / ((nt > 1 ? st * st / (nt - 1) : 0) + (nc > 1 ? sc * sc / (nc - 1) : 0)) : .infinity
        let q = Statistics.tQuantile(0.975, df: max(df, 1))
        let difference = mt - mc
        let p = se > 0 ? Statistics.twoSidedP(t: difference / se, df: df) : (difference == 0 ? 1 : 0)
        let power = Statistics.normalQuantile(0.975) + Statistics.normalQuantile(0.8)
        return Effect(
            treatment: mt, control: mc, difference: difference, low: difference - q * se, high: difference + q * se, pValue: p,
            minimumDetectable: power * se)
    }

    static func meanAndVariance(_ x: [Double]) -> (Double, Double) {
        guard !x.isEmpty else { return (0, 0) }
        let mean = x.reduce(0, +) / Double(x.count)
        guard x.count > 1 else { return (mean, 0) }
        return (mean, x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count - 1))
    }

    /// A percentile bootstrap 95% interval of mean(t) − mean(c), each arm resampled on its own.
    static func bootstrapInterval(_ t: [Double], _ c: [Double], resamples: Int, seed: UInt64) -> (low: Double, high: Double) {
        guard !t.isEmpty, !c.isEmpty, resamples > 0 else { return (0, 0) }
        var rng = SplitMix(seed: seed)
        var differences: [Double] = []
        differences.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var st = 0.0, sc = 0.0
            for _ in 0..<t.count { st += t[rng.below(t.count)] }
            for _ in 0..<c.count { sc += c[rng.below(c.count)] }
            differences.append(st / Double(t.count) - sc / Double(c.count))
        }
        differences.sort()
        func at(_ q: Double) -> Double { differences[min(differences.count - 1, max(0, Int(q * Double(differences.count))))] }
        return (at(0.025), at(0.975))
    }

    /// The warnings a reader needs: a small control group, an effect smaller than what the
    /// sizes could tell from chance, and an interval that crosses zero.
    static func cautions(_ m: CampaignMeasurement) -> [String] {
        var out: [String] = []
        if m.controls < 100 || m.treated < 100 {
            out.append(
                """
                Only \(m.controls) users in control and \(m.treated) treated: intervals this wide say little, and one large \
                order moves revenue a lot.
                """
            )
        }
        let c = m.conversion
        out.append(
            String(
                format:
                    "With these sizes a conversion difference under %.1f points would be found significant less than four times in five.",
                100 * c.minimumDetectable))
        if !c.significant {
            out.append(
                String(
                    format:
                        """
                        The conversion difference (%+.1f points) is within what chance gives (p = %.2f): it is not shown to be \
                        the offer's.
                        """,
                    100 * c.difference, c.pValue))
        }
        if m.revenueBootstrap.low <= 0 && m.revenueBootstrap.high >= 0 {
            out.append("The revenue per user's interval includes zero: the offer is not shown to have brought revenue.")
        }
        return out
    }
}

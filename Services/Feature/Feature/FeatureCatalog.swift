import Profiles
import Wire

/// The numeric features GetFeatures and the training export serve, by name. Rows are dense
/// floats in the order the caller asks for; `schemaVersion` changes whenever a name's
/// meaning changes, so a model trained on one version is never fed another.
public enum FeatureCatalog {
    /// 2: `distinct_items` and `distinct_categories` count every item (and category) a user
    /// met, bought ones included, where 1 counted the viewed ones only. 3: the request's
    /// context (`order_amount`, `hour_of_day`, `day_of_week`, gender, channel and browser
    /// families) added, and `users_sharing_device`/`_ip` count the users seen by the row's
    /// time, whatever order the events arrived in.
    public static let schemaVersion: UInt32 = 3

    /// `<kind>_<window>` for every event kind (`view_1h`, `purchase_lifetime`, ...), then
    /// the profile's numbers, then the risk features. Booleans are 0 or 1.
    public static let names: [String] = {
        var names: [String] = []
        for k in 1..<ProfileView.kindCount {
            let kind = kindName(EventKind(rawValue: Int32(k)))
            for w in Window.allCases { names.append("\(kind)_\(w.name)") }
            names.append("\(kind)_lifetime")
        }
        names += [
            "age", "days_since_first_seen", "days_since_last_seen", "distinct_items", "distinct_categories", "sessions",
            "browse_depth", "purchase_interval_mean_days", "purchase_interval_std_days", "return_rate", "review_count",
            "mean_rating", "recency_days", "frequency", "monetary", "average_order_value", "r_score", "f_score", "m_score",
            "segment_id",
        ]
        names += [
            "account_age_days", "seconds_since_signup", "orders_1m", "orders_10m", "orders_1h", "orders_24h", "amount_1m",
            "amount_10m", "amount_1h", "amount_24h", "distinct_devices_24h", "distinct_devices_7d", "distinct_ips_24h",
            "distinct_ips_7d", "distinct_instruments_24h", "distinct_instruments_7d", "users_sharing_device",
            "users_sharing_ip", "failed_payments_1h", "failed_logins_1h", "amount_zscore", "first_purchase", "new_device",
            "ip_country_mismatch",
        ]
        // The request's context, as of its time: what this order is, when, by whom, from where.
        names += ["order_amount", "hour_of_day", "day_of_week", "gender_female", "gender_male"]
        names += ChannelFamily.allCases.dropFirst().map { "channel_\($0.name)" }
        names += BrowserFamily.allCases.dropFirst().map { "browser_\($0.name)" }
        return names
    }()

    public static let index: [String: Int] = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })

    /// `view`, `add_to_cart`, ...: the enum name without its prefix, lower case.
    static func kindName(_ kind: EventKind) -> String {
        (kind.name ?? "kind_\(kind.rawValue)").replacingOccurrences(of: "EVENT_KIND_", with: "").lowercased()
    }

    /// Every feature of a user at the view's time, in `names` order.
    static func values(_ v: ProfileView) -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(names.count)
        let counts = v.counts
        for k in 1..<ProfileView.kindCount {
            for w in Window.allCases { out.append(Float(counts[k][w.rawValue])) }
            out.append(Float(v.user.lifetime[k]))
        }
        let u = v.user
        let rfm = v.rfm
        out += [
            Float(u.age), Float(Double(v.nowMs - u.firstSeenMs) / ProfileView.dayMs),
            Float(Double(v.nowMs - u.lastSeenMs) / ProfileView.dayMs),
            Float(u.distinctItems.count), Float(u.distinctCategories.count), Float(u.sessions), Float(v.browseDepth),
            Float(u.purchaseIntervals.mean), Float(u.purchaseIntervals.std), Float(v.returnRate), Float(v.lifetime(.review)),
            Float(v.meanRating), Float(rfm.recencyDays), Float(rfm.frequency), Float(rfm.monetary), Float(rfm.averageOrderValue),
            Float(rfm.rScore), Float(rfm.fScore), Float(rfm.mScore), Float(u.segment),
        ]
        let r = v.risk
        out += [
            Float(r.accountAgeDays), Float(r.secondsSinceSignup), Float(r.orders1m), Float(r.orders10m), Float(r.orders1h),
            Float(r.orders24h), Float(r.amount1m), Float(r.amount10m), Float(r.amount1h), Float(r.amount24h),
            Float(r.distinctDevices24h), Float(r.distinctDevices7d), Float(r.distinctIps24h), Float(r.distinctIps7d),
            Float(r.distinctInstruments24h), Float(r.distinctInstruments7d), Float(r.usersSharingDevice), Float(r.usersSharingIp),
            Float(r.failedPayments1h), Float(r.failedLogins1h), Float(r.amountZscore), r.firstPurchase ? 1 : 0, r.newDevice ? 1 : 0,
            r.ipCountryMismatch ? 1 : 0,
        ]
        out += [
            Float(u.lastOrderAmount), Float(ClockFields.hour(ms: v.nowMs)), Float(ClockFields.weekday(ms: v.nowMs)),
            u.gender == Gender.female.rawValue ? 1 : 0, u.gender == Gender.male.rawValue ? 1 : 0,
        ]
        for c in ChannelFamily.allCases.dropFirst() { out.append(u.lastChannel == c.rawValue ? 1 : 0) }
        for b in BrowserFamily.allCases.dropFirst() { out.append(u.lastBrowser == b.rawValue ? 1 : 0) }
        return out
    }

    /// Positions of `requested` in `names` (all of them when empty), or the unknown names.
    /// Where `segment_id` is among the names.
    static let segmentPosition = index["segment_id"]!

    static func resolve(_ requested: [String]) -> Result<[Int], UnknownNames> {
        if requested.isEmpty { return .success(Array(names.indices)) }
        var positions: [Int] = []
        var unknown: [String] = []
        for n in requested {
            if let i = index[n] { positions.append(i) } else { unknown.append(n) }
        }
        return unknown.isEmpty ? .success(positions) : .failure(UnknownNames(names: unknown))
    }

    struct UnknownNames: Error {
        var names: [String]
    }
}

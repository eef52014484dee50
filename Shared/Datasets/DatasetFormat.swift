import DataStructures
import Foundation
public import Wire

/// Turns rows of the public datasets Persona is evaluated on into events. Every event id is
/// derived from its source row (format, line number, a hash of the line), so importing the
/// same file twice appends nothing the second time.
public enum DatasetFormat: String, CaseIterable, Sendable {
    case taobao
    case onlineRetail = "online-retail"
    case cdnow
    case ratings
    case fraud
    case orders

    public struct Options: Sendable {
        public var withLabels = true
        public init(withLabels: Bool = true) {
            self.withLabels = withLabels
        }
    }

    /// What became of the rows that produced no event.
    public struct Skips: Sendable {
        public var byReason: [String: Int] = [:]
        public init() {}
        mutating func skip(_ reason: String) { byReason[reason, default: 0] += 1 }
    }

    /// Converts the file's lines into events, in file order. `lines` has no line breaks;
    /// `header` lines are skipped.
    public func events(lines: [Substring], options: Options = Options(), skips: inout Skips) -> [Event] {
        switch self {
        case .taobao: return taobao(lines, &skips)
        case .onlineRetail: return onlineRetail(lines, &skips)
        case .cdnow: return cdnow(lines, &skips)
        case .ratings: return ratings(lines, &skips)
        case .fraud: return fraud(lines, options, &skips)
        case .orders: return orders(lines, &skips)
        }
    }

    /// Unix seconds as milliseconds, for times from 1970 to the end of 9999 (nil otherwise:
    /// a garbled number would overflow, and no shop's event is dated there).
    static func milliseconds(unixSeconds s: Int64) -> Int64? {
        (0...253_402_300_799).contains(s) ? s * 1000 : nil
    }

    /// A parsed date as milliseconds, for dates from 1970 to the end of 9999 (nil otherwise:
    /// a lenient parser takes years of any length).
    static func milliseconds(_ date: Date) -> Int64? {
        let s = date.timeIntervalSince1970
        return (0...253_402_300_799).contains(s) ? Int64(s * 1000) : nil
    }

    private func id(_ line: Int, _ text: Substring, _ suffix: String = "") -> String {
        "\(rawValue):\(line + 1):\(String(StableHash.fnv1a(text), radix: 16))\(suffix)"
    }

    private func event(_ kind: EventKind, _ id: String, user: Int64, at: Int64) -> Event {
        var e = Event()
        e.eventId = id
        e.kind = kind
        e.userId = user
        e.timestampMs = at
        e.channel = "import"
        return e
    }

    // MARK: A shop's orders: user_id,order_id,unix seconds,item_id,total[,coupon_code,discount]

    private func orders(_ lines: [Substring], _ skips: inout Skips) -> [Event] {
        var out: [Event] = []
        for (n, line) in lines.enumerated() where !line.isEmpty && !line.hasPrefix("user_id") {
            let f = CSV.fields(line)
            guard f.count == 5 || f.count == 7, let user = Int64(f[0]), let seconds = Int64(f[2]), let item = Int64(f[3]),
                let total = Double(f[4]), !f[1].isEmpty
            else {
                skips.skip("unparsable row")
                continue
            }
            var e = event(.purchase, id(n, line), user: user, at: seconds * 1000)
            var order = Order()
            order.orderId = f[1]
            var l = OrderLine()
            (l.itemId, l.quantity, l.unitPrice) = (item, 1, total)
            order.lines = [l]
            order.total = total
            if f.count == 7 { (order.couponCode, order.discount) = (f[5], Double(f[6]) ?? 0) }
            e.order = order
            out.append(e)
        }
        return out
    }

    // MARK: Taobao UserBehavior: user,item,category,behavior(pv|cart|fav|buy),unix seconds

    private func taobao(_ lines: [Substring], _ skips: inout Skips) -> [Event] {
        var out: [Event] = []
        out.reserveCapacity(lines.count)
        for (n, line) in lines.enumerated() where !line.isEmpty {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            guard f.count == 5, let user = Int64(f[0]), let item = Int64(f[1]), let category = Int64(f[2]), let s = Int64(f[4]) else {
                skips.skip("unparsable row")
                continue
            }
            guard let ms = Self.milliseconds(unixSeconds: s) else {
                skips.skip("time out of range")
                continue
            }
            let kind: EventKind
            switch f[3] {
            case "pv": kind = .view
            case "cart": kind = .addToCart
            case "fav": kind = .favorite
            case "buy": kind = .purchase
            default:
                skips.skip("unknown behavior")
                continue
            }
            var e = event(kind, id(n, line), user: user, at: ms)
            e.itemId = item
            e.categoryId = category
            if kind == .purchase {
                var order = Order()
                order.orderId = "taobao-\(n + 1)"
                var l = OrderLine()
                l.itemId = item
                l.categoryId = category
                l.quantity = 1
                order.lines = [l]
                e.order = order
            }
            out.append(e)
        }
        return out
    }

    // MARK: UCI Online Retail: one purchase per invoice, refunds for cancellations

    private func onlineRetail(_ lines: [Substring], _ skips: inout Skips) -> [Event] {
        var out: [Event] = []
        var seenItems = Set<String>()
        var current: (invoice: String, first: Int, rows: [[String]])?
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_GB_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "dd/MM/yyyy HH:mm"
        // The eleven-month file writes its dates the ISO way.
        let isoFormatter = DateFormatter()
        isoFormatter.locale = formatter.locale
        isoFormatter.timeZone = formatter.timeZone
        isoFormatter.dateFormat = "yyyy-MM-dd HH:mm:ss"

        func flush() {
            guard let c = current else { return }
            current = nil
            let first = c.rows[0]
            guard let user = Int64(first[6].split(separator: ".").first ?? "") else {
                skips.byReason["row without customer id", default: 0] += c.rows.count
                return
            }
            guard let date = formatter.date(from: first[4]) ?? isoFormatter.date(from: first[4]) else {
                skips.byReason["unparsable date", default: 0] += c.rows.count
                return
            }
            guard let at = Self.milliseconds(date) else {
                skips.byReason["time out of range", default: 0] += c.rows.count
                return
            }
            for row in c.rows where !seenItems.contains(row[1]) {
                seenItems.insert(row[1])
                var e = event(.itemUpsert, "\(rawValue):item:\(row[1])", user: 0, at: at)
                var item = ItemUpsert()
                item.itemId = Self.itemID(row[1])
                item.title = row[2]
                item.price = Double(row[5]) ?? 0
                item.currency = "GBP"
                item.tags = [row[1]]
                e.item = item
                out.append(e)
            }
            let text = lines[c.first]
            if c.invoice.hasPrefix("C") {
                for (k, row) in c.rows.enumerated() {
                    var e = event(.refund, id(c.first + k, lines[c.first + k]), user: user, at: at)
                    var r = Refund()
                    r.orderId = String(c.invoice.dropFirst())
                    r.itemId = Self.itemID(row[1])
                    // A cancellation's quantity is negative; its refund counts it positive.
                    let quantity = Int32(clamping: Int(row[3]) ?? 0)
                    r.quantity = quantity == .min ? .max : -quantity
                    r.amount = Double(r.quantity) * (Double(row[5]) ?? 0)
                    r.reason = "cancelled"
                    e.refund = r
                    out.append(e)
                }
                return
            }
            var e = event(.purchase, id(c.first, text, ":invoice"), user: user, at: at)
            var order = Order()
            order.orderId = c.invoice
            order.currency = "GBP"
            order.lines = c.rows.map { row in
                var l = OrderLine()
                l.itemId = Self.itemID(row[1])
                l.quantity = Int32(clamping: Int(row[3]) ?? 0)
                l.unitPrice = Double(row[5]) ?? .nan
                return l
            }
            order.total = order.lines.reduce(0) { $0 + Double($1.quantity) * $1.unitPrice }
            e.order = order
            out.append(e)
        }

        for (n, line) in lines.enumerated() where !line.isEmpty && !line.hasPrefix("InvoiceNo") {
            let f = CSV.fields(line)
            guard f.count == 8 else {
                skips.skip("unparsable row")
                continue
            }
            if current?.invoice != f[0] {
                flush()
                current = (f[0], n, [])
            }
            current!.rows.append(f)
        }
        flush()
        return out
    }

    /// Stock codes are alphanumeric; items need positive integer ids: a stable hash.
    static func itemID(_ code: String) -> Int64 {
        Int64(StableHash.fnv1a(code) >> 2) | 1
    }

    // MARK: CDNOW: customer date(YYYYMMDD) cds dollars, whitespace separated

    private func cdnow(_ lines: [Substring], _ skips: inout Skips) -> [Event] {
        var out: [Event] = []
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for (n, line) in lines.enumerated() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if f.isEmpty || f[0] == "customer_id" { continue }
            guard f.count == 4, let user = Int64(f[0]), let day = Int(f[1]), (1970_01_01...9999_12_31).contains(day),
                let cds = Int32(f[2]), let dollars = Double(f[3]),
                let date = calendar.date(from: DateComponents(year: day / 10000, month: day / 100 % 100, day: day % 100))
            else {
                skips.skip("unparsable row")
                continue
            }
            guard let at = Self.milliseconds(date) else {
                skips.skip("time out of range")
                continue
            }
            var e = event(.purchase, id(n, line), user: user, at: at)
            var order = Order()
            order.orderId = "cdnow-\(n + 1)"
            order.currency = "USD"
            order.total = dollars
            var l = OrderLine()
            l.itemId = 1  // CDNOW's log does not say which CDs
            l.quantity = cds
            l.unitPrice = cds > 0 ? dollars / Double(cds) : dollars
            order.lines = [l]
            e.order = order
            out.append(e)
        }
        return out
    }

    // MARK: MovieLens-style ratings: user::item::rating::unix seconds

    private func ratings(_ lines: [Substring], _ skips: inout Skips) -> [Event] {
        var out: [Event] = []
        for (n, line) in lines.enumerated() where !line.isEmpty {
            let f = line.components(separatedBy: "::")
            guard f.count == 4, let user = Int64(f[0]), let item = Int64(f[1]), let rating = Double(f[2]),
                let s = Int64(f[3].trimmingCharacters(in: .whitespaces))
            else {
                skips.skip("unparsable row")
                continue
            }
            guard let ms = Self.milliseconds(unixSeconds: s) else {
                skips.skip("time out of range")
                continue
            }
            guard (-1000...1000).contains(rating) else {
                skips.skip("rating out of range")
                continue
            }
            var e = event(.review, id(n, line), user: user, at: ms)
            e.itemId = item
            var r = Review()
            r.itemId = item
            r.rating = Int32(rating.rounded())
            e.review = r
            out.append(e)
        }
        return out
    }

    // MARK: Fraud case: register + profile + purchase (+ label) per row

    private func fraud(_ lines: [Substring], _ options: Options, _ skips: inout Skips) -> [Event] {
        var out: [Event] = []
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "M/d/yyyy H:mm"
        for (n, line) in lines.enumerated() where !line.isEmpty && !line.hasPrefix("user_id") {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 11, let user = Int64(f[0]), let signup = formatter.date(from: f[1]), let purchase = formatter.date(from: f[2]),
                let value = Double(f[3]), let age = Int32(f[8]), let ipNumber = Double(f[9])
            else {
                skips.skip("unparsable row")
                continue
            }
            // The sheet wrote IPv4 addresses as decimals; anything else is not an address.
            guard (0...4_294_967_295).contains(ipNumber) else {
                skips.skip("ip address out of range")
                continue
            }
            let ip = UInt32(ipNumber)
            let dotted = "\(ip >> 24).\(ip >> 16 & 255).\(ip >> 8 & 255).\(ip & 255)"
            guard let signupMs = Self.milliseconds(signup), let purchaseMs = Self.milliseconds(purchase) else {
                skips.skip("time out of range")
                continue
            }

            var register = event(.register, id(n, line, ":register"), user: user, at: signupMs)
            register.deviceId = f[4]
            register.ip = dotted
            register.channel = f[5].lowercased()
            register.userAgent = f[6]
            register.register = Register()
            out.append(register)

            var profile = event(.profileUpdate, id(n, line, ":profile"), user: user, at: signupMs)
            var p = ProfileUpdate()
            p.age = age
            p.gender = f[7] == "F" ? .female : f[7] == "M" ? .male : .unspecified
            profile.profile = p
            out.append(profile)

            var buy = event(.purchase, id(n, line, ":purchase"), user: user, at: purchaseMs)
            buy.deviceId = f[4]
            buy.ip = dotted
            buy.channel = f[5].lowercased()
            buy.userAgent = f[6]
            var order = Order()
            order.orderId = "fraud-\(user)"
            order.currency = "USD"
            order.total = value
            var l = OrderLine()
            l.itemId = 1
            l.quantity = 1
            l.unitPrice = value
            order.lines = [l]
            buy.order = order
            out.append(buy)

            if options.withLabels, let label = Int(f[10]) {
                var e = event(.label, id(n, line, ":label"), user: user, at: purchaseMs + 1)
                var lab = Label()
                lab.orderId = order.orderId
                lab.kind = label == 1 ? .confirmedFraud : .legitimate
                lab.source = "dataset"
                e.label = lab
                out.append(e)
            }
        }
        return out
    }
}

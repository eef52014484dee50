import Foundation
public import Wire

/// Checks one event against the rules of its kind and normalises its strings (trimmed,
/// Unicode NFC, currencies upper case, channels lower case). A rejected event gets a typed
/// reason and a human-readable detail; the rest of its batch is unaffected.
public struct EventValidator: Sendable {
    public struct Rules: Sendable {
        /// Events older than this are refused (historical imports such as CDNOW's 1997 log pass).
        public var timestampFloorMs: Int64
        /// How far in the future an event's clock may be.
        public var maxClockSkewMs: Int64
        public var maxIdLength: Int
        public var maxTextLength: Int
        public var maxShortTextLength: Int
        public var maxQuantity: Int32
        public var maxListLength: Int

        public static var defaults: Rules {
            Rules(
                timestampFloorMs: 631_152_000_000,  // 1990-01-01T00:00:00Z
                maxClockSkewMs: 5 * 60 * 1000, maxIdLength: 128, maxTextLength: 10_000, maxShortTextLength: 1_000,
                maxQuantity: 10_000, maxListLength: 1_000)
        }
    }

    public struct Rejection: Error, Hashable, Sendable {
        public var reason: RejectReason
        public var detail: String
    }

    public let rules: Rules

    public init(rules: Rules = .defaults) {
        self.rules = rules
    }

    /// The normalised event, or why it is refused. `nowMs` is the ingest clock.
    public func validate(_ event: Event, nowMs: Int64) -> Result<Event, Rejection> {
        verdict { try check(normalised(event), nowMs: nowMs) }
    }

    /// The outcome of checks that throw `Rejection`s.
    private func verdict<T>(_ checks: () throws -> T) -> Result<T, Rejection> {
        do {
            return .success(try checks())
        } catch let rejection as Rejection {
            return .failure(rejection)
        } catch {
            return .failure(Rejection(reason: .missingField, detail: "\(error)"))
        }
    }

    private func reject(_ reason: RejectReason, _ detail: String) -> Rejection {
        Rejection(reason: reason, detail: detail)
    }

    private func check(_ e: Event, nowMs: Int64) throws -> Event {
        try checkCommon(
            eventIdBytes: e.eventId.utf8.count, kind: e.kind, userId: e.userId, timestampMs: e.timestampMs,
            textBytes: (e.sessionId.utf8.count, e.deviceId.utf8.count, e.ip.utf8.count, e.channel.utf8.count), nowMs: nowMs)
        try checkKind(e)
        return e
    }

    /// The rules every kind shares. `textBytes`: session_id, device_id, ip, channel.
    private func checkCommon(
        eventIdBytes: Int, kind: EventKind, userId: Int64, timestampMs: Int64, textBytes: (Int, Int, Int, Int), nowMs: Int64
    ) throws {
        guard eventIdBytes > 0 else { throw reject(.missingEventId, "event_id is empty") }
        guard eventIdBytes <= rules.maxIdLength else { throw reject(.textTooLong, "event_id longer than \(rules.maxIdLength) bytes") }
        guard kind.name != nil, kind != .unspecified else { throw reject(.unknownKind, "kind \(kind.rawValue) is not an event kind") }
        if kind != .itemUpsert && kind != .audience && kind != .campaign {
            guard userId > 0 else { throw reject(.invalidUser, "user_id must be positive, got \(userId)") }
        } else {
            guard userId >= 0 else { throw reject(.invalidUser, "user_id must not be negative, got \(userId)") }
        }
        guard timestampMs <= nowMs + rules.maxClockSkewMs else {
            throw reject(.timestampInFuture, "timestamp \(timestampMs) is \((timestampMs - nowMs) / 1000) s in the future")
        }
        guard timestampMs >= rules.timestampFloorMs else {
            throw reject(.timestampTooOld, "timestamp \(timestampMs) is before the floor \(rules.timestampFloorMs)")
        }
        guard max(textBytes.0, textBytes.1, textBytes.2, textBytes.3) <= rules.maxShortTextLength else {
            let counts = [("session_id", textBytes.0), ("device_id", textBytes.1), ("ip", textBytes.2), ("channel", textBytes.3)]
            let name = counts.first { $0.1 > rules.maxShortTextLength }!.0
            throw reject(.textTooLong, "\(name) longer than \(rules.maxShortTextLength) bytes")
        }
    }

    /// view, click, add_to_cart, remove_from_cart and favorite: an item, a sane quantity.
    private func checkItemAction(itemId: Int64, quantity: Int32, kind: EventKind) throws {
        try require(itemId > 0, "item_id", kind)
        try self.quantity(quantity, "quantity", allowZero: true)
    }

    /// The fast path for the bulk of traffic: item actions (view, click, add_to_cart,
    /// remove_from_cart, favorite) with no sub-message and strings that normalising would
    /// leave as they are, checked in place in their batch by the same rules as
    /// `validate(_:nowMs:)`. Nil when event `i` does not qualify: then
    /// `validate` its `Event` value.
    public func validatePlain(_ batch: EventBatch, _ i: Int, nowMs: Int64) -> Result<Void, Rejection>? {
        let h = batch.header(i)
        guard !h.hasDetail else { return nil }
        switch h.kind {
        case .view, .click, .addToCart, .removeFromCart, .favorite: break
        default: return nil
        }
        func normalLength(_ field: EventBatch.Text, lowercase: Bool = false) -> Int? {
            batch.withText(i, field) { Self.isNormal($0, lowercase: lowercase) ? $0.count : nil }
        }
        guard let id = normalLength(.eventID), let session = normalLength(.sessionID), let device = normalLength(.deviceID),
            let ip = normalLength(.ip, lowercase: true), let channel = normalLength(.channel, lowercase: true)
        else { return nil }
        return verdict {
            try checkCommon(
                eventIdBytes: id, kind: h.kind, userId: h.userId, timestampMs: h.timestampMs,
                textBytes: (session, device, ip, channel), nowMs: nowMs)
            try checkItemAction(itemId: h.itemId, quantity: h.quantity, kind: h.kind)
        }
    }

    /// Whether normalising leaves these UTF-8 bytes unchanged: empty, or printable ASCII
    /// with no space at either end (and, for `lowercase` fields, no capital letter).
    static func isNormal(_ bytes: UnsafeRawBufferPointer, lowercase: Bool) -> Bool {
        guard let first = bytes.first, let last = bytes.last else { return true }
        guard first > 0x20, last > 0x20, first < 0x7F, last < 0x7F else { return false }
        if lowercase { return bytes.allSatisfy { $0 < 0x80 && !(0x41...0x5A).contains($0) } }
        return bytes.allSatisfy { $0 < 0x80 }
    }

    private func require(_ condition: Bool, _ field: String, _ kind: EventKind) throws {
        guard condition else { throw reject(.missingField, "\(kind) needs \(field)") }
    }

    private func amount(_ value: Double, _ field: String) throws {
        guard value.isFinite, value >= 0 else {
            throw reject(.invalidAmount, "\(field) must be a finite, non-negative amount, got \(value)")
        }
    }

    private func quantity(_ value: Int32, _ field: String, allowZero: Bool) throws {
        guard value <= rules.maxQuantity, value > 0 || (allowZero && value == 0) else {
            throw reject(.invalidQuantity, "\(field) must be \(allowZero ? 0 : 1)...\(rules.maxQuantity), got \(value)")
        }
    }

    private func text(_ value: String, _ field: String, limit: Int) throws {
        guard value.utf8.count <= limit else { throw reject(.textTooLong, "\(field) longer than \(limit) bytes") }
    }

    private func list(_ count: Int, _ field: String) throws {
        guard count <= rules.maxListLength else { throw reject(.textTooLong, "\(field) has more than \(rules.maxListLength) entries") }
    }

    private func checkKind(_ e: Event) throws {
        switch e.kind {
        case .view, .click, .addToCart, .removeFromCart, .favorite:
            try checkItemAction(itemId: e.itemId, quantity: e.quantity, kind: e.kind)
        case .search:
            try require(!(e.search?.query.isEmpty ?? true), "search.query", e.kind)
            try text(e.search!.query, "search.query", limit: rules.maxShortTextLength)
        case .purchase:
            guard let order = e.order else { throw reject(.missingField, "purchase needs order") }
            try require(!order.orderId.isEmpty, "order.order_id", e.kind)
            try require(!order.lines.isEmpty, "order.lines", e.kind)
            try list(order.lines.count, "order.lines")
            try amount(order.total, "order.total")
            try amount(order.discount, "order.discount")
            try text(order.couponCode, "order.coupon_code", limit: rules.maxShortTextLength)
            for line in order.lines {
                try require(line.itemId > 0, "order.lines.item_id", e.kind)
                try quantity(line.quantity, "order.lines.quantity", allowZero: false)
                try amount(line.unitPrice, "order.lines.unit_price")
            }
        case .payment:
            guard let p = e.payment else { throw reject(.missingField, "payment needs payment") }
            try require(!p.orderId.isEmpty, "payment.order_id", e.kind)
            try amount(p.amount, "payment.amount")
        case .refund:
            guard let r = e.refund else { throw reject(.missingField, "refund needs refund") }
            try require(!r.orderId.isEmpty, "refund.order_id", e.kind)
            try amount(r.amount, "refund.amount")
            try quantity(r.quantity, "refund.quantity", allowZero: true)
        case .review:
            guard let r = e.review else { throw reject(.missingField, "review needs review") }
            try require(r.itemId > 0, "review.item_id", e.kind)
            guard (1...5).contains(r.rating) else { throw reject(.ratingOutOfRange, "rating must be 1...5, got \(r.rating)") }
            try text(r.text, "review.text", limit: rules.maxTextLength)
        case .login:
            try require(e.login != nil, "login", e.kind)
        case .register:
            if let r = e.register { try text(r.email, "register.email", limit: rules.maxShortTextLength) }
        case .profileUpdate:
            guard let p = e.profile else { throw reject(.missingField, "profile_update needs profile") }
            guard (0...150).contains(p.age) else { throw reject(.missingField, "profile.age must be 0...150, got \(p.age)") }
            try list(p.interests.count, "profile.interests")
        case .itemUpsert:
            guard let item = e.item else { throw reject(.missingField, "item_upsert needs item") }
            try require(item.itemId > 0, "item.item_id", e.kind)
            try amount(item.price, "item.price")
            try text(item.title, "item.title", limit: rules.maxShortTextLength)
            try list(item.tags.count, "item.tags")
            guard item.stock >= 0 else { throw reject(.invalidQuantity, "item.stock must not be negative, got \(item.stock)") }
        case .impression:
            guard let i = e.impression else { throw reject(.missingField, "impression needs impression") }
            try require(!i.itemIds.isEmpty, "impression.item_ids", e.kind)
            try list(i.itemIds.count, "impression.item_ids")
        case .label:
            guard let l = e.label else { throw reject(.missingField, "label needs label") }
            try require(l.kind != .unspecified && l.kind.name != nil, "label.kind", e.kind)
        case .audience:
            guard let a = e.audience else { throw reject(.missingField, "audience needs audience") }
            guard Names.valid(a.name) else { throw reject(.missingField, "audience.name is \(Names.rule)") }
            try require(a.deleted || !a.expression.isEmpty, "audience.expression", e.kind)
            try text(a.expression, "audience.expression", limit: rules.maxTextLength)
            try text(a.description, "audience.description", limit: rules.maxTextLength)
            try text(a.definedBy, "audience.defined_by", limit: rules.maxShortTextLength)
        case .campaign:
            guard let c = e.campaign else { throw reject(.missingField, "campaign needs campaign") }
            guard Names.valid(c.name) else { throw reject(.missingField, "campaign.name is \(Names.rule)") }
            if !c.deleted {
                guard Names.valid(c.audience) else { throw reject(.missingField, "campaign.audience is \(Names.rule)") }
                guard c.endMs > c.startMs, c.startMs > 0 else { throw reject(.missingField, "campaign needs start_ms before end_ms") }
                guard c.controlShare > 0, c.controlShare < 1 else {
                    throw reject(.missingField, "campaign.control_share must be above 0 and below 1, got \(c.controlShare)")
                }
            }
            try text(c.description, "campaign.description", limit: rules.maxTextLength)
            try text(c.definedBy, "campaign.defined_by", limit: rules.maxShortTextLength)
            if let o = c.offer {
                try text(o.couponCode, "campaign.offer.coupon_code", limit: rules.maxShortTextLength)
                try list(o.boostItems.count + o.boostCategories.count, "campaign.offer boosts")
                try amount(o.discountAmount, "campaign.offer.discount_amount")
                try amount(o.costPerSend, "campaign.offer.cost_per_send")
                guard (0...1).contains(o.discountShare), o.boostFactor.isFinite, o.boostFactor >= 0 else {
                    throw reject(.invalidAmount, "campaign.offer's discount_share must be 0...1 and boost_factor not negative")
                }
            }
        case .campaignSent:
            guard let c = e.campaignSent else { throw reject(.missingField, "campaign_sent needs campaign_sent") }
            guard Names.valid(c.campaign) else { throw reject(.missingField, "campaign_sent.campaign is \(Names.rule)") }
        case .erasure:
            // Only Ingest/Erase (admin) writes erasures: a producer cannot erase a user.
            throw reject(.unknownKind, "erasure events are written by Ingest/Erase (admin), not appended")
        default:
            throw reject(.unknownKind, "kind \(e.kind.rawValue) is not an event kind")
        }
    }

    private func clean(_ s: String) -> String {
        // Fast path for the common case: ASCII (already NFC) with nothing to trim.
        var s = s
        if s.withUTF8({ Self.isNormal(UnsafeRawBufferPointer($0), lowercase: false) }) { return s }
        let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.precomposedStringWithCanonicalMapping
    }

    /// Trimmed, NFC, conventional case.
    func normalised(_ event: Event) -> Event {
        var e = event
        e.eventId = clean(e.eventId)
        e.sessionId = clean(e.sessionId)
        e.deviceId = clean(e.deviceId)
        e.ip = clean(e.ip).lowercased()
        e.channel = clean(e.channel).lowercased()
        if var o = e.order { o.orderId = clean(o.orderId); o.currency = clean(o.currency).uppercased(); e.order = o }
        if var p = e.payment {
            p.orderId = clean(p.orderId); p.method = clean(p.method).lowercased(); p.currency = clean(p.currency).uppercased()
            p.instrument = clean(p.instrument); e.payment = p
        }
        if var r = e.refund { r.orderId = clean(r.orderId); e.refund = r }
        if var r = e.review { r.text = clean(r.text); e.review = r }
        if var s = e.search { s.query = clean(s.query); e.search = s }
        if var r = e.register { r.email = clean(r.email).lowercased(); e.register = r }
        if var p = e.profile { p.region = clean(p.region); p.interests = p.interests.map(clean).filter { !$0.isEmpty }; e.profile = p }
        if var i = e.item {
            i.brand = clean(i.brand); i.title = clean(i.title); i.currency = clean(i.currency).uppercased()
            i.tags = i.tags.map(clean).filter { !$0.isEmpty }; e.item = i
        }
        if var l = e.label { l.orderId = clean(l.orderId); e.label = l }
        return e
    }
}

import Foundation
import RPC
import ServiceKit
import Uplift
import Wire

/// Campaigns (docs/CAMPAIGNS.md): defined and reached through the log, measured from what
/// the log says the users reached did. The book is folded from the log's campaign, campaign
/// sent, purchase and erasure events, read from the start at every start of the service.
extension ModelService {
    /// Waits until the book has read what the log held at the call.
    func awaitCampaigns() async throws {
        let ends = try await consumer.endOffsets(timeout: .seconds(5))
        let deadline = ContinuousClock.now + .seconds(30)
        while !campaigns.caughtUp(to: ends) {
            guard ContinuousClock.now < deadline else { throw RPCError(.unavailable, "the campaigns are still being read from the log") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func defineCampaign(_ request: DefineCampaignRequest) async throws -> DefineCampaignResponse {
        var definition = request.campaign ?? CampaignDefinition()
        guard Names.valid(definition.name) else {
            metrics.badRequest("invalid_campaign")
            throw RPCError(.invalidArgument, "a campaign's name is \(Names.rule)")
        }
        try await awaitCampaigns()
        var response = DefineCampaignResponse()
        if request.remove {
            guard !campaigns.campaigns(named: definition.name).isEmpty else {
                throw RPCError(.notFound, "no campaign '\(definition.name)'")
            }
            definition = CampaignDefinition()
            definition.name = request.campaign?.name ?? ""
            definition.deleted = true
        } else {
            response.errors = try await problems(definition)
            if !response.errors.isEmpty { metrics.badRequest("invalid_campaign") }
        }
        if request.validateOnly || !response.errors.isEmpty { return response }
        definition.definedBy = ActingFor.current ?? RPCContext.current?.caller?.token ?? ""
        let now = context.clock.nowMs
        var e = Event()
        e.eventId = "campaign:\(definition.name):\(now):\(UInt32.random(in: 0...UInt32.max))"
        e.kind = .campaign
        e.timestampMs = now
        e.campaign = definition
        let status = try await consumer.ingest.appendOne(e, what: "campaign")
        try await awaitCampaigns()
        context.logger.info("\(request.remove ? "deleted" : "defined") campaign \(definition.name) at offset \(status.offset)")
        RPCContext.current?.audit(
            request.remove
                ? "deleted campaign \(definition.name)"
                : "defined campaign \(definition.name) on audience \(definition.audience), control \(definition.controlShare)")
        return response
    }

    /// What keeps a definition from being stored, in words (none: it holds).
    private func problems(_ d: CampaignDefinition) async throws -> [String] {
        var errors: [String] = []
        if !Names.valid(d.audience) {
            errors.append("the audience's name is \(Names.rule)")
        } else {
            var r = ListAudiencesRequest()
            r.name = d.audience
            do {
                _ = try await feature.listAudiences(r, timeout: .seconds(10))
            } catch let error as RPCError where error.code == .notFound {
                errors.append("no audience '\(d.audience)' (persona audience define)")
            }
        }
        if d.startMs <= 0 || d.endMs <= d.startMs { errors.append("the campaign needs a start before its end") }
        if !(d.controlShare > 0 && d.controlShare < 1) {
            errors.append("the control share must be above 0 and below 1, got \(d.controlShare)")
        }
        if d.description.utf8.count > 4096 { errors.append("the description is at most 4096 bytes") }
        let offer = d.offer ?? CampaignOffer()
        let boosts = !offer.boostItems.isEmpty || !offer.boostCategories.isEmpty
        if offer.couponCode.isEmpty && !boosts { errors.append("the offer needs a coupon code or items or categories to boost") }
        if offer.couponCode.utf8.count > 64 { errors.append("a coupon code is at most 64 bytes") }
        if !(0...1).contains(offer.discountShare) { errors.append("the discount share must be 0...1, got \(offer.discountShare)") }
        if !offer.discountAmount.isFinite || offer.discountAmount < 0 || !offer.costPerSend.isFinite || offer.costPerSend < 0 {
            errors.append("the discount amount and the cost per send must not be negative")
        }
        if boosts && !(offer.boostFactor > 0 && offer.boostFactor <= 100) {
            errors.append("a boost needs a factor above 0 and at most 100, got \(offer.boostFactor)")
        }
        if offer.boostItems.count + offer.boostCategories.count > 1000 { errors.append("at most 1000 items and categories to boost") }
        if !d.upliftModel.isEmpty {
            if !(d.upliftShare > 0 && d.upliftShare <= 1) { errors.append("the uplift share must be above 0 and at most 1") }
            if let v = registry.published[d.upliftModel] {
                // The registry's entry says the kind; the artifact is read at launch.
                if registry.list(name: d.upliftModel).first(where: { $0.version == v })?.kind != .uplift {
                    errors.append("model '\(d.upliftModel)' is not an uplift model")
                }
            } else {
                errors.append("no published model '\(d.upliftModel)' (persona train uplift --param campaign=NAME)")
            }
        }
        return errors
    }

    func listCampaigns(_ request: ListCampaignsRequest) async throws -> ListCampaignsResponse {
        try await awaitCampaigns()
        let found = campaigns.campaigns(named: request.name)
        if !request.name.isEmpty && found.isEmpty { throw RPCError(.notFound, "no campaign '\(request.name)'") }
        var response = ListCampaignsResponse()
        response.campaigns = found.map(info)
        return response
    }

    private func info(_ c: CampaignBook.Campaign) -> CampaignInfo {
        let reached = campaigns.reached(c.definition.name)
        var info = CampaignInfo()
        info.definition = c.definition
        info.definedMs = c.definedMs
        info.controls = UInt32(reached.values.filter(\.control).count)
        info.treated = UInt32(reached.count) - info.controls
        info.launchedMs = reached.values.map(\.atMs).min() ?? 0
        let code = c.definition.offer?.couponCode ?? ""
        info.redemptions = code.isEmpty ? 0 : UInt32(campaigns.ordersCarrying(code))
        return info
    }

    func launchCampaign(_ request: LaunchCampaignRequest) async throws -> LaunchCampaignResponse {
        try await awaitCampaigns()
        guard let campaign = campaigns.campaigns(named: request.name).first?.definition else {
            throw RPCError(.notFound, "no campaign '\(request.name)'")
        }
        let now = context.clock.nowMs
        guard now < campaign.endMs else { throw RPCError(.failedPrecondition, "campaign '\(request.name)' has ended") }
        var members: [Int64] = []
        var page = AudienceMembersRequest()
        page.name = campaign.audience
        page.pageSize = 10_000
        while true {
            let answer = try await feature.audienceMembers(page, timeout: .seconds(60))
            members += answer.userIds
            if answer.nextPageToken.isEmpty { break }
            page.pageToken = answer.nextPageToken
        }
        var response = LaunchCampaignResponse()
        if !campaign.upliftModel.isEmpty {
            let kept = try await targeted(members, model: campaign.upliftModel, share: campaign.upliftShare)
            response.notTargeted = UInt32(members.count - kept.count)
            members = kept
        }
        let reached = campaigns.reached(campaign.name)
        var events: [Event] = []
        for user in members {
            guard reached[user] == nil else {
                response.already += 1
                continue
            }
            let control = ControlGroup.isControl(user: user, campaign: campaign.name, share: campaign.controlShare)
            if control { response.controls += 1 } else { response.treated += 1 }
            var e = Event()
            e.eventId = "campaign-sent:\(campaign.name):\(user)"
            e.kind = .campaignSent
            e.userId = user
            e.timestampMs = max(now, campaign.startMs)
            var sent = CampaignSent()
            sent.campaign = campaign.name
            sent.control = control
            e.campaignSent = sent
            events.append(e)
        }
        for start in stride(from: 0, to: events.count, by: 1000) {
            var append = AppendRequest()
            append.events = Array(events[start..<min(events.count, start + 1000)])
            let answer = try await consumer.ingest.call(IngestAPI.append, append, timeout: .seconds(30))
            if let refused = answer.statuses.first(where: { $0.code == .rejected }) {
                throw RPCError(.internal, "ingest refused a campaign_sent event: \(refused.detail)")
            }
        }
        try await awaitCampaigns()
        context.logger.info("launched \(campaign.name): \(response.treated) treated, \(response.controls) in control")
        RPCContext.current?.audit(
            "launched campaign \(campaign.name): \(response.treated) sent the offer, \(response.controls) held out in control")
        return response
    }

    /// The `share` of `users` with the highest predicted uplift under the published `model`.
    private func targeted(_ users: [Int64], model: String, share: Double) async throws -> [Int64] {
        guard let version = registry.published[model] else { throw RPCError(.failedPrecondition, "model '\(model)' is not published") }
        let (info, bytes) = try registryCall { try registry.artifact(model, version) }
        guard info.kind == .uplift else { throw RPCError(.failedPrecondition, "model '\(model)' is not an uplift model") }
        let artifact: UpliftArtifact
        do { artifact = try UpliftArtifact.decode(bytes) } catch { throw RPCError(.dataLoss, "model '\(model)' v\(version): \(error)") }
        var scored: [(user: Int64, uplift: Float)] = []
        for start in stride(from: 0, to: users.count, by: 1000) {
            var r = GetFeaturesRequest()
            r.userIds = Array(users[start..<min(users.count, start + 1000)])
            r.names = artifact.features
            for row in try await feature.features(r, timeout: .seconds(30)).rows where row.found {
                scored.append((row.userId, artifact.model.uplift(row.values)))
            }
        }
        let keep = Int((Double(scored.count) * share).rounded(.up))
        return scored.sorted { $0.uplift != $1.uplift ? $0.uplift > $1.uplift : $0.user < $1.user }.prefix(keep).map(\.user)
    }

    func campaignReport(_ request: CampaignReportRequest) async throws -> CampaignReport {
        try await awaitCampaigns()
        guard let campaign = campaigns.campaigns(named: request.name).first else {
            throw RPCError(.notFound, "no campaign '\(request.name)'")
        }
        let d = campaign.definition
        let reached = campaigns.reached(d.name)
        let purchases = campaigns.purchases(of: reached.keys)
        let day: Int64 = 86_400_000
        let afterEnd = d.endMs + (d.afterDays > 0 ? Int64(d.afterDays) * day : d.endMs - d.startMs)
        let bootstrap = request.bootstrap == 0 ? 1000 : min(Int(request.bootstrap), 10_000)
        var report = CampaignReport()
        report.campaign = info(campaign)
        report.measuredMs = context.clock.nowMs
        // The days after are measured once the window has ended.
        let periods = [("window", d.startMs, d.endMs)] + (report.measuredMs > d.endMs ? [("after", d.endMs, afterEnd)] : [])
        for (name, from, to) in periods {
            let outcomes = CampaignOutcomes(reached: reached, purchases: purchases, offer: d.offer, from: from, to: to)
            let sends = name == "window" ? Double(outcomes.treatment.count) * (d.offer?.costPerSend ?? 0) : 0
            let m = CampaignMeasurement.measure(
                treatment: outcomes.treatment, control: outcomes.control, offerCost: outcomes.discounts + sends, bootstrap: bootstrap)
            var period = CampaignPeriod()
            period.name = name
            (period.fromMs, period.toMs) = (from, to)
            (period.treated, period.controls) = (UInt32(m.treated), UInt32(m.controls))
            (period.conversion, period.ordersPerUser) = (Self.effect(m.conversion), Self.effect(m.ordersPerUser))
            (period.revenuePerUser, period.incrementalRevenue) = (Self.effect(m.revenuePerUser), Self.effect(m.incrementalRevenue))
            (period.revenueBootstrapLow, period.revenueBootstrapHigh) = m.revenueBootstrap
            period.offerCost = m.offerCost
            period.redemptions = UInt32(outcomes.redemptions)
            period.cautions = m.cautions
            if report.measuredMs < to {
                period.cautions.insert("The period is still open (until \(Self.date(to))): its figures will change.", at: 0)
            }
            report.periods.append(period)
        }
        let last = min(afterEnd, report.measuredMs)
        let ends = Array(stride(from: d.startMs + day, through: max(d.startMs, last) + day - 1, by: Int(day)).prefix(400))
        let (t, c) = CampaignOutcomes.cumulativeConversion(reached: reached, purchases: purchases, from: d.startMs, ends: ends)
        let days = ends.indices.map { Double($0 + 1) }
        report.daily = [("treatment", t), ("control", c)].map { name, values in
            var curve = Curve()
            curve.name = name
            curve.x = days
            curve.y = values
            return curve
        }
        // The newest uplift model trained on this campaign, with its Qini curves.
        let uplift = registry.list().filter { m in m.kind == .uplift && m.params.contains { $0.key == "campaign" && $0.value == d.name } }
        if let latest = uplift.max(by: { $0.createdMs < $1.createdMs }),
            let evaluation = try? registry.report(latest.name, latest.version)
        {
            (report.upliftModel, report.upliftVersion) = (latest.name, latest.version)
            report.qini = evaluation.curves.filter { $0.name.hasPrefix("qini") }
            report.upliftMetrics = evaluation.metrics
        }
        return report
    }

    static func date(_ ms: Int64) -> String {
        Date(timeIntervalSince1970: Double(ms) / 1000).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
    }

    static func effect(_ e: Effect) -> CampaignEffect {
        var c = CampaignEffect()
        (c.treatment, c.control, c.difference) = (e.treatment, e.control, e.difference)
        (c.low, c.high, c.pValue, c.minimumDetectable) = (e.low, e.high, e.pValue, e.minimumDetectable)
        return c
    }
}

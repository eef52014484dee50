import ArgumentParser
import Charts
import Foundation
import RPC
import Wire

/// `persona campaign ...`: campaigns (docs/CAMPAIGNS.md): an audience, an offer, a window and
/// a control group; launched through the log, measured by the model service.
struct CampaignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign",
        abstract: "Define, launch and measure campaigns: an audience, an offer, a window and a randomised control group.",
        subcommands: [List.self, Define.self, Delete.self, Launch.self, Report.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Every campaign: its window, reach and redemptions.")

        @Argument(help: "Only this campaign.") var name = ""
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = ListCampaignsRequest()
            r.name = name
            let answer = try await endpoints.call("model") { try await $0.call(ModelAPI.listCampaigns, r, timeout: .seconds(40)) }
            print(
                Table.render(
                    header: ["CAMPAIGN", "AUDIENCE", "START", "END", "CONTROL", "TREATED", "CONTROLS", "REDEEMED", "OFFER"],
                    rows: answer.campaigns.map { c in
                        let d = c.definition ?? CampaignDefinition()
                        return [
                            d.name, d.audience, RiskText.time(d.startMs), RiskText.time(d.endMs),
                            String(format: "%.0f%%", d.controlShare * 100),
                            String(c.treated), String(c.controls), String(c.redemptions), CampaignText.offer(d.offer),
                        ]
                    }))
        }
    }

    struct Define: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "define", abstract: "Define a campaign, or replace its definition (its reached users keep their side).")

        @Argument(help: "The name: 1 to 64 of a-z, 0-9, '-' and '_'.") var name: String
        @Option(help: "The audience it reaches (persona audience define).") var audience: String
        @Option(help: "When it starts (ISO 8601 or ms since the epoch; default now).") var start: String?
        @Option(help: "When it ends.") var end: String
        @Option(help: "The share of the audience held out in the control group, chosen by a hash of user and campaign.")
        var control = 0.1
        @Option(help: "The coupon code an order carries when it redeems the offer.") var coupon = ""
        @Option(help: "The coupon's discount as a share of the order's total (0.1: 10%).") var discountShare = 0.0
        @Option(help: "The coupon's discount as an amount.") var discountAmount = 0.0
        @Option(name: .customLong("boost-item"), help: "An item recommend boosts for the treated users (repeatable).")
        var boostItems: [Int64] = []
        @Option(name: .customLong("boost-category"), help: "A category recommend boosts for the treated users (repeatable).")
        var boostCategories: [Int64] = []
        @Option(help: "The recommend surface of the boost (default: every surface).") var surface = ""
        @Option(help: "The factor the boosted items' scores are multiplied by.") var boostFactor = 2.0
        @Option(help: "What reaching one user costs (a message), added to the offer's cost.") var costPerSend = 0.0
        @Option(help: "Days after the end the report also measures (default: as long as the window).") var afterDays: UInt32 = 0
        @Option(help: "Reach only the audience's users this published uplift model ranks highest.") var upliftModel = ""
        @Option(help: "The share of the audience the uplift model keeps.") var upliftShare = 0.5
        @Option(help: "What it is for.") var description = ""
        @Flag(help: "Check the definition only.") var check = false
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var d = CampaignDefinition()
            (d.name, d.audience, d.description, d.controlShare, d.afterDays) = (name, audience, description, control, afterDays)
            d.startMs = try start.map(TrainCommand.time) ?? Int64(Date().timeIntervalSince1970 * 1000)
            d.endMs = try TrainCommand.time(end)
            var offer = CampaignOffer()
            (offer.couponCode, offer.discountShare, offer.discountAmount) = (coupon, discountShare, discountAmount)
            (offer.boostItems, offer.boostCategories, offer.surface) = (boostItems, boostCategories, surface)
            offer.boostFactor = boostItems.isEmpty && boostCategories.isEmpty ? 0 : boostFactor
            offer.costPerSend = costPerSend
            d.offer = offer
            if !upliftModel.isEmpty { (d.upliftModel, d.upliftShare) = (upliftModel, upliftShare) }
            var r = DefineCampaignRequest()
            (r.campaign, r.validateOnly) = (d, check)
            let answer = try await endpoints.call("model") { try await $0.call(ModelAPI.defineCampaign, r, timeout: .seconds(40)) }
            guard answer.errors.isEmpty else {
                for e in answer.errors { print(e) }
                throw ExitCode(1)
            }
            print("\(check ? "valid" : "defined") campaign \(name) on audience \(audience): \(CampaignText.offer(offer))")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a campaign.")

        @Argument(help: "The campaign.") var name: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = DefineCampaignRequest()
            var d = CampaignDefinition()
            d.name = name
            (r.campaign, r.remove) = (d, true)
            _ = try await endpoints.call("model") { try await $0.call(ModelAPI.defineCampaign, r, timeout: .seconds(40)) }
            print("deleted campaign \(name)")
        }
    }

    struct Launch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "launch",
            abstract:
                """
                Reach the campaign's audience as it is now: each member goes to control or treatment and a campaign_sent \
                event is appended; members reached before keep their side.
                """
        )

        @Argument(help: "The campaign.") var name: String
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = LaunchCampaignRequest()
            r.name = name
            let a = try await endpoints.call("model") { try await $0.call(ModelAPI.launchCampaign, r, timeout: .seconds(600)) }
            var line = "launched \(name): \(a.treated) sent the offer, \(a.controls) held out in control"
            if a.already > 0 { line += ", \(a.already) reached before" }
            if a.notTargeted > 0 { line += ", \(a.notTargeted) left out by the uplift model" }
            print(line)
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "report",
            abstract: "Measure a campaign, treatment against control over its window and after, and write the HTML report.")

        @Argument(help: "The campaign.") var name: String
        @Option(name: .shortAndLong, help: "Where to write it (default: campaign-NAME.html).") var output: String?
        @OptionGroup var endpoints: Endpoints

        func run() async throws {
            var r = CampaignReportRequest()
            r.name = name
            let report = try await endpoints.call("model") { try await $0.call(ModelAPI.campaignReport, r, timeout: .seconds(120)) }
            for p in report.periods {
                let c = p.conversion ?? CampaignEffect(), v = p.revenuePerUser ?? CampaignEffect()
                print(
                    """
                    \(p.name): \(p.treated) treated, \(p.controls) controls; conversion \(CampaignText.percent(c.treatment)) vs \
                    \(CampaignText.percent(c.control)), uplift \(CampaignText.points(c.difference)) \
                    [\(CampaignText.points(c.low)), \(CampaignText.points(c.high))], p = \(String(format: "%.3f", c.pValue)); \
                    revenue per user \(Charts.number(v.difference)) [\(Charts.number(v.low)), \(Charts.number(v.high))]
                    """)
                for caution in p.cautions { print("  ! \(caution)") }
            }
            let path = output ?? "campaign-\(name).html"
            let html = CampaignText.html(report)
            try html.write(toFile: path, atomically: true, encoding: .utf8)
            print("wrote \(path) (\(html.utf8.count) bytes)")
        }
    }
}

/// A campaign's offer and report as text and HTML.
enum CampaignText {
    static func offer(_ o: CampaignOffer?) -> String {
        guard let o else { return "-" }
        var parts: [String] = []
        if !o.couponCode.isEmpty {
            let discount =
                o.discountShare > 0
                ? String(format: "%.0f%% off", o.discountShare * 100) : o.discountAmount > 0 ? "\(Charts.number(o.discountAmount)) off" : ""
            parts.append("coupon \(o.couponCode)\(discount.isEmpty ? "" : " (\(discount))")")
        }
        if o.boostFactor > 0 {
            let what = o.boostItems.map { "item \($0)" } + o.boostCategories.map { "category \($0)" }
            parts.append(
                "boost x\(Charts.number(o.boostFactor)) of \(what.joined(separator: ", "))\(o.surface.isEmpty ? "" : " on \(o.surface)")")
        }
        return parts.isEmpty ? "-" : parts.joined(separator: "; ")
    }

    static func percent(_ v: Double) -> String { String(format: "%.2f%%", v * 100) }
    static func points(_ v: Double) -> String { String(format: "%+.2f pt", v * 100) }

    static func html(_ report: CampaignReport) -> String {
        let info = report.campaign ?? CampaignInfo()
        let d = info.definition ?? CampaignDefinition()
        func row(_ label: String, _ e: CampaignEffect?, _ format: (Double) -> String) -> String {
            let e = e ?? CampaignEffect()
            let cells = [
                label, format(e.treatment), format(e.control), format(e.difference), "[\(format(e.low)), \(format(e.high))]",
                String(format: "%.3f", e.pValue), format(e.minimumDetectable),
            ]
            return "<tr>" + cells.map { "<td>\(Charts.escape($0))</td>" }.joined() + "</tr>"
        }
        let periods = report.periods.map { p -> String in
            let v = p.revenuePerUser ?? CampaignEffect(), inc = p.incrementalRevenue ?? CampaignEffect()
            let roi = p.offerCost > 0 ? String(format: "%.2f", (inc.difference - p.offerCost) / p.offerCost) : "-"
            let cautions = p.cautions.map { "<li>\(Charts.escape($0))</li>" }.joined()
            let forest = Charts.intervalChart(
                title: "\(p.name == "window" ? "Window" : "After"): treatment minus control (95% interval)",
                rows: [
                    (
                        "conversion (points)", (p.conversion?.difference ?? 0) * 100, (p.conversion?.low ?? 0) * 100,
                        (p.conversion?.high ?? 0) * 100
                    ),
                    (
                        "orders per 100 users", (p.ordersPerUser?.difference ?? 0) * 100, (p.ordersPerUser?.low ?? 0) * 100,
                        (p.ordersPerUser?.high ?? 0) * 100
                    ),
                    ("revenue per user", v.difference, v.low, v.high),
                ])
            return """
                <h2>\(p.name == "window" ? "Over the window" : "After the window") (\(ProfileText.date(p.fromMs)) to \
                \(ProfileText.date(p.toMs)))</h2>
                <p>\(p.treated) users sent the offer, \(p.controls) held out. Redemptions: \(p.redemptions). Offer's cost: \
                \(Charts.number(p.offerCost)).</p>
                <table><tr><th>per user</th><th>treatment</th><th>control</th><th>difference</th><th>95% interval \
                (Welch)</th><th>p</th><th>smallest findable</th></tr>
                \(row("converted", p.conversion, percent))\(row("orders", p.ordersPerUser, Charts.number))\
                \(row("revenue", p.revenuePerUser, Charts.number))</table>
                <p>Revenue per user, bootstrap 95% interval: [\(Charts.number(p.revenueBootstrapLow)), \
                \(Charts.number(p.revenueBootstrapHigh))]. Incremental revenue: \(Charts.number(inc.difference)) \
                [\(Charts.number(inc.low)), \(Charts.number(inc.high))]; return on the offer's cost: \(roi).</p>
                \(cautions.isEmpty ? "" : "<ul class=\"note\">\(cautions)</ul>")
                <div class="charts">\(forest)</div>
                """
        }.joined()
        let daily = Charts.lineChart(
            title: "Converted since the start (cumulative)", xLabel: "days since the start",
            series: report.daily.map { ($0.name, $0.x, $0.y.map { $0 * 100 }) })
        let qiniNames = ["qini_uplift": "uplift model", "qini_propensity": "propensity model", "qini_random": "random order"]
        let coefficients = report.upliftMetrics.filter { $0.name.hasPrefix("qini") }.map {
            "\(qiniNames[$0.name] ?? $0.name) \(String(format: "%.4f", $0.value))"
        }
        let qini =
            report.qini.isEmpty
            ? "<p>No uplift model trained on this campaign yet (persona train uplift --param campaign=\(Charts.escape(d.name))).</p>"
            : """
            <p>\(Charts.escape(report.upliftModel)) v\(report.upliftVersion), on held-out users: Qini coefficient \
            \(coefficients.joined(separator: ", ")).
            Targeting the top of the uplift ranking reaches the users the offer moves; the propensity ranking reaches
            those who would buy anyway.</p>
            <div class="charts">\(Charts.lineChart(
                title: "Qini: incremental conversions by share targeted", xLabel: "share of users targeted",
                series: report.qini.map { (qiniNames[$0.name] ?? $0.name, $0.x, $0.y) }))</div>
            """
        return """
            \(ReportHTML.head(title: "Campaign \(d.name)"))
            <h1>Campaign \(Charts.escape(d.name))</h1>
            <p class="sub">audience \(Charts.escape(d.audience)) · \(Charts.escape(offer(d.offer))) · \
            \(ProfileText.date(d.startMs)) to \(ProfileText.date(d.endMs)) · \(String(format: "%.0f%%", d.controlShare * 100)) \
            held out · measured \(ProfileText.date(report.measuredMs))</p>
            \(d.description.isEmpty ? "" : "<p>\(Charts.escape(d.description))</p>")
            <p class="note">Treatment and control are split at random by a hash of user and campaign, so the difference \
            between them is what the offer did. A small campaign's difference can be chance: read the interval and the \
            smallest findable difference, not the point alone.</p>
            \(periods)
            <h2>Conversion by day</h2>
            <div class="charts">\(daily)</div>
            <h2>Uplift targeting</h2>
            \(qini)
            </body></html>
            """
    }
}

import Foundation
import Synchronization
import Wire

/// Who may call what (docs/PROTOCOL.md, "Access control"). A call carries a token (the frame's
/// credential); the server finds the token's role and lets the call through when the method's
/// roles include it. Health is open to everyone, for probes.
public enum Role: String, Sendable, CaseIterable {
    /// Appends events (a shop's producers).
    case producer
    /// Reads the log (the services that fold it).
    case consumer
    /// The calls the services make to each other.
    case service
    /// Inspection: profiles, features, models, decisions, recommendations; the risk team's
    /// scoring, labels, rules and lists.
    case analyst
    /// Everything: erasure, publishing and rollback, training, rules and lists.
    case admin
}

/// The role table: for every method, the roles that may call it (admin may call all of
/// them, and is not listed), or that only admin may. A method in neither is refused to
/// everyone but admin, and the access tests fail for it.
public enum AccessTable {
    public static let open: Set<UInt16> = [HealthAPI.check.id]

    /// Methods only admin may call: erasure, training, publishing, rollback, and reading the
    /// audit log.
    public static let adminOnly: Set<UInt16> = [
        IngestAPI.erase.id, FeatureAPI.deleteUser.id, ModelAPI.train.id, ModelAPI.publish.id, ModelAPI.cancelJob.id, ModelAPI.rollback.id,
        AuditAPI.read.id,
    ]

    /// The calls written to the audit log (who, what, when): the admin-only ones that change
    /// state, and the risk team's rule, list, label and case changes.
    public static let audited: Set<UInt16> = adminOnly.subtracting([AuditAPI.read.id]).union([
        RiskAPI.publishRules.id, RiskAPI.updateLists.id, RiskAPI.label.id, RiskAPI.updateCase.id, RiskAPI.takeNextCase.id,
        FeatureAPI.defineAudience.id, ModelAPI.defineCampaign.id, ModelAPI.launchCampaign.id,
    ])

    public static let roles: [UInt16: Set<Role>] = {
        var t: [UInt16: Set<Role>] = [:]
        func allow(_ roles: Set<Role>, _ ids: [UInt16]) { for id in ids { t[id, default: []].formUnion(roles) } }
        allow([.producer, .service], [IngestAPI.append.id])
        allow([.consumer, .service], [IngestAPI.read.id, IngestAPI.logInfo.id])
        // Read by services (recommend, risk-control, model) and by analysts.
        allow(
            [.service, .analyst],
            [
                FeatureAPI.getProfile.id, FeatureAPI.getFeatures.id, FeatureAPI.getItems.id, FeatureAPI.topItems.id,
                FeatureAPI.segmentMembers.id, FeatureAPI.ownership.id, FeatureAPI.listAudiences.id, FeatureAPI.audienceMembers.id,
                FeatureAPI.audienceOverlap.id,
            ])
        // Marketers (analysts) define audiences.
        allow([.analyst], [FeatureAPI.defineAudience.id])
        allow([.service], [FeatureAPI.exportTraining.id, FeatureAPI.requestFeatures.id])
        allow([.service, .analyst], [ModelAPI.listModels.id, ModelAPI.getReport.id, ModelAPI.jobStatus.id, ModelAPI.listJobs.id])
        // Marketers (analysts) run campaigns and read their reports.
        allow(
            [.analyst],
            [ModelAPI.defineCampaign.id, ModelAPI.listCampaigns.id, ModelAPI.launchCampaign.id, ModelAPI.campaignReport.id])
        allow([.service], [ModelAPI.getModel.id, ModelAPI.watchModels.id])
        allow([.service, .analyst], [RiskAPI.score.id])
        allow(
            [.analyst],
            [
                RiskAPI.queryDecisions.id, RiskAPI.label.id, RiskAPI.validateRules.id, RiskAPI.publishRules.id, RiskAPI.getRules.id,
                RiskAPI.updateLists.id, RiskAPI.getLists.id, RiskAPI.backtest.id, RiskAPI.decisionStats.id, RiskAPI.queryCases.id,
                RiskAPI.getCase.id, RiskAPI.updateCase.id, RiskAPI.takeNextCase.id, RiskAPI.replay.id,
            ])
        allow([.service, .analyst], [RecommendAPI.recommend.id, RecommendAPI.similarItems.id, RecommendAPI.popular.id])
        return t
    }()

    /// Whether `role` may call `method`.
    public static func allows(_ role: Role, _ method: UInt16) -> Bool {
        open.contains(method) || role == .admin || roles[method]?.contains(role) == true
    }
}

/// One accepted token: an id (named in logs, metrics and the audit log; never the secret),
/// its role and its secret.
public struct AccessToken: Sendable, Equatable {
    public var id: String
    public var role: Role
    public var secret: [UInt8]

    public init(id: String, role: Role, secret: [UInt8]) {
        self.id = id
        self.role = role
        self.secret = secret
    }

    /// A tokens file: one token a line, `ROLE ID SECRET` (secrets of 16 to 255 bytes), `#`
    /// comments. Several tokens may share a role, so one can be rotated: add the new one,
    /// move the callers over, remove the old one; services re-read the file.
    public static func parse(_ text: String, file: String = "tokens") throws -> [AccessToken] {
        var out: [AccessToken] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 3, let role = Role(rawValue: fields[0]) else {
                throw AccessError(
                    "\(file):\(n + 1): expected ROLE ID SECRET with ROLE one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard (16...255).contains(fields[2].utf8.count) else { throw AccessError("\(file):\(n + 1): a secret is 16 to 255 bytes") }
            guard !out.contains(where: { $0.id == fields[1] }) else {
                throw AccessError("\(file):\(n + 1): token id '\(fields[1])' is used twice")
            }
            out.append(AccessToken(id: fields[1], role: role, secret: Array(fields[2].utf8)))
        }
        return out
    }
}

public struct AccessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The tokens a server accepts, replaceable while it serves (a re-read tokens file).
public final class AccessPolicy: Sendable {
    private let tokens: Mutex<[AccessToken]>
    /// Refusals from one connection within `refusalWindow` after which it is closed.
    public let refusalLimit: Int
    public let refusalWindow: Duration

    public init(tokens: [AccessToken], refusalLimit: Int = 20, refusalWindow: Duration = .seconds(10)) {
        self.tokens = Mutex(tokens)
        self.refusalLimit = refusalLimit
        self.refusalWindow = refusalWindow
    }

    public func replace(_ new: [AccessToken]) { tokens.withLock { $0 = new } }

    public var count: Int { tokens.withLock { $0.count } }

    public enum Verdict: Equatable {
        case allowed(token: String?, role: Role?)
        /// No credential, or one that is no token's.
        case unauthenticated
        case denied(token: String, role: Role)
    }

    /// Whether a call of `method` with `credential` may run. Every accepted secret is
    /// compared in full, in time that depends only on the lengths, whatever matches.
    public func check(method: UInt16, credential: [UInt8]?) -> Verdict {
        if AccessTable.open.contains(method) { return .allowed(token: nil, role: nil) }
        guard let credential, !credential.isEmpty else { return .unauthenticated }
        let found = tokens.withLock { all -> AccessToken? in
            var hit: AccessToken?
            for t in all where Self.equal(t.secret, credential) && hit == nil { hit = t }
            return hit
        }
        guard let token = found else { return .unauthenticated }
        return AccessTable.allows(token.role, method)
            ? .allowed(token: token.id, role: token.role) : .denied(token: token.id, role: token.role)
    }

    /// Constant-time equality (for equal lengths).
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}

/// The credential this process presents on the calls it makes (a service its service
/// token, the CLI the operator's), unless a client's configuration names another.
public enum ProcessCredential {
    private static let value = Mutex<[UInt8]?>(nil)

    public static var current: [UInt8]? { value.withLock { $0 } }

    public static func set(_ credential: [UInt8]?) { value.withLock { $0 = credential } }
}

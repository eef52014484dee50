import Foundation
import RPC
import Rules
import ServiceKit
import Wire

/// Audiences over RPC (docs/CAMPAIGNS.md): defined through the log, so every replica holds
/// the same definitions; members, sizes and overlaps among the users this replica serves
/// (`FeatureReplicas` merges the replicas' answers).
extension FeatureService {
    func defineAudience(_ request: DefineAudienceRequest) async throws -> DefineAudienceResponse {
        guard Names.valid(request.name) else {
            metrics.badRequest("invalid_audience")
            throw RPCError(.invalidArgument, "an audience's name is \(Names.rule)")
        }
        guard request.expression.utf8.count <= 4096, request.description.utf8.count <= 4096 else {
            metrics.badRequest("invalid_audience")
            throw RPCError(.invalidArgument, "an expression and a description are at most 4096 bytes")
        }
        var response = DefineAudienceResponse()
        if !request.remove {
            switch live.condition(request.expression) {
            case .failure(let invalid):
                metrics.badRequest("invalid_audience")
                response.errors = invalid.errors.map {
                    var e = AudienceError()
                    (e.line, e.column, e.message) = (UInt32($0.line), UInt32($0.column), $0.message)
                    return e
                }
                return response
            case .success(let condition): response.reads = condition.slotNames
            }
        } else if live.audiences(named: request.name).isEmpty {
            throw RPCError(.notFound, "no audience '\(request.name)'")
        }
        if request.validateOnly { return response }
        let now = context.clock.nowMs
        var definition = AudienceDefinition()
        definition.name = request.name
        definition.expression = request.remove ? "" : request.expression
        definition.description = request.description
        definition.deleted = request.remove
        definition.definedBy = ActingFor.current ?? RPCContext.current?.caller?.token ?? ""
        var e = Event()
        e.eventId = "audience:\(request.name):\(now):\(UInt32.random(in: 0...UInt32.max))"
        e.kind = .audience
        e.timestampMs = now
        e.audience = definition
        let status = try await ingest.appendOne(e, what: "audience")
        // Answered once this replica has folded it, so the caller's next call sees it here.
        let deadline = ContinuousClock.now + .seconds(10)
        while live.offset(Int(status.partition)) <= status.offset {
            guard ContinuousClock.now < deadline else { throw RPCError(.unavailable, "the audience is in the log but not yet read here") }
            try await Task.sleep(for: .milliseconds(5))
        }
        if !request.remove { live.measureAudiences(atMs: Self.hour(now), named: request.name) }
        RPCContext.current?.audit(
            request.remove ? "deleted audience \(request.name)" : "defined audience \(request.name): \(request.expression)")
        return response
    }

    func listAudiences(_ request: ListAudiencesRequest) throws -> ListAudiencesResponse {
        let defined = live.audiences(named: request.name)
        if !request.name.isEmpty && defined.isEmpty { throw RPCError(.notFound, "no audience '\(request.name)'") }
        let conditions = defined.map { try? live.condition($0.definition.expression).get() }
        var sizes = [UInt32](repeating: 0, count: defined.count)
        let present = conditions.compactMap { $0 }
        let positions = conditions.indices.filter { conditions[$0] != nil }
        live.forEachMembership(present) { _, memberships in
            for (k, member) in memberships.enumerated() where member { sizes[positions[k]] += 1 }
            return true
        }
        var response = ListAudiencesResponse()
        response.audiences = defined.enumerated().map { k, a in
            var info = AudienceInfo()
            info.name = a.definition.name
            info.expression = a.definition.expression
            info.description = a.definition.description
            info.definedBy = a.definition.definedBy
            info.definedMs = a.definedMs
            info.size = sizes[k]
            info.history = a.sizes.map {
                var s = AudienceSize()
                (s.atMs, s.size) = ($0.atMs, $0.size)
                return s
            }
            return info
        }
        return response
    }

    func audienceMembers(_ request: AudienceMembersRequest) throws -> AudienceMembersResponse {
        let condition = try storedCondition(request.name)
        var after: Int64 = 0
        if !request.pageToken.isEmpty {
            guard let id = Int64(request.pageToken) else {
                metrics.badRequest("page_token")
                throw RPCError(.invalidArgument, "page token '\(request.pageToken)' is not one this service gave")
            }
            after = id
        }
        let size = request.pageSize == 0 ? 100 : min(Int(request.pageSize), 10_000)
        var response = AudienceMembersResponse()
        var more = false
        live.forEachMembership([condition], afterID: after) { id, memberships in
            guard memberships[0] else { return true }
            if response.userIds.count == size {
                more = true
                return false
            }
            response.userIds.append(id)
            return true
        }
        if more, let last = response.userIds.last { response.nextPageToken = String(last) }
        return response
    }

    func audienceOverlap(_ request: AudienceOverlapRequest) throws -> AudienceOverlapResponse {
        let (a, b) = (try storedCondition(request.a), try storedCondition(request.b))
        var response = AudienceOverlapResponse()
        live.forEachMembership([a, b]) { _, m in
            if m[0] { response.aSize += 1 }
            if m[1] { response.bSize += 1 }
            if m[0] && m[1] { response.both += 1 }
            return true
        }
        return response
    }

    private func storedCondition(_ name: String) throws -> Condition {
        guard let a = live.audiences(named: name).first else { throw RPCError(.notFound, "no audience '\(name)'") }
        switch live.condition(a.definition.expression) {
        case .success(let c): return c
        case .failure(let invalid):
            // Only an event appended past DefineAudience can hold one that does not compile.
            throw RPCError(.failedPrecondition, "audience '\(name)' does not compile: \(invalid.description)")
        }
    }

    /// Measures every audience each `audienceMeasureEvery`, at the hour's start.
    func measureAudiences() async throws {
        while true {
            try await Task.sleep(for: settings.audienceMeasureEvery)
            live.measureAudiences(atMs: Self.hour(context.clock.nowMs))
        }
    }

    static func hour(_ ms: Int64) -> Int64 { ms / 3_600_000 * 3_600_000 }
}

import RPC
import Wire

/// Cases: a decision to review or challenge opens one in its team's queue (the view does, as
/// it applies the decision); a change to a case travels the decision log like a label, so it
/// is durable before it is answered and every replica sees the same queue.
extension RiskControlService {
    func queryCases(_ request: QueryCasesRequest) async throws -> QueryCasesResponse {
        try await awaitView()
        do {
            return try view.queryCases(request)
        } catch let e as DecisionDatabase.BadQuery {
            metrics.badRequest("page_token")
            throw RPCError(.invalidArgument, e.description)
        }
    }

    func getCase(_ request: GetCaseRequest) async throws -> GetCaseResponse {
        try await awaitView()
        let (c, history) = try storedCase(request.caseId)
        var response = GetCaseResponse()
        response.case = c
        response.history = history
        return response
    }

    func updateCase(_ request: UpdateCaseRequest) async throws -> Case {
        try await awaitView()
        let (current, _) = try storedCase(request.caseId)
        guard
            request.status != .unspecified || request.assign || !request.team.isEmpty || !request.comment.isEmpty
                || request.outcome != .unspecified
        else { throw refuse("empty_case_change", "a case change sets a status, an assignee, a team, a comment or an outcome") }
        guard request.comment.utf8.count <= 4096, request.assignee.utf8.count <= 128 else {
            throw refuse("text_too_long", "a comment is at most 4096 bytes, an assignee at most 128")
        }
        guard request.team.isEmpty || Names.valid(request.team) else {
            throw refuse("invalid_team", "a team is \(Names.rule)")
        }
        guard request.status != .resolved || request.outcome != .unspecified else {
            throw refuse("missing_outcome", "a case is resolved with an outcome: fraud, legitimate or false_positive")
        }
        guard request.status.rawValue >= 0, request.status.rawValue <= CaseStatus.resolved.rawValue,
            request.outcome.rawValue >= 0, request.outcome.rawValue <= CaseOutcome.falsePositive.rawValue
        else { throw refuse("invalid_case_change", "unknown case status or outcome") }
        guard current.status != .resolved || request.outcome == .unspecified else {
            throw RPCError(
                .failedPrecondition, "case \(current.caseId) is resolved (\(DecisionDatabase.name(current.outcome))): reopen it first")
        }
        let by = Self.actor
        let now = context.clock.nowMs
        if request.outcome != .unspecified {
            // The outcome labels the order (into the event log, then the decision log), so the
            // next training sees it; the case is resolved only once the label is in.
            var label = LabelRequest()
            label.orderId = current.orderId
            label.userId = current.userId
            label.kind = Self.label(request.outcome)
            label.source = "case:\(by)"
            label.note = request.comment
            _ = try await self.label(label)
        }
        var change = CaseChange()
        change.caseId = current.caseId
        change.by = by
        change.atMs = now
        change.status = request.status
        change.assign = request.assign
        change.assignee = request.assignee
        change.team = request.team
        change.comment = request.comment
        change.outcome = request.outcome
        let after = try await appendCaseChange(change)
        RPCContext.current?.audit("case \(current.caseId) (order \(current.orderId)): \(change.summary)")
        return after
    }

    /// Assigns the oldest open case of the team nobody works to the caller. Two analysts who
    /// ask at once are each given a different case: the log orders their takes, and a take of
    /// a case already taken changes nothing, so the loser tries the next.
    func takeNextCase(_ request: TakeNextCaseRequest) async throws -> TakeNextCaseResponse {
        guard Names.valid(request.team) else { throw refuse("invalid_team", "a team is \(Names.rule)") }
        try await awaitView()
        let by = Self.actor
        var response = TakeNextCaseResponse()
        for _ in 0..<5 {
            let candidates = try view.unassignedCases(team: request.team, limit: 1)
            guard let candidate = candidates.first else { break }
            var change = CaseChange()
            change.caseId = candidate.caseId
            change.by = by
            change.atMs = context.clock.nowMs
            change.take = true
            let after = try await appendCaseChange(change)
            if after.assignee == by && after.status == .investigating {
                response.case = after
                RPCContext.current?.audit("took case \(after.caseId) (order \(after.orderId)) from the \(request.team) queue")
                return response
            }
        }
        RPCContext.current?.audit("took no case: the \(request.team) queue has none open and unassigned")
        return response
    }

    /// Appends `change` and waits until this replica's view has applied it; the case after.
    private func appendCaseChange(_ change: CaseChange) async throws -> Case {
        var record = DecisionRecord()
        record.caseChange = change
        // Unique per call: two changes alike in the same millisecond are two changes.
        let offset = try await decisionLog.append(record, id: "case:\(change.caseId):\(change.atMs):\(UInt64.random(in: 0...UInt64.max))")
        viewProgress.answered(offset)
        try await awaitView()
        return try storedCase(change.caseId).0
    }

    private func storedCase(_ id: String) throws -> (Case, [CaseChange]) {
        guard let n = Int64(id), let found = try view.caseWithHistory(n) else { throw RPCError(.notFound, "no case '\(id)'") }
        return found
    }

    /// Who makes a change: the person the call acts for, else the caller's token.
    static var actor: String { ActingFor.current ?? RPCContext.current?.caller?.token ?? "anonymous" }

    static func label(_ outcome: CaseOutcome) -> LabelKind {
        switch outcome {
        case .fraud: .confirmedFraud
        case .falsePositive: .falsePositive
        default: .legitimate
        }
    }
}

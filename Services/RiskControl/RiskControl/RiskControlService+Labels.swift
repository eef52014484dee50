import RPC
import ServiceKit
import Wire

/// Label: the outcome of an order goes into the event log first (training reads it there),
/// then into the decision log, from which the view labels its decisions.
extension RiskControlService {
    func label(_ request: LabelRequest) async throws -> LabelResponse {
        guard !request.orderId.isEmpty else { throw refuse("missing_order", "a label names an order") }
        guard StoredNames.label(request.kind) != "unspecified" else {
            throw refuse("invalid_label", "label kind must be chargeback, confirmed_fraud, false_positive or legitimate")
        }
        guard request.source.utf8.count <= 256, request.note.utf8.count <= 4096 else {
            throw refuse("text_too_long", "source is at most 256 bytes, note at most 4096")
        }
        // The view holds every decision answered so far: the order's are all found.
        try await awaitView()
        var user = request.userId
        if user == 0 {
            var q = QueryDecisionsRequest()
            q.orderId = request.orderId
            q.limit = 1
            q.withoutFeatures = true
            guard let d = try view.query(q).decisions.first else {
                throw RPCError(.notFound, "no decision for order '\(request.orderId)': give the user id to label it")
            }
            user = d.userId
        }
        guard user > 0 else { throw refuse("invalid_user", "user id must be positive") }
        let now = context.clock.nowMs
        var e = Event()
        e.eventId = "label:\(request.orderId):\(StoredNames.label(request.kind)):\(request.source)"
        e.kind = .label
        e.userId = user
        e.timestampMs = now
        var l = Label()
        l.orderId = request.orderId
        l.kind = request.kind
        l.source = request.source
        l.note = request.note
        e.label = l
        // Into the log first: a label the log does not hold would never train a model.
        let status = try await ingest.appendOne(e, what: "label")
        // Then into the decision log, from which the view labels the order's decisions.
        var q = QueryDecisionsRequest()
        q.orderId = request.orderId
        q.limit = UInt32(DecisionDatabase.maxPage)
        q.withoutFeatures = true
        let n = try view.query(q).decisions.count
        var record = DecisionRecord()
        record.label = l
        record.atMs = now
        let offset = try await decisionLog.append(record, id: e.eventId + ":\(now)")
        viewProgress.answered(offset)
        metrics.labelled(request.kind)
        var response = LabelResponse()
        response.applied = true
        response.decisions = UInt32(n)
        response.offset = status.offset
        RPCContext.current?.audit(
            """
            labelled order \(request.orderId) (user \(user)) \(StoredNames.label(request.kind)) from \
            \(request.source.isEmpty ? "-" : request.source): \(n) decisions
            """
        )
        return response
    }
}

import Foundation
import RPC
import Wire

/// Lists: block and allow entries, normalised and pseudonymised as requests are.
extension RiskControlService {
    func updateLists(_ request: UpdateListsRequest) async throws -> UpdateListsResponse {
        let now = context.clock.nowMs
        func normalised(_ e: ListEntry) throws -> ListEntry {
            var e = e
            guard e.list == .block || e.list == .allow else { throw refuse("invalid_list", "list must be block or allow") }
            let value = e.value.trimmingCharacters(in: .whitespaces)
            guard !value.isEmpty, value.utf8.count <= 256 else { throw refuse("invalid_value", "a list value is 1...256 bytes") }
            switch e.field {
            case .user:
                guard let id = Int64(value), id > 0 else {
                    throw refuse("invalid_value", "a user entry is a positive user id, got '\(value)'")
                }
                e.value = String(id)
            case .device, .ip, .instrument, .email:
                e.value = pseudonymizer.pseudonym(value)
            default:
                throw refuse("invalid_field", "field must be user, device, ip, instrument or email")
            }
            guard e.expiresMs >= 0 else { throw refuse("invalid_expiry", "expiry must be >= 0 (0: never)") }
            if e.addedMs == 0 { e.addedMs = now }
            return e
        }
        let add = try request.add.map(normalised)
        let remove = try request.remove.map(normalised)
        let removed = lists.present(remove)
        // Through the decision log, one record an entry: every replica on it applies them, and
        // an erasure removes a user's entry from the log alone.
        func record(_ e: ListEntry, removed: Bool) -> DecisionRecord {
            var r = DecisionRecord()
            r.listEntry = e
            r.listRemoved = removed
            return r
        }
        let records = remove.map { record($0, removed: true) } + add.map { record($0, removed: false) }
        if !records.isEmpty { _ = try await appendSettings(records, id: "lists-\(now)-\(UInt64.random(in: 0...UInt64.max))") }
        var response = UpdateListsResponse()
        response.size = UInt32(lists.count)
        response.added = UInt32(add.count)
        response.removed = UInt32(removed)
        // The audit log outlives erasures: a user's entry names them by their pseudonym, without
        // its free-text reason (kept in the list and the decision log, which erasures reach).
        func described(_ e: ListEntry) -> String {
            let user = e.field == .user
            let value = user ? "\(Int64(e.value).map { pseudonymizer.pseudonym(userID: $0) } ?? 0)" : e.value
            return "\(StoredNames.list(e.list)) \(StoredNames.field(e.field)) \(value)"
                + (e.reason.isEmpty || user ? "" : " (\(e.reason))") + (e.expiresMs > 0 ? " until \(e.expiresMs)" : "")
        }
        var what: [String] = []
        if !add.isEmpty { what.append("added " + add.map(described).joined(separator: ", ")) }
        if !remove.isEmpty { what.append("removed " + remove.map(described).joined(separator: ", ")) }
        RPCContext.current?.audit(what.joined(separator: "; "))
        return response
    }
}

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
        let (added, removed) = try await database.updateLists(add: add, remove: remove)
        lists.apply(add: add, remove: remove)
        var response = UpdateListsResponse()
        response.size = UInt32(lists.count)
        response.added = UInt32(added)
        response.removed = UInt32(removed)
        func described(_ e: ListEntry) -> String {
            "\(StoredNames.list(e.list)) \(StoredNames.field(e.field)) \(e.value)" + (e.reason.isEmpty ? "" : " (\(e.reason))")
                + (e.expiresMs > 0 ? " until \(e.expiresMs)" : "")
        }
        var what: [String] = []
        if !add.isEmpty { what.append("added " + add.map(described).joined(separator: ", ")) }
        if !remove.isEmpty { what.append("removed " + remove.map(described).joined(separator: ", ")) }
        RPCContext.current?.audit(what.joined(separator: "; "))
        return response
    }
}

extension CaseChange {
    /// The change in words, as the audit log, the console and the CLI show it ("took it from
    /// the queue, set it waiting"); a comment alone is "commented" (its text is shown apart).
    public var summary: String {
        var parts: [String] = []
        if take { parts.append("took it from the queue") }
        if status != .unspecified { parts.append("set it \(status.name ?? "")") }
        if assign { parts.append(assignee.isEmpty ? "unassigned it" : "assigned it to \(assignee)") }
        if !team.isEmpty { parts.append("moved it to team \(team)") }
        if outcome != .unspecified { parts.append("resolved it: \(outcome.name ?? "")") }
        if !comment.isEmpty { parts.append(parts.isEmpty ? "commented" : "with a comment") }
        return parts.joined(separator: ", ")
    }
}

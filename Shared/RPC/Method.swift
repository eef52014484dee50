public import Logging
import Synchronization
public import Wire

/// One RPC method: its id on the wire and its request and response types.
/// The method ids of all services are listed in `Methods.swift` and docs/PROTOCOL.md.
public struct Method<Request: WireMessage, Response: WireMessage>: Sendable, Hashable {
    public let id: UInt16
    /// `Service/Method`, used in logs and metrics labels.
    public let name: String

    public init(id: UInt16, name: String) {
        self.id = id
        self.name = name
    }
}

/// Call-scoped information handed to every handler, and inherited by the RPC calls the
/// handler makes: a downstream call never waits past the deadline of the call that caused it.
public struct RPCContext: Sendable {
    /// When the caller stops waiting; nil when it set no deadline.
    public var deadline: ContinuousClock.Instant?
    public var method: String
    public var correlationID: UInt64
    /// The token the call was let through with (its id and role, never the secret); nil
    /// when the server checks no tokens.
    public var caller: (token: String, role: Role)?
    /// The caller's address.
    public var peer: String
    /// The person the caller says it acts for (the console's signed-in analyst), if any:
    /// audited calls record it beside the token. Calls made while serving this one carry it on.
    public var actingFor: String?
    /// The request id the caller sent, if any.
    private let givenRequestID: String?
    /// What a made request id is derived from: the connection's random nonce mixed with the
    /// correlation id (nothing is formatted unless the id is asked for).
    private let requestNonce: UInt64
    private let shuttingDown: (@Sendable () -> Bool)?

    /// `requestNonce`: random per connection; a call without a request id gets one made of it
    /// and its correlation id.
    public init(
        deadline: ContinuousClock.Instant?, method: String, correlationID: UInt64, caller: (token: String, role: Role)? = nil,
        peer: String = "", requestID: String? = nil, requestNonce: UInt64 = 0, actingFor: String? = nil,
        shuttingDown: (@Sendable () -> Bool)? = nil
    ) {
        self.actingFor = actingFor
        self.deadline = deadline
        self.method = method
        self.correlationID = correlationID
        self.caller = caller
        self.peer = peer
        self.givenRequestID = requestID
        self.requestNonce = requestNonce
        self.shuttingDown = shuttingDown
    }

    /// The id of the request this call serves: the one the caller sent, else one made for
    /// it (16 hex digits). Calls made while serving it carry it on, and log lines written
    /// meanwhile name it.
    public var requestID: String {
        if let givenRequestID { return givenRequestID }
        // SplitMix64's finaliser: distinct correlation ids give distinct ids on a connection.
        var z = requestNonce &+ correlationID &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let hex = String(z, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Says what an audited call did, in the service's words ("published rules v3"); the
    /// audit log records it beside who called and when. Does nothing outside an audited call.
    public func audit(_ what: String) { AuditNote.current?.text = what }

    /// Whether the server began a graceful shutdown: a long poll answers now rather than
    /// hold the shutdown until its wait ends.
    public var isShuttingDown: Bool { shuttingDown?() ?? false }

    /// The context of the RPC being served by the current task, if any.
    @TaskLocal public static var current: RPCContext?

    /// Time left before the deadline, nil when there is none.
    public var remaining: Duration? {
        deadline.map { ContinuousClock.now.duration(to: $0) }
    }

    /// How long a call made while serving this one may wait: `limit`, and never more than
    /// half of what this call's caller still waits (at least 200 µs), so the answer comes
    /// in time even when the callee does not.
    public static func budget(_ limit: Duration) -> Duration {
        guard let left = current?.remaining else { return limit }
        return max(.microseconds(200), min(limit, left / 2))
    }
}

/// The person a caller outside any RPC acts for (the console sets it around the calls it
/// makes for a signed-in person); every call made meanwhile carries it in its frame.
public enum ActingFor {
    @TaskLocal public static var person: String?

    /// Who the calls made now act for: the person set here, else the one the served call carries.
    public static var current: String? { person ?? RPCContext.current?.actingFor }
}

/// What an audited call says it did: set up by the audit log around the calls it records
/// (so other calls carry nothing), written by the handler through `RPCContext.audit`.
public final class AuditNote: Sendable {
    private let value = Mutex<String?>(nil)

    public init() {}

    public var text: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }

    /// The note of the audited call the current task serves, if any.
    @TaskLocal public static var current: AuditNote?
}

extension Logger.MetadataProvider {
    /// `request_id` of the RPC the current task serves, when it serves one.
    public static let requestID = Logger.MetadataProvider {
        guard let context = RPCContext.current else { return [:] }
        return ["request_id": "\(context.requestID)"]
    }
}

public import Wire

/// The error every RPC call throws: a status code (the same numbering as on the wire) and a
/// message. Handlers throw it to answer with a specific status; anything else they throw is
/// answered as INTERNAL.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    public var details: [KeyValue]

    public init(_ code: StatusCode, _ message: String, details: [KeyValue] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.name?.uppercased() ?? "\(code.rawValue)"): \(message)" }

    init(status: ErrorStatus) {
        self.init(status.code, status.message, details: status.details)
    }

    var errorStatus: ErrorStatus {
        var status = ErrorStatus()
        status.code = code
        status.message = message
        status.details = details
        return status
    }
}

import NIOCore
import Wire

/// Maps method ids to handlers. Built before the server starts, read-only afterwards.
public struct Router: Sendable {
    /// A type-erased handler: decodes the request payload, runs, encodes the response.
    struct Route: Sendable {
        let name: String
        let handle: @Sendable (ByteBuffer, DecodingLimits) async throws -> ByteBuffer
    }

    private(set) var routes: [UInt16: Route] = [:]

    public init() {}

    /// Registers `handler` for `method`. A request that does not decode is answered
    /// INVALID_ARGUMENT without reaching the handler.
    public mutating func register<Request, Response>(
        _ method: Method<Request, Response>,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        precondition(routes[method.id] == nil, "method \(method.name) registered twice")
        routes[method.id] = Route(name: method.name) { payload, limits in
            let request: Request
            do {
                request = try payload.withUnsafeReadableBytes { try Request(serializedBytes: $0, limits: limits) }
            } catch let error as WireError {
                throw RPCError(.invalidArgument, "request is not a valid \(Request.self): \(error)")
            }
            let response = try await handler(request)
            return ByteBuffer(bytes: response.serializedBytes())
        }
    }

    func route(for id: UInt16) -> Route? { routes[id] }

    /// Names of the registered methods, for the metrics endpoint and logs.
    public var methodNames: [String] { routes.values.map(\.name).sorted() }
}

public import NIOCore
public import Wire

/// Maps method ids to handlers. Built before the server starts, read-only afterwards.
public struct Router: Sendable {
    /// A type-erased handler: decodes the request payload, runs, encodes the response.
    struct Route: Sendable {
        let name: String
        let handle: @Sendable (ByteBuffer, DecodingLimits) async throws -> ByteBuffer
        /// Set for handlers registered with `registerInline`: run on the connection's event
        /// loop as the request arrives, with no task and no thread hop.
        var inline: (@Sendable (ByteBuffer, DecodingLimits) throws -> ByteBuffer)? = nil
    }

    private(set) var routes: [UInt16: Route] = [:]

    public init() {}

    /// Registers `handler` for `method`. A request that does not decode is answered
    /// INVALID_ARGUMENT without reaching the handler.
    public mutating func register<Request, Response>(
        _ method: Method<Request, Response>,
        _ handler: @escaping @Sendable (Request) async throws -> Response
    ) {
        register(method, decodingWith: { try Request(serializedBytes: $0, limits: $1) }) {
            Encoded<Response>(try await handler($0))
        }
    }

    /// Registers a handler that answers with an already encoded response (ingest's Read
    /// answers with stored events as stored).
    public mutating func register<Request, Response>(
        _ method: Method<Request, Response>,
        _ handler: @escaping @Sendable (Request) async throws -> Encoded<Response>
    ) {
        register(method, decodingWith: { try Request(serializedBytes: $0, limits: $1) }, handler)
    }

    /// Registers `handler` for `method`, with the request decoded by `decode` into another
    /// form of the same message (ingest's `EventBatch` keeps an `AppendRequest` as C structs).
    /// A `WireError` from `decode` is answered INVALID_ARGUMENT.
    public mutating func register<Request, Decoded, Response>(
        _ method: Method<Request, Response>,
        decodingWith decode: @escaping @Sendable (UnsafeRawBufferPointer, DecodingLimits) throws -> Decoded,
        _ handler: @escaping @Sendable (sending Decoded) async throws -> Response
    ) {
        register(method, decodingWith: decode) { Encoded<Response>(try await handler($0)) }
    }

    /// Both at once: a request decoded by `decode`, an answer already encoded (ingest's
    /// Append answers with `AppendStatuses.encoded()`).
    public mutating func register<Request, Decoded, Response>(
        _ method: Method<Request, Response>,
        decodingWith decode: @escaping @Sendable (UnsafeRawBufferPointer, DecodingLimits) throws -> Decoded,
        _ handler: @escaping @Sendable (sending Decoded) async throws -> Encoded<Response>
    ) {
        add(
            Route(name: method.name) { payload, limits in
                let request = try Self.decode(payload, limits, decode, as: Request.self)
                return ByteBuffer(bytes: try await handler(request).bytes)
            }, for: method.id)
    }

    private mutating func add(_ route: Route, for id: UInt16) {
        precondition(routes[id] == nil, "method \(route.name) registered twice")
        routes[id] = route
    }

    /// Runs `decode` over the payload; a `WireError` becomes INVALID_ARGUMENT.
    private static func decode<Request, Decoded>(
        _ payload: ByteBuffer, _ limits: DecodingLimits,
        _ decode: (UnsafeRawBufferPointer, DecodingLimits) throws -> Decoded, as: Request.Type
    ) throws -> Decoded {
        do {
            return try payload.withUnsafeReadableBytes { try decode($0, limits) }
        } catch let error as WireError {
            throw RPCError(.invalidArgument, "request is not a valid \(Request.self): \(error)")
        }
    }

    /// Registers a handler that answers at once from memory (a lookup under a short lock,
    /// never I/O or a wait): it runs on the connection's event loop as soon as the request is
    /// read, which spares each call a task and two thread hops. Everything else belongs in
    /// `register`.
    public mutating func registerInline<Request, Response>(
        _ method: Method<Request, Response>,
        _ handler: @escaping @Sendable (Request) throws -> Response
    ) {
        let run: @Sendable (ByteBuffer, DecodingLimits) throws -> ByteBuffer = { payload, limits in
            let request = try Self.decode(payload, limits, { try Request(serializedBytes: $0, limits: $1) }, as: Request.self)
            return ByteBuffer(bytes: try handler(request).serializedBytes())
        }
        add(Route(name: method.name, handle: { try run($0, $1) }, inline: run), for: method.id)
    }

    /// Runs `around` around the handlers of the methods in `ids` that are registered: it
    /// gets the method's name and the handler, and answers with what the handler answers
    /// (ServiceKit writes the audit log this way). Those methods no longer run inline.
    public mutating func wrap(
        _ ids: Set<UInt16>,
        _ around: @escaping @Sendable (_ method: String, _ handler: @Sendable () async throws -> ByteBuffer) async throws -> ByteBuffer
    ) {
        for id in ids {
            guard let route = routes[id] else { continue }
            routes[id] = Route(name: route.name) { payload, limits in
                try await around(route.name) { try await route.handle(payload, limits) }
            }
        }
    }

    func route(for id: UInt16) -> Route? { routes[id] }

    /// Names of the registered methods, for the metrics endpoint and logs.
    public var methodNames: [String] { routes.values.map(\.name).sorted() }
}

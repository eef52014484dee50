import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Plain HTTP/1.1 endpoint for operators: `GET /metrics` (Prometheus text format) and
/// `GET /health` (200 while serving, 503 while draining).
final class MetricsHTTPServer: Sendable {
    typealias Health = @Sendable () -> (ok: Bool, body: String)

    private let host: String
    private let port: Int
    private let metrics: @Sendable () -> String
    private let health: Health
    private let logger: Logger
    private let channel = Mutex<(any Channel)?>(nil)

    init(host: String, port: Int, metrics: @escaping @Sendable () -> String, health: @escaping Health, logger: Logger) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.health = health
        self.logger = logger
    }

    func start() async throws -> Int {
        let metrics = self.metrics, health = self.health
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(metrics: metrics, health: health))
                }
            }
            .bind(host: host, port: port).get()
        self.channel.withLock { $0 = channel }
        logger.info("metrics listening", metadata: ["address": "\(channel.localAddress!)"])
        return channel.localAddress!.port!
    }

    func run() async throws {
        guard let channel = channel.withLock({ $0 }) else { return }
        try await channel.closeFuture.get()
    }

    func stop() {
        channel.withLock { $0 }?.close(promise: nil)
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let metrics: @Sendable () -> String
        let health: Health
        private var head: HTTPRequestHead?

        init(metrics: @escaping @Sendable () -> String, health: @escaping Health) {
            self.metrics = metrics
            self.health = health
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
            case .body:
                break
            case .end:
                guard let head else { return }
                let (status, type, body): (HTTPResponseStatus, String, String)
                switch (head.method, head.uri.split(separator: "?").first ?? "") {
                case (.GET, "/metrics"):
                    (status, type, body) = (.ok, "text/plain; version=0.0.4", metrics())
                case (.GET, "/health"):
                    let h = health()
                    (status, type, body) = (h.ok ? .ok : .serviceUnavailable, "application/json", h.body + "\n")
                default:
                    (status, type, body) = (.notFound, "text/plain", "not found\n")
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: type)
                headers.add(name: "Content-Length", value: "\(body.utf8.count)")
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                if !head.isKeepAlive { context.close(promise: nil) }
                self.head = nil
            }
        }
    }
}

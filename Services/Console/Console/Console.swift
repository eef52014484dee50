import Foundation
public import Hummingbird
public import Logging
import Mustache
import RPC
import ServiceKit
import Synchronization
import Wire

/// `persona-console`: the risk team's work in a browser. It owns only people and their
/// sessions (`People`); decisions, labels, rules and lists it asks of risk-control over
/// Persona's RPC, presenting the admin token of its tokens file. Pages are HTML rendered
/// here (`Pages`); every form carries its session's CSRF token, and a change is refused to
/// a role that may not make it.
public final class Console: Sendable {
    let settings: ConsoleSettings
    let people: People
    let risk: RPCClient
    /// The model service: the served fraud model's metrics (dashboard).
    let model: RPCClient
    /// Every service, for the merged audit log (risk-control's and model's are `risk` and `model`).
    let auditClients: [(Peer, RPCClient)]
    /// Ingest, for a user's recent events (a decision's timeline).
    var ingest: RPCClient? { auditClients.first { $0.0 == .ingest }?.1 }
    let pages: MustacheLibrary
    let logger: Logger
    let counters = Mutex<[String: Int]>([:])

    static let sessionCookie = "persona_session"
    static let signInCookie = "persona_signin"

    public init(settings: ConsoleSettings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        try FileManager.default.createDirectory(atPath: settings.dataDir, withIntermediateDirectories: true)
        people = try People(path: settings.dataDir + "/console.db", bcryptCost: settings.bcryptCost)
        let risk = RPCClient(host: settings.riskHost, port: settings.riskPort, defaultTimeout: .seconds(10))
        let model = RPCClient(host: settings.modelHost, port: settings.modelPort, defaultTimeout: .seconds(2))
        (self.risk, self.model) = (risk, model)
        auditClients = settings.peers.map { peer, address in
            switch peer {
            case .riskControl: (peer, risk)
            case .model: (peer, model)
            default: (peer, RPCClient(host: address.host, port: address.port, defaultTimeout: .seconds(5)))
            }
        }
        pages = try Pages.library()
    }

    /// The HTTP application on `settings.host:port`; `onRunning` hears the bound port.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Hummingbird.Router()
        router.get("/") { _, _ in Response.redirect(to: "/dashboard") }
        router.get("/dashboard") { [self] request, context in
            try await withSession(request, context) { session, _ in try await dashboardPage(session) }
        }
        router.get("/signin") { [self] request, _ in signInPage(request, error: nil) }
        router.post("/signin") { [self] request, context in try await signIn(request, context) }
        router.post("/signout") { [self] request, context in
            try await withSession(request, context, form: true) { session, _ in
                try people.signOut(session.token)
                var response = Response.redirect(to: "/signin")
                response.setCookie(cookie(Self.sessionCookie, "", maxAge: 0))
                return response
            }
        }
        router.get("/decisions") { [self] request, context in
            try await withSession(request, context) { session, _ in try await decisionsPage(request, session) }
        }
        router.get("/decisions/rows") { [self] request, context in
            try await withSession(request, context) { _, _ in try await newerRows(request) }
        }
        router.get("/decisions/:id") { [self] request, context in
            try await withSession(request, context) { session, _ in
                try await decisionPage(id: context.parameters.require("id", as: Int64.self), session)
            }
        }
        router.get("/decisions/:id/replay") { [self] request, context in
            try await withSession(request, context) { session, _ in
                try await replayPage(id: context.parameters.require("id", as: Int64.self), session)
            }
        }
        router.post("/decisions/:id/label") { [self] request, context in
            try await withSession(request, context, form: true) { session, form in
                try await label(id: context.parameters.require("id", as: Int64.self), kind: form["kind"] ?? "", session)
            }
        }
        router.get("/cases") { [self] request, context in
            try await withSession(request, context) { session, _ in try await casesPage(request, session) }
        }
        router.post("/cases/take") { [self] request, context in
            try await withSession(request, context, form: true) { session, form in try await takeNext(form, session) }
        }
        router.get("/cases/:id") { [self] request, context in
            try await withSession(request, context) { session, _ in
                try await casePage(id: context.parameters.require("id", as: Int64.self), session)
            }
        }
        router.post("/cases/:id") { [self] request, context in
            try await withSession(request, context, form: true) { session, form in
                try await changeCase(id: context.parameters.require("id", as: Int64.self), form, session)
            }
        }
        router.get("/rules") { [self] request, context in
            try await withSession(request, context) { session, _ in try await rulesPage(request, session) }
        }
        router.post("/rules/validate") { [self] request, context in
            try await withSession(request, context, form: true) { _, form in try await validate(form["source"] ?? "") }
        }
        router.post("/rules/backtest") { [self] request, context in
            try await withSession(request, context, form: true) { session, form in try await backtest(form, session) }
        }
        router.post("/rules/publish") { [self] request, context in
            try await withSession(request, context, form: true) { session, form in try await publish(form, request, session) }
        }
        router.post("/rules/review") { [self] request, context in
            try await withSession(request, context, form: true) { session, form in try await review(form, request, session) }
        }
        router.get("/rules/diff") { [self] request, context in
            try await withSession(request, context) { session, _ in try await diffPage(request, session) }
        }
        router.get("/lists") { [self] request, context in
            try await withSession(request, context) { session, _ in try await listsPage(session) }
        }
        router.get("/lists.csv") { [self] request, context in
            try await withSession(request, context) { _, _ in try await listsCSV() }
        }
        router.post("/lists/:action") { [self] request, context in
            let action = context.parameters.get("action") ?? ""
            return try await withSession(request, context, form: true) { session, form in
                guard ["add", "remove", "import"].contains(action) else { throw RPCError(.notFound, "no list action '\(action)'") }
                return try await changeLists(action, form, session)
            }
        }
        router.get("/audit") { [self] request, context in
            try await withSession(request, context) { session, _ in try await auditPage(request, session) }
        }
        router.get("/audit.csv") { [self] request, context in
            try await withSession(request, context) { session, _ in try await auditCSV(request, session) }
        }
        router.get("/health") { _, _ in "ok\n" }
        router.get("/metrics") { [self] _, _ in
            let lines = counters.withLock { c in
                c.sorted { $0.key < $1.key }.map { "persona_console_refused_total{reason=\"\($0.key)\"} \($0.value)" }
            }
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(
                    byteBuffer: ByteBuffer(string: "# TYPE persona_console_refused_total counter\n" + lines.joined(separator: "\n") + "\n"))
            )
        }
        return Application(
            router: router, configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "persona-console"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    public func close() async {
        for (_, client) in auditClients { await client.shutdown() }
    }

    // MARK: Sessions and forms

    func count(_ reason: String) { counters.withLock { $0[reason, default: 0] += 1 } }

    func cookie(_ name: String, _ value: String, maxAge: Int? = nil) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: settings.secureCookies, httpOnly: true, sameSite: .strict)
    }

    /// Runs `body` for a signed-in person (else to the sign-in page); with `form`, the body is
    /// read as a form and refused unless it carries the session's CSRF token.
    func withSession(
        _ request: Request, _ context: BasicRequestContext, form: Bool = false,
        _ body: (ConsoleSession, [String: String]) async throws -> Response
    ) async throws -> Response {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        guard let token = request.cookies[Self.sessionCookie]?.value, !token.isEmpty, let session = try people.session(token, nowMs: now)
        else {
            return .redirect(to: "/signin")
        }
        var fields: [String: String] = [:]
        if form {
            fields = try await Self.form(request)
            guard fields["csrf"] == session.csrf else {
                count("csrf")
                return page(
                    "message", ["title": "Refused", "message": "The form did not carry this session's token (CSRF)."], session: session,
                    status: .forbidden)
            }
        }
        do {
            // Every call made for the page names the person: the services' audit logs record them.
            return try await ActingFor.$person.withValue(session.name) { try await body(session, fields) }
        } catch let e as RPCError {
            count("service_" + e.code.description)
            let status: HTTPResponse.Status =
                switch e.code {
                case .notFound: .notFound
                case .invalidArgument: .badRequest
                case .failedPrecondition: .conflict
                case .permissionDenied: .forbidden
                default: .badGateway
                }
            return page("message", ["title": "Not done", "message": e.message], session: session, status: status)
        }
    }

    /// An `application/x-www-form-urlencoded` body (at most 64 KiB) as its fields.
    static func form(_ request: Request) async throws -> [String: String] {
        var request = request
        let buffer = try await request.collectBody(upTo: 64 << 10)
        var fields: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? ""
            }
            // Browsers send a textarea's lines ended by CR LF: kept as LF, as the CLI's files are.
            if let name = parts.first { fields[name] = parts.count > 1 ? parts[1].replacingOccurrences(of: "\r\n", with: "\n") : "" }
        }
        return fields
    }

    /// The 403 page for a person whose role may not do what they asked (counted as `role`).
    func refusedRole(_ message: String, _ session: ConsoleSession) -> Response {
        count("role")
        return page("message", ["title": "Refused", "message": message], session: session, status: .forbidden)
    }

    func page(_ template: String, _ object: [String: Any], session: ConsoleSession?, status: HTTPResponse.Status = .ok) -> Response {
        let body = pages.render(object, withTemplate: template) ?? ""
        var layout: [String: Any] = ["title": object["title"] ?? template, "body": body]
        if let session {
            var person: [String: Any] = ["name": session.name, "role": session.role.rawValue, "csrf": session.csrf]
            if session.role == .admin { person["admin"] = true }
            layout["person"] = person
        }
        let html = pages.render(layout, withTemplate: "layout") ?? ""
        return Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .init("Content-Security-Policy")!: "frame-ancestors 'none'",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    // MARK: Sign-in

    func signInPage(_ request: Request, error: String?, status: HTTPResponse.Status = .ok) -> Response {
        // Sign-in has no session yet: its CSRF token is a cookie of its own, sent back in the form.
        let token = request.cookies[Self.signInCookie]?.value ?? People.random()
        var object: [String: Any] = ["title": "Sign in", "csrf": token]
        if let error { object["error"] = error }
        var response = page("signin", object, session: nil, status: status)
        response.setCookie(cookie(Self.signInCookie, token))
        return response
    }

    func signIn(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let fields = try await Self.form(request)
        guard let expected = request.cookies[Self.signInCookie]?.value, fields["csrf"] == expected else {
            count("csrf")
            return signInPage(request, error: "The form expired; try again.", status: .forbidden)
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let name = fields["name"] ?? ""
        switch try people.signIn(name: name, password: fields["password"] ?? "", nowMs: now) {
        case .signedIn(let token):
            logger.info("\(name) signed in")
            var response = Response.redirect(to: "/decisions")
            response.setCookie(cookie(Self.sessionCookie, token))
            return response
        case .refused:
            count("wrong_password")
            return signInPage(request, error: "Wrong name or password.", status: .unauthorized)
        case .locked(let until):
            count("locked")
            let minutes = max(1, (until - now + 59_999) / 60_000)
            return signInPage(request, error: "Too many wrong passwords: locked for \(minutes) more minutes.", status: .unauthorized)
        }
    }
}

public import Foundation

#if canImport(FoundationNetworking)
public import FoundationNetworking
#endif

/// A browser's part, by hand: requests with the cookies it was given, redirects not followed.
public final class Browser: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    public let base: String
    public var cookies: [String: String] = [:]
    private lazy var session = URLSession(configuration: .ephemeral, delegate: self, delegateQueue: nil)

    public init(port: Int) { base = "http://127.0.0.1:\(port)" }

    public struct Page: Sendable {
        public var status: Int
        public var body: String
        public var location: String?
    }

    public func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
        completionHandler: @escaping (URLRequest?) -> Void
    ) { completionHandler(nil) }

    public func get(_ path: String) async throws -> Page { try await send(URLRequest(url: URL(string: base + path)!)) }

    public func post(_ path: String, _ form: [String: String]) async throws -> Page {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        request.httpBody = Data(
            form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&").utf8)
        return try await send(request)
    }

    private func send(_ request: URLRequest) async throws -> Page {
        var request = request
        if !cookies.isEmpty {
            request.setValue(cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "), forHTTPHeaderField: "Cookie")
        }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        for (key, value) in http.allHeaderFields where (key as? String)?.lowercased() == "set-cookie" {
            for cookie in "\(value)".components(separatedBy: ", ") {
                let pair = cookie.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
                guard let name = pair.first else { continue }
                cookies[String(name)] = pair.count > 1 ? String(pair[1]) : ""
            }
        }
        return Page(
            status: http.statusCode, body: String(decoding: data, as: UTF8.self), location: http.value(forHTTPHeaderField: "Location"))
    }

    /// The value of the hidden `csrf` field of the page's first form.
    public static func csrf(_ page: Page) -> String? {
        guard let r = page.body.range(of: #"name="csrf" value="([0-9a-f]+)""#, options: .regularExpression) else { return nil }
        return String(page.body[r].split(separator: "\"")[3])
    }
}

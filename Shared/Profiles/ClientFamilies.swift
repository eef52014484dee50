/// The families a profile's risk features one-hot encode: where a visit came from and which
/// browser made it. A shop names its channels and sends user agents its own way; these map
/// the usual spellings onto a few fixed families (everything else: `other`), so a model's
/// columns mean the same in every shop.
public enum ChannelFamily: UInt8, CaseIterable, Sendable {
    case other = 0, direct, search, ads, email, social, app

    /// The family of a channel as an event names it (case is ignored).
    public init(channel: String) {
        switch channel.lowercased() {
        case "direct", "typein", "type-in", "none": self = .direct
        case "seo", "organic", "search", "organic_search": self = .search
        case "ads", "ad", "paid", "cpc", "ppc", "sem", "display", "affiliate": self = .ads
        case "email", "e-mail", "newsletter", "mail": self = .email
        case "social", "facebook", "instagram", "twitter", "tiktok": self = .social
        case "app", "ios", "android", "mobile_app", "mobile-app": self = .app
        default: self = .other
        }
    }

    /// The feature's name suffix (`channel_search`).
    public var name: String { "\(self)" }
}

public enum BrowserFamily: UInt8, CaseIterable, Sendable {
    case other = 0, chrome, safari, firefox, edge, ie, opera

    /// The family of a user agent string, or of a browser's bare name ("Chrome", "IE").
    public init(userAgent: String) {
        let ua = userAgent.lowercased()
        if ua.contains("edg") {
            self = .edge
        } else if ua.contains("opr/") || ua.contains("opera") {
            self = .opera
        } else if ua.contains("firefox") || ua.contains("fxios") {
            self = .firefox
        } else if ua.contains("msie") || ua.contains("trident/") || ua == "ie" || ua == "internet explorer" {
            self = .ie
        } else if ua.contains("chrome") || ua.contains("crios") || ua.contains("chromium") {
            self = .chrome
        } else if ua.contains("safari") {
            self = .safari
        } else {
            self = .other
        }
    }

    /// The feature's name suffix (`browser_chrome`).
    public var name: String { "\(self)" }
}

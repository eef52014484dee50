/// A pseudonym key or an IP-to-country table that cannot be used; the service does not start.
public struct PersonalDataError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

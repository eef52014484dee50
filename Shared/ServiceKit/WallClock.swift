public import Foundation

/// The wall clock as Unix milliseconds, the unit of every time the services store and send.
/// A service reads it from its context, so a test (or a replay) can hand it a clock of its own.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Int64

    public init(_ read: @escaping @Sendable () -> Int64) { self.read = read }

    /// Milliseconds since 1970-01-01T00:00:00Z now.
    public var nowMs: Int64 { read() }

    /// The system's clock.
    public static let system = WallClock { milliseconds(Date()) }

    /// A clock that always reads `ms`.
    public static func fixed(_ ms: Int64) -> WallClock { WallClock { ms } }

    /// `date` as Unix milliseconds.
    public static func milliseconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970 * 1000) }
}

/// The hour of the day and the day of the week of an event time, UTC: what the profile's
/// activity clock counts, the `hour_of_day` and `day_of_week` features read and the rules'
/// `hour` and `weekday` bind, one definition for all three.
public enum ClockFields {
    /// 0-23.
    public static func hour(ms: Int64) -> Int {
        let seconds = ms / 1000
        return Int(((seconds / 3600) % 24 + 24) % 24)
    }

    /// 0-6, Monday 0 (1970-01-01 was a Thursday).
    public static func weekday(ms: Int64) -> Int {
        let seconds = ms / 1000
        return Int(((seconds / 86_400 + 3) % 7 + 7) % 7)
    }
}

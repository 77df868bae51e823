import Shared

/// UTC calendar windows for quotas: a day starts at midnight, a week on
/// Monday 00:00, a month on the 1st at 00:00 (SPEC §5).
struct QuotaWindow: Equatable {
    let start: Int64
    let end: Int64

    var lengthSeconds: Int { Int(self.end - self.start) }

    init(start: Int64, end: Int64) {
        self.start = start
        self.end = end
    }

    init(period: QuotaPeriod, containing unixSeconds: Int64) {
        let day = Self.floorDiv(unixSeconds, 86_400)
        switch period {
        case .day:
            self.init(start: day * 86_400, end: (day + 1) * 86_400)
        case .week:
            // 1970-01-01 was a Thursday: Monday-based weekday = (day + 3) mod 7.
            let monday = day - Self.floorMod(day + 3, 7)
            self.init(start: monday * 86_400, end: (monday + 7) * 86_400)
        case .month:
            let (year, month, _) = Self.civil(fromDays: day)
            let first = Self.days(fromCivil: year, month, 1)
            let next = month == 12 ? Self.days(fromCivil: year + 1, 1, 1) : Self.days(fromCivil: year, month + 1, 1)
            self.init(start: first * 86_400, end: next * 86_400)
        }
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }
    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }

    // Howard Hinnant's civil-date algorithms (proleptic Gregorian calendar).
    static func days(fromCivil year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

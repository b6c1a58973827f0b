//! ISO-8601 timestamps in the exact form of JavaScript's `Date.prototype.toISOString`.

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`, as
/// `new Date(ms).toISOString()` does for years 0000 to 9999.
///
/// The event log stores this string in `createdAt`; the reference writes the same form.
pub fn iso8601_from_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let hours = ms_of_day / 3_600_000;
    let minutes = (ms_of_day / 60_000) % 60;
    let seconds = (ms_of_day / 1000) % 60;
    let millis = ms_of_day % 1000;
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// This is Howard Hinnant's `civil_from_days`, which is exact over the whole i64 day range we use.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601_from_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_from_millis(1_735_689_600_000), "2025-01-01T00:00:00.000Z");
        // 2024-02-29 (leap day), 23:59:59.999
        assert_eq!(iso8601_from_millis(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(iso8601_from_millis(1_795_376_491_539), "2026-11-22T19:41:31.539Z");
        assert_eq!(iso8601_from_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601_from_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}

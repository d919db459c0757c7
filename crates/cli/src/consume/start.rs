//! Where `strata consume` starts: the values of `--offset` and `--from`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `--offset`: an offset, a count back from the end, or one of the ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// `N`: this offset.
    At(i64),
    /// `-N`: N records before the partition's end, or its first record if it holds fewer.
    BeforeEnd(i64),
    /// `earliest`: the first retained record.
    Earliest,
    /// `latest`: the end, so only records produced later.
    Latest,
}

impl StartOffset {
    pub fn parse(text: &str) -> Result<StartOffset, String> {
        let invalid = || format!("'{text}' is not an offset: use N, -N, earliest or latest");
        match text {
            "earliest" => Ok(StartOffset::Earliest),
            "latest" => Ok(StartOffset::Latest),
            _ => match text.strip_prefix('-') {
                Some(count) if is_digits(count) => count
                    .parse()
                    .map(StartOffset::BeforeEnd)
                    .map_err(|_| invalid()),
                None if is_digits(text) => text.parse().map(StartOffset::At).map_err(|_| invalid()),
                _ => Err(invalid()),
            },
        }
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// `--from`: a point in time, or how long ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTime {
    /// Milliseconds since the Unix epoch.
    At(i64),
    /// This long before the command starts.
    Ago(Duration),
}

impl StartTime {
    pub fn parse(text: &str) -> Result<StartTime, String> {
        if is_digits(text) {
            return text
                .parse()
                .map(StartTime::At)
                .map_err(|_| format!("'{text}' is too large for ms since the epoch"));
        }
        if text.as_bytes().get(4) == Some(&b'-') {
            return parse_rfc3339(text).map(StartTime::At).ok_or_else(|| {
                format!("'{text}' is not an RFC 3339 time like 2024-05-01T12:00:00Z")
            });
        }
        crate::duration::parse_human(text)
            .map(StartTime::Ago)
            .map_err(|_| {
                format!(
                    "'{text}' is not a time: use ms since the epoch, an RFC 3339 time \
                 (2024-05-01T12:00:00Z) or a duration (90s, 10m, 2h, 1d, 1h30m)"
                )
            })
    }

    /// Milliseconds since the Unix epoch, `Ago` counted back from `now`.
    pub fn timestamp_ms(self, now: SystemTime) -> i64 {
        match self {
            StartTime::At(timestamp) => timestamp,
            StartTime::Ago(ago) => {
                let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
                let then = now.saturating_sub(ago).as_millis();
                i64::try_from(then).unwrap_or(i64::MAX)
            }
        }
    }
}

/// An RFC 3339 time (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`) or a date
/// (`2024-05-01`, midnight UTC) as ms since the Unix epoch; `None` if it is neither.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let number =
        |part: &str| -> Option<i64> { is_digits(part).then(|| part.parse().ok()).flatten() };
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        number(&text[0..4])?,
        number(&text[5..7])?,
        number(&text[8..10])?,
    );
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if bytes.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes.len() < 19
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (hour, minute, second) = (
        number(&text[11..13])?,
        number(&text[14..16])?,
        number(&text[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits, padded.
        let first_three = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = number(&first_three)?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest.as_bytes()[1..];
            if zone.len() != 5 || zone[2] != b':' {
                return None;
            }
            let (hours, minutes) = (number(&rest[1..3])?, number(&rest[4..6])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_from_either_end() {
        assert_eq!(StartOffset::parse("42"), Ok(StartOffset::At(42)));
        assert_eq!(StartOffset::parse("0"), Ok(StartOffset::At(0)));
        assert_eq!(StartOffset::parse("-3"), Ok(StartOffset::BeforeEnd(3)));
        assert_eq!(StartOffset::parse("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(StartOffset::parse("latest"), Ok(StartOffset::Latest));
        for bad in ["", "-", "--3", "+3", "3x", "first", "end", "-earliest"] {
            assert_eq!(
                StartOffset::parse(bad),
                Err(format!(
                    "'{bad}' is not an offset: use N, -N, earliest or latest"
                ))
            );
        }
    }

    #[test]
    fn durations_add_up_their_units() {
        let ago = |text| match StartTime::parse(text) {
            Ok(StartTime::Ago(duration)) => duration,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(ago("30s"), Duration::from_secs(30));
        assert_eq!(ago("10m"), Duration::from_secs(600));
        assert_eq!(ago("2h"), Duration::from_secs(7_200));
        assert_eq!(ago("1d"), Duration::from_secs(86_400));
        assert_eq!(ago("250ms"), Duration::from_millis(250));
        assert_eq!(ago("1h30m"), Duration::from_secs(5_400));
        assert_eq!(ago("1.5h"), Duration::from_secs(5_400));
        for bad in ["", "10", "m", "10x", "10m-", "h1"] {
            assert!(
                !matches!(StartTime::parse(bad), Ok(StartTime::Ago(_))),
                "{bad}"
            );
        }
        let error = StartTime::parse("10x").unwrap_err();
        assert!(error.starts_with("'10x' is not a time"), "{error}");
    }

    #[test]
    fn epoch_milliseconds_and_rfc3339_times_are_points_in_time() {
        assert_eq!(
            StartTime::parse("1700000000000"),
            Ok(StartTime::At(1_700_000_000_000))
        );
        let at = |text| StartTime::parse(text).map(|time| time.timestamp_ms(UNIX_EPOCH));
        assert_eq!(at("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(at("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(at("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert_eq!(at("2023-11-14T22:13:20.123456Z"), Ok(1_700_000_000_123));
        assert_eq!(at("2023-11-15T00:13:20+02:00"), Ok(1_700_000_000_000));
        assert_eq!(at("2023-11-14 17:13:20-05:00"), Ok(1_700_000_000_000));
        assert_eq!(at("2024-02-29"), Ok(1_709_164_800_000));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T24:00:00Z",
            "2023-13-01",
            "2023-11-14T22:13Z",
            "2023-11-14T22:13:20+0200",
        ] {
            let error = StartTime::parse(bad).unwrap_err();
            assert!(error.contains("is not an RFC 3339 time"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_duration_counts_back_from_now() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            StartTime::Ago(Duration::from_secs(3_600)).timestamp_ms(now),
            6_400_000
        );
        assert_eq!(
            StartTime::Ago(Duration::from_secs(20_000)).timestamp_ms(now),
            0
        );
    }
}

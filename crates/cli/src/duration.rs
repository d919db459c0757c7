//! Durations on the command line, one convention for every flag: a human duration such as
//! `250ms`, `30s`, `10m`, `1h30m` or `7d` (humantime's units: ms, s, m, h, d, w and their
//! long forms; fractions such as `1.5s` too).
//!
//! A bare number is refused, since nothing says whether `250` means milliseconds or seconds;
//! only `0` is taken, as it means the same in every unit. Flags that used to carry their unit
//! in their name (`--timeout-ms`, `--linger-ms`, `--duration-s`, `--by-duration-ms`,
//! `--offsets-retention-minutes`, `--drain-timeout-ms`) remain as hidden spellings that read a
//! bare number in that unit, so scripts written for them keep working; each conflicts with its
//! new name, and [`given`] picks whichever of the two was used.

use std::ffi::OsStr;
use std::time::Duration;

use clap::builder::TypedValueParser;

/// The unit an old flag's name carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Seconds,
    Minutes,
}

impl Unit {
    fn of(self, count: u64) -> Option<Duration> {
        match self {
            Unit::Millis => Some(Duration::from_millis(count)),
            Unit::Seconds => Some(Duration::from_secs(count)),
            Unit::Minutes => count.checked_mul(60).map(Duration::from_secs),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Seconds => "seconds",
            Unit::Minutes => "minutes",
        }
    }
}

/// A clap value parser for a duration flag: a human duration, or for an old flag a bare number
/// in its unit, within bounds checked while the arguments are parsed.
#[derive(Debug, Clone, Copy)]
pub struct DurationParser {
    /// `None`: a human duration; `Some`: a bare number of this unit (an old flag).
    bare_unit: Option<Unit>,
    min: Duration,
    max: Duration,
}

impl DurationParser {
    /// A human duration (`30s`), the form of every new flag.
    pub const fn human() -> DurationParser {
        DurationParser {
            bare_unit: None,
            min: Duration::ZERO,
            max: Duration::MAX,
        }
    }

    /// The same bounds, for a bare number of `unit`: the form of the old flag that had the
    /// unit in its name.
    pub const fn number_of(self, unit: Unit) -> DurationParser {
        DurationParser {
            bare_unit: Some(unit),
            ..self
        }
    }

    pub const fn at_least(self, min: Duration) -> DurationParser {
        DurationParser { min, ..self }
    }

    pub const fn at_most(self, max: Duration) -> DurationParser {
        DurationParser { max, ..self }
    }

    pub fn parse(&self, text: &str) -> Result<Duration, String> {
        let duration = match self.bare_unit {
            None => parse_human(text)?,
            Some(unit) => text
                .parse()
                .ok()
                .and_then(|count| unit.of(count))
                .ok_or_else(|| format!("'{text}' is not a whole number of {}", unit.name()))?,
        };
        if duration < self.min {
            return Err(format!(
                "'{text}' is shorter than the shortest allowed, {}",
                human(self.min)
            ));
        }
        if duration > self.max {
            return Err(format!(
                "'{text}' is longer than the longest allowed, {}",
                human(self.max)
            ));
        }
        Ok(duration)
    }
}

impl TypedValueParser for DurationParser {
    type Value = Duration;

    fn parse_ref(
        &self,
        command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Duration, clap::Error> {
        // Through clap's parser for functions, so the error reads like every other invalid
        // value: "invalid value '250' for '--timeout <DURATION>': ...".
        let parser = *self;
        (move |text: &str| parser.parse(text)).parse_ref(command, arg, value)
    }
}

/// A human duration: `250ms`, `30s`, `10m`, `1h30m`, `7d`, or `0`.
pub fn parse_human(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text != "0" && !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!(
            "'{text}' has no unit: write {text}ms, {text}s or {text}m"
        ));
    }
    humantime::parse_duration(text).map_err(|error| {
        format!("'{text}' is not a duration ({error}); write e.g. 250ms, 30s, 10m or 1h30m")
    })
}

/// `duration` as a person writes it, in the form the flags take: `30s`, `1h 30m`, `250ms`.
pub fn human(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// What a duration flag was given: the old name's value if that was used (clap refuses both
/// at once), else the new name's value or default. `T` is `Duration` for a flag with a default
/// and `Option<Duration>` for one without.
pub fn given<T: From<Duration>>(new: T, old: Option<Duration>) -> T {
    old.map_or(new, T::from)
}

/// Whole milliseconds, for the client settings that take them (saturating; a sub-millisecond
/// rest is dropped).
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_add_up_their_units() {
        let parse = |text| parse_human(text).unwrap();
        assert_eq!(parse("250ms"), Duration::from_millis(250));
        assert_eq!(parse("30s"), Duration::from_secs(30));
        assert_eq!(parse("10m"), Duration::from_secs(600));
        assert_eq!(parse("2h"), Duration::from_secs(7_200));
        assert_eq!(parse("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(parse("1h30m"), Duration::from_secs(5_400));
        assert_eq!(parse("1h 30m"), Duration::from_secs(5_400));
        assert_eq!(parse("1.5s"), Duration::from_millis(1_500));
        assert_eq!(parse("0"), Duration::ZERO);
    }

    #[test]
    fn a_bare_number_is_refused_with_the_units_to_write() {
        assert_eq!(
            parse_human("250"),
            Err("'250' has no unit: write 250ms, 250s or 250m".to_string())
        );
        for bad in ["", "m", "10x", "10m-", "h1", "-5s"] {
            let error = parse_human(bad).unwrap_err();
            assert!(error.contains("is not a duration"), "{bad}: {error}");
        }
    }

    #[test]
    fn an_old_flag_reads_a_bare_number_in_its_unit() {
        let millis = DurationParser::human().number_of(Unit::Millis);
        assert_eq!(millis.parse("1500"), Ok(Duration::from_millis(1_500)));
        assert_eq!(
            millis.parse("1s"),
            Err("'1s' is not a whole number of milliseconds".to_string())
        );
        let seconds = DurationParser::human().number_of(Unit::Seconds);
        assert_eq!(seconds.parse("10"), Ok(Duration::from_secs(10)));
        let minutes = DurationParser::human().number_of(Unit::Minutes);
        assert_eq!(minutes.parse("60"), Ok(Duration::from_secs(3_600)));
        assert!(minutes.parse(&u64::MAX.to_string()).is_err());
    }

    #[test]
    fn bounds_are_checked_in_either_form() {
        let bounded = DurationParser::human()
            .at_least(Duration::from_millis(100))
            .at_most(Duration::from_secs(60));
        assert_eq!(bounded.parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(
            bounded.parse("99ms"),
            Err("'99ms' is shorter than the shortest allowed, 100ms".to_string())
        );
        assert_eq!(
            bounded.parse("61s"),
            Err("'61s' is longer than the longest allowed, 1m".to_string())
        );
        let old = bounded.number_of(Unit::Millis);
        assert_eq!(old.parse("100"), Ok(Duration::from_millis(100)));
        assert!(old.parse("99").is_err());
    }

    #[test]
    fn the_old_name_wins_only_when_given() {
        let new = Duration::from_secs(30);
        let old = Duration::from_millis(1_500);
        assert_eq!(given(new, None), new);
        assert_eq!(given(new, Some(old)), old);
        assert_eq!(given(None, Some(old)), Some(old));
        assert_eq!(given(Some(new), None), Some(new));
    }
}

//! Times as the officers read them: in the spoke's configured time zone (an IANA name such as
//! "Asia/Almaty", checked when the config is read; UTC by default), with the offset shown, so
//! a time on screen or on paper is never ambiguous. The zone rules are `jiff`'s bundled copy
//! of the tz database: the same on every host, none read from the system.

use caravan_common::Timestamp;
use jiff::tz::TimeZone;

/// The console's time zone.
#[derive(Debug, Clone)]
pub struct Clock {
    zone: TimeZone,
    name: String,
}

impl Default for Clock {
    /// UTC.
    fn default() -> Self {
        Self {
            zone: TimeZone::UTC,
            name: "UTC".into(),
        }
    }
}

impl Clock {
    /// The zone named `name` in the bundled tz database; the error says why not.
    pub fn new(name: &str) -> Result<Self, String> {
        let zone = jiff::tz::db()
            .get(name)
            .map_err(|e| format!("{name:?} is not a time zone of the IANA database ({e})"))?;
        Ok(Self {
            zone,
            name: name.to_owned(),
        })
    }

    /// The zone's IANA name, as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `t` in this zone, to the second, with its UTC offset: "2026-12-06 14:05:09 +05:00". A
    /// time outside the calendar's range (years -9999 to 9999) is shown as the spoke stores it,
    /// in milliseconds since 1970 (never through `Timestamp`'s RFC 3339 `Display`, which fails
    /// past year 9999).
    pub fn format(&self, t: Timestamp) -> String {
        match jiff::Timestamp::from_millisecond(t.as_millis()) {
            Ok(ts) => ts
                .to_zoned_datetime(self.zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
            Err(_) => raw(t),
        }
    }

    /// A time a document states, for reading: a date-time with an offset or `Z` (RFC 3339,
    /// "2026-12-06T19:51:28Z") in this zone as [`Self::format`] shows times; anything else (a
    /// date, a time without an offset, text) as the document gives it, since it names no
    /// instant to convert.
    pub fn document_time(&self, text: &str) -> String {
        match text.trim().parse::<jiff::Timestamp>() {
            Ok(ts) => ts
                .to_zoned_datetime(self.zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S %:z")
                .to_string(),
            Err(_) => text.to_owned(),
        }
    }

    /// `t` in this zone, to the minute, with the zone's name: "2026-12-06 14:05 Asia/Almaty"
    /// ("2026-12-06 09:05 UTC").
    pub fn minute_named(&self, t: Timestamp) -> String {
        format!("{} {}", self.format_short(t), self.name)
    }

    /// `t` in this zone, to the minute, for lists: "2026-12-06 14:05".
    pub fn format_short(&self, t: Timestamp) -> String {
        match jiff::Timestamp::from_millisecond(t.as_millis()) {
            Ok(ts) => ts
                .to_zoned_datetime(self.zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string(),
            Err(_) => raw(t),
        }
    }
}

/// A time the calendar cannot show.
fn raw(t: Timestamp) -> String {
    format!("{} ms", t.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T09:05:09Z.
    const T: i64 = 1_796_547_909_000;

    #[test]
    fn times_are_shown_in_the_configured_zone_with_the_offset() {
        let t = Timestamp::from_millis(T);
        assert_eq!(Clock::default().format(t), "2026-12-06 09:05:09 +00:00");
        assert_eq!(Clock::default().name(), "UTC");
        let almaty = Clock::new("Asia/Almaty").unwrap();
        assert_eq!(almaty.format(t), "2026-12-06 14:05:09 +05:00");
        assert_eq!(almaty.format_short(t), "2026-12-06 14:05");
        assert_eq!(almaty.minute_named(t), "2026-12-06 14:05 Asia/Almaty");
        assert_eq!(Clock::default().minute_named(t), "2026-12-06 09:05 UTC");
        let shanghai = Clock::new("Asia/Shanghai").unwrap();
        assert_eq!(shanghai.format(t), "2026-12-06 17:05:09 +08:00");
        assert_eq!(shanghai.name(), "Asia/Shanghai");
        // Summer time where the zone has it.
        let berlin = Clock::new("Europe/Berlin").unwrap();
        assert_eq!(
            berlin.format(Timestamp::from_millis(T - 160 * 86_400_000)),
            "2026-06-29 11:05:09 +02:00"
        );
    }

    #[test]
    fn an_unknown_zone_is_refused_and_out_of_range_times_stay_raw() {
        let e = Clock::new("Asia/Atlantis").unwrap_err();
        assert!(e.contains("\"Asia/Atlantis\" is not a time zone"), "{e}");
        assert!(Clock::new("").is_err());
        let far = Timestamp::from_millis(i64::MAX);
        assert_eq!(Clock::default().format(far), format!("{} ms", i64::MAX));
        assert_eq!(
            Clock::default().format_short(far),
            format!("{} ms", i64::MAX)
        );
    }

    #[test]
    fn a_document_time_with_an_offset_is_shown_in_the_zone_and_a_date_as_written() {
        let almaty = Clock::new("Asia/Almaty").unwrap();
        assert_eq!(
            almaty.document_time("2026-12-06T19:51:28Z"),
            "2026-12-07 00:51:28 +05:00"
        );
        assert_eq!(
            almaty.document_time("2026-11-27T10:15:00+05:00"),
            "2026-11-27 10:15:00 +05:00"
        );
        assert_eq!(
            Clock::default().document_time("2016-04-22T13:53:08-03:00"),
            "2016-04-22 16:53:08 +00:00"
        );
        for as_written in ["2026-11-20", "2026-11-20T10:15:00", "soon", ""] {
            assert_eq!(almaty.document_time(as_written), as_written);
        }
    }
}

//! Points in time as they travel: milliseconds since the Unix epoch, UTC.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch (UTC). Serialises as RFC 3339 text for people and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn as_millis(&self) -> i64 {
        self.0
    }

    /// The time, if RFC 3339 can write it: from 1970 to the end of year 9999 (humantime's
    /// formatter fails beyond it, and a time from the wire may be anything).
    fn to_system_time(self) -> Option<SystemTime> {
        const END_OF_9999_MS: u64 = 253_402_300_799_999;
        let ms = u64::try_from(self.0)
            .ok()
            .filter(|ms| *ms <= END_OF_9999_MS)?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Self(i64::try_from(ms).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_system_time() {
            Some(t) => humantime::format_rfc3339_millis(t).fmt(f),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Parse an RFC 3339 time such as `2026-11-26T10:00:00Z`.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text).map(Timestamp::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_rfc3339_cannot_write_are_shown_in_milliseconds() {
        assert_eq!(
            Timestamp::from_millis(253_402_300_799_999).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_millis(253_402_300_800_000).to_string(),
            "253402300800000ms"
        );
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_string(),
            format!("{}ms", i64::MAX)
        );
        assert_eq!(Timestamp::from_millis(-1).to_string(), "-1ms");
    }

    #[test]
    fn formats_as_rfc3339() {
        assert_eq!(
            Timestamp::from_millis(1_764_150_000_123).to_string(),
            "2025-11-26T09:40:00.123Z"
        );
        let t = parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T03:04:05.000Z");
    }
}

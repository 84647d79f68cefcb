//! Event time: [`Ts`], milliseconds since the Unix epoch, read from the many ways logs write a time and written
//! back as RFC 3339.
//!
//! In: a log's time field (RFC 3339 with any offset, zone-less forms, epoch seconds to nanoseconds, the formats of
//! Salesforce and access logs). Out: a [`Ts`], or none for a time that is no time. State: none.

use super::*;

/// Event time in milliseconds since the Unix epoch (UTC): when a log says something happened, and the
/// pipeline's processing clock that event times move ([`crate::timeline`]). Quench's own wall clock is another
/// type, [`crate::clock::WallTime`]. Serialized as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ts(pub i64);

/// A numeric string as epoch time in ms: up to 11 integer digits are seconds, 12-14 milliseconds, 15-17
/// microseconds, 18-19 nanoseconds; a fraction is allowed on seconds.
fn epoch_ms(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 19 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = int.parse().ok()?;
    match int.len() {
        0..=11 => {
            let f: f64 = format!("0.{}", if frac.is_empty() { "0" } else { frac })
                .parse()
                .ok()?;
            n.checked_mul(1000)?.checked_add((f * 1000.0) as i64)
        }
        _ if !frac.is_empty() => None,
        12..=14 => Some(n),
        15..=17 => Some(n / 1000),
        _ => Some(n / 1_000_000),
    }
}

impl Ts {
    /// Parse RFC 3339 (`2020-01-01T00:00:00.000Z`, any offset) or the zone-less forms
    /// `2020-01-01 00:00:00.000000000` / `2020-01-01T00:00:00` that some pipelines rewrite to (read as UTC).
    pub fn parse(s: &str) -> Option<Ts> {
        // the form Quench writes (routed events, held events, saved state): read without chrono's parser
        if let Some(t) = Ts::parse_canonical(s.as_bytes()) {
            return Some(t);
        }
        // digits (and a fraction): an epoch time, unless it is the 14-digit compact form `20200101000000`
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if s.split('.').next().is_some_and(|i| i.len() == 14) {
                if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S%.f") {
                    return Some(Ts(t.and_utc().timestamp_millis()));
                }
            }
            return epoch_ms(s).map(Ts);
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
            return Some(Ts(t.timestamp_millis()));
        }
        for f in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y%m%d%H%M%S%.f",
        ] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
                return Some(Ts(t.and_utc().timestamp_millis()));
            }
        }
        // epoch seconds, milliseconds, microseconds or nanoseconds written as a string, told apart by magnitude
        // ("1623190575", "1623190575123", "1623190575123456789"), as pipelines rewrite numeric times
        if let Some(ms) = epoch_ms(s) {
            return Some(Ts(ms));
        }
        // "2022-08-16T09:26:38.000+0000" (Salesforce), "2020-01-01 00:00:00.000 +0000",
        // "10/Jun/2023:15:36:28 +0000" (Apache/NGINX/API Gateway)
        for f in [
            "%Y-%m-%dT%H:%M:%S%.f%z",
            "%Y-%m-%d %H:%M:%S%.f %z",
            "%d/%b/%Y:%H:%M:%S %z",
        ] {
            if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
                return Some(Ts(t.timestamp_millis()));
            }
        }
        None
    }
    /// An epoch time in seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude as for
    /// numeric strings (below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds).
    pub fn from_epoch(n: f64) -> Option<Ts> {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let ms = if n < 1e11 {
            n * 1000.0
        } else if n < 1e14 {
            n
        } else if n < 1e17 {
            n / 1000.0
        } else if n < 1e20 {
            n / 1_000_000.0
        } else {
            return None;
        };
        Some(Ts(ms as i64))
    }
    /// RFC 3339 with milliseconds and `Z`.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; 24];
        match self.canonical(&mut buf) {
            Some(s) => s.to_string(),
            None => match chrono::DateTime::from_timestamp_millis(self.0) {
                Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                None => self.0.to_string(),
            },
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ` written into `buf`, for years 0 to 9999 (others: `None`, and chrono writes them).
    pub(super) fn canonical(self, buf: &mut [u8; 24]) -> Option<&str> {
        use chrono::{Datelike, Timelike};
        let t = chrono::DateTime::from_timestamp_millis(self.0)?;
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut put = |at: usize, v: u32, digits: usize| {
            let mut v = v;
            for i in (0..digits).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year, 4);
        put(5, t.month(), 2);
        put(8, t.day(), 2);
        put(11, t.hour(), 2);
        put(14, t.minute(), 2);
        put(17, t.second(), 2);
        put(20, self.0.rem_euclid(1000) as u32, 3);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ] {
            buf[at] = c;
        }
        std::str::from_utf8(buf).ok()
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ` exactly (what [`Ts::to_rfc3339`] writes), else `None` (the general parser
    /// decides: other forms, leap seconds, impossible dates).
    pub(super) fn parse_canonical(b: &[u8]) -> Option<Ts> {
        if b.len() != 24
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[23] != b'Z'
        {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if hour > 23 || min > 59 || sec > 59 {
            return None;
        }
        let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
        let t = date.and_hms_milli_opt(hour, min, sec, num(20, 23)?)?;
        Some(Ts(t.and_utc().timestamp_millis()))
    }
    /// Seconds between two times (may be negative).
    pub fn secs_since(self, earlier: Ts) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        match self.canonical(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&self.to_rfc3339()),
        }
    }
}
impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Ts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or an epoch time")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Ts, E> {
                Ts::parse(v).ok_or_else(|| E::custom(format!("not a timestamp: {v:?}")))
            }
            // epoch seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude as in strings
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ts, E> {
                epoch_ms(&v.to_string())
                    .map(Ts)
                    .ok_or_else(|| E::custom(format!("not an epoch time: {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ts, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("not an epoch time: {v}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

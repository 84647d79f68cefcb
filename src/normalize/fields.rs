//! Fields as log pipelines rewrite them: numbers, booleans and times that arrive as strings (or the other way
//! round), values whose type varies between exporters, and user-configured dot paths into a record.
//!
//! In: one field's JSON value (through serde), or a record's text and a path. Out: the value read leniently, or
//! absent. State: none.

use super::*;

/// A number that pipelines may have rewritten as a string (`"12345"`): either form, or absent.
pub(crate) fn lenient_num<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: LenientNum,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: LenientNum> serde::de::Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number, or a number written as a string")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Option<T>, E> {
            Ok(T::from_u64(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Option<T>, E> {
            Ok(u64::try_from(v)
                .ok()
                .and_then(T::from_u64)
                .or_else(|| T::from_f64(v as f64)))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Option<T>, E> {
            Ok(T::from_f64(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<T>, E> {
            Ok(v.trim().parse().ok().filter(T::usable))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Option<T>, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Option<T>, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

/// The numeric types [`lenient_num`] reads: from a JSON number without allocating, or from a string.
pub(crate) trait LenientNum: std::str::FromStr + Sized {
    fn from_u64(v: u64) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
    /// Whether a value parsed from a string is a number (`"NaN"` and `"inf"` parse as `f64` but are none).
    fn usable(&self) -> bool {
        true
    }
}

macro_rules! lenient_int {
    ($($t:ty),*) => {$(
        impl LenientNum for $t {
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn from_f64(v: f64) -> Option<Self> {
                (v.fract() == 0.0 && v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64).then(|| v as $t)
            }
        }
    )*};
}
lenient_int!(u16, u32, u64, i64);

impl LenientNum for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        v.is_finite().then_some(v)
    }
    fn usable(&self) -> bool {
        self.is_finite()
    }
}

/// A flag written as a boolean, as `"true"`/`"false"`, or as 0/1 (exporters vary); anything else is absent.
pub(crate) fn lenient_bool<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Option<bool>, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Option<bool>, E> {
            Ok(match v {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Option<bool>, E> {
            Ok(u64::try_from(v).ok().and_then(|u| match u {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            }))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<bool>, E> {
            Ok(match v.trim() {
                "true" | "True" | "TRUE" | "1" => Some(true),
                "false" | "False" | "FALSE" | "0" => Some(false),
                _ => None,
            })
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(
            self,
            d: D2,
        ) -> Result<Option<bool>, D2::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(V)
}

/// A time as pipelines write it: a timestamp string, or epoch seconds, milliseconds, microseconds or nanoseconds
/// as a number or a numeric string (told apart by magnitude); numbers are read without allocating.
pub(crate) fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Ts>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Ts>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a timestamp or an epoch time")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Option<Ts>, E> {
            Ok(Ts::from_epoch(v as f64))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Option<Ts>, E> {
            Ok(Ts::from_epoch(v as f64))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Option<Ts>, E> {
            Ok(Ts::from_epoch(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<Ts>, E> {
            Ok(Ts::parse(v.trim()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<Ts>, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<Ts>, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Option<Ts>, D2::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(V)
}

/// The string at a dot-separated path of a JSON object (`authenticated_entity.id`), reading only the objects on
/// the way. Used for user-configured paths; formats read their default fields through typed structs.
pub(crate) fn lookup_path<'a>(raw: &'a str, path: &str) -> Option<Text<'a>> {
    let mut cur: &'a str = raw;
    for seg in path.split('.') {
        let map: std::collections::HashMap<Text<'a>, &'a serde_json::value::RawValue> =
            serde_json::from_str(cur).ok()?;
        cur = map.get(seg)?.get();
    }
    serde_json::from_str::<Text<'a>>(cur).ok()
}

#[cfg(test)]
mod path_tests {
    use super::lookup_path;
    #[test]
    fn lookup_path_finds_nested_strings_and_numbers_only() {
        let raw = r#"{"a":{"b":{"c":"x\"y","n":12,"o":{}}},"z":"top"}"#;
        assert_eq!(lookup_path(raw, "a.b.c").as_deref(), Some("x\"y"));
        assert_eq!(lookup_path(raw, "a.b.n").as_deref(), Some("12"));
        assert_eq!(lookup_path(raw, "z").as_deref(), Some("top"));
        assert_eq!(lookup_path(raw, "a.b.o"), None);
        assert_eq!(lookup_path(raw, "a.q"), None);
    }
}

/// A value read leniently: strings and numbers become text, anything else (objects, arrays, booleans, null) is
/// absent. For vendor fields whose type varies between exporters.
#[derive(Default, Debug)]
pub(crate) struct Loose<'a>(pub Option<Text<'a>>);

impl<'a> Loose<'a> {
    /// The text, unless it is absent or blank.
    pub(crate) fn non_empty(self) -> Option<Text<'a>> {
        self.0.filter(|t| !t.trim().is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose(Some(Text::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose(Some(Text::from(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Text::from(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Text::from(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose(Some(Text::from(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Loose(None))
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A time given as epoch seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude, as
/// pipelines rewrite one unit into another) or as a timestamp string.
pub(crate) fn ms_or_timestamp(t: &str) -> Option<Ts> {
    Ts::parse(t.trim())
}

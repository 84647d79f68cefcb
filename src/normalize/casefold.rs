//! Case-insensitive field names for records whose keys a pipeline rewrote (`creationtime`, `eventtype`,
//! `clientip`): a serde [`Deserializer`] wrapper that, wherever a typed struct is read, maps each key onto the
//! struct field it names regardless of ASCII case.
//!
//! In: any serde deserializer (a `serde_json::Deserializer` over a record). Out: the same values, with the keys
//! of every struct (nested ones, in lists and options too) matched to the struct's own field names when they
//! differ only in case. Keys of maps (`HashMap`, flattened structs) and raw values are passed as they are.
//! State: none.
//!
//! It is used only after a record failed as written (see `normalize::parse_json`), so records in their vendor's
//! own casing pay nothing.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A deserializer whose structs take their fields in any ASCII case.
pub(crate) struct CaseFold<D>(pub D);

/// The visitor of a value under [`CaseFold`]: nested maps, lists, options and newtypes stay folded.
struct Wrap<V> {
    inner: V,
    fields: Option<&'static [&'static str]>,
}

macro_rules! forward {
    ($($m:ident),*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.0.$m(Wrap { inner: v, fields: None })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for CaseFold<D> {
    type Error = D::Error;

    forward!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(
            name,
            Wrap {
                inner: v,
                fields: None,
            },
        )
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        if name.starts_with("$serde_json") {
            // serde_json's raw values read their own bytes
            return self.0.deserialize_newtype_struct(name, v);
        }
        self.0.deserialize_newtype_struct(
            name,
            Wrap {
                inner: v,
                fields: None,
            },
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(
            len,
            Wrap {
                inner: v,
                fields: None,
            },
        )
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(
            name,
            len,
            Wrap {
                inner: v,
                fields: None,
            },
        )
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(
            name,
            fields,
            Wrap {
                inner: v,
                fields: Some(fields),
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, v)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! visit {
    ($($m:ident($t:ty)),*) => {$(
        fn $m<E: de::Error>(self, x: $t) -> Result<V::Value, E> {
            self.inner.$m(x)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>)
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_some(CaseFold(d))
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_newtype_struct(CaseFold(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(FoldSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(FoldMap {
            map,
            fields: self.fields,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

struct FoldSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for FoldSeq<A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Folded(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct FoldMap<A> {
    map: A,
    fields: Option<&'static [&'static str]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for FoldMap<A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.fields {
            Some(fields) => self.map.next_key_seed(Key { seed, fields }),
            None => self.map.next_key_seed(seed),
        }
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(Folded(seed))
    }
    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A value's seed, reading it folded.
struct Folded<T>(T);

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Folded<T> {
    type Value = T::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> {
        self.0.deserialize(CaseFold(d))
    }
}

/// A struct's key: handed on as the field it names in any case, else as it is.
struct Key<K> {
    seed: K,
    fields: &'static [&'static str],
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Key<K> {
    type Value = K::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
        enum Name<'de> {
            Borrowed(&'de str),
            Owned(String),
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name::Owned(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name::Owned(s))
            }
        }
        let name = d.deserialize_str(V)?;
        let text = match &name {
            Name::Borrowed(s) => *s,
            Name::Owned(s) => s.as_str(),
        };
        let field = if self.fields.contains(&text) {
            None
        } else {
            self.fields
                .iter()
                .find(|f| f.eq_ignore_ascii_case(text))
                .copied()
        };
        match (field, name) {
            (Some(f), _) => self
                .seed
                .deserialize(BorrowedStrDeserializer::<D::Error>::new(f)),
            (None, Name::Borrowed(s)) => self
                .seed
                .deserialize(BorrowedStrDeserializer::<D::Error>::new(s)),
            (None, Name::Owned(s)) => self
                .seed
                .deserialize(StringDeserializer::<D::Error>::new(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CaseFold;
    use crate::event::Text;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Outer<'a> {
        #[serde(borrow)]
        creation_time: Text<'a>,
        #[serde(borrow, default)]
        app_access_context: Option<Inner<'a>>,
        #[serde(borrow, default)]
        list: Vec<Inner<'a>>,
        #[serde(borrow, default, rename = "eventType")]
        event_type: Option<Text<'a>>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Inner<'a> {
        #[serde(borrow, rename = "AADSessionId")]
        session: Text<'a>,
    }

    fn folded<'a, T: Deserialize<'a>>(s: &'a str) -> Result<T, serde_json::Error> {
        T::deserialize(CaseFold(&mut serde_json::Deserializer::from_str(s)))
    }

    #[test]
    fn lowercased_keys_find_their_fields_at_every_depth_and_values_stay_borrowed() {
        let raw = r#"{"creationtime":"2026-11-02T08:00:00","appaccesscontext":{"aadsessionid":"s-1"},"list":[{"AADSESSIONID":"s-2"}],"eventtype":"x"}"#;
        let o: Outer = folded(raw).unwrap();
        assert_eq!(o.creation_time.as_str(), "2026-11-02T08:00:00");
        assert!(matches!(o.creation_time, Text::Borrowed(_)));
        assert_eq!(o.app_access_context.unwrap().session.as_str(), "s-1");
        assert_eq!(o.list[0].session.as_str(), "s-2");
        assert_eq!(o.event_type.as_deref(), Some("x"));
    }

    #[test]
    fn keys_in_their_own_case_and_unknown_keys_are_untouched() {
        let raw = r#"{"CreationTime":"t","Extra":1}"#;
        let o: Outer = folded(raw).unwrap();
        assert_eq!(o.creation_time.as_str(), "t");
        assert!(serde_json::from_str::<Outer>(r#"{"creationtime":"t"}"#).is_err());
    }
}

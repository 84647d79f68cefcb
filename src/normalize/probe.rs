//! The probe: the top-level keys of a message that some registered format detects on, read without building
//! values, for auto-detection ([`super::Normalizer::sniff`]).
//!
//! In: one JSON message. Out: a [`Probe`] (which declared keys are present, and the `kind` and `category`
//! strings). State: the table of declared keys, built once from the registry ([`super::Registered::keys`]).

use super::registry;
use crate::event::Text;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::HashMap;

/// Keys the envelope reader looks for (`{"records": [...]}`, as Azure Monitor exports).
const ENVELOPE_KEYS: &[&str] = &["records"];

/// The keys the probe reads: the union of every registered format's [`Registered::keys`] and the envelope's, each
/// once, in registry order, with the bit each sets in [`Probe`].
struct ProbeKeys {
    names: &'static [&'static str],
    bits: HashMap<&'static str, u32, foldhash::fast::FixedState>,
}

fn probe_keys() -> &'static ProbeKeys {
    static KEYS: std::sync::OnceLock<ProbeKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut names: Vec<&'static str> = Vec::new();
        for k in registry()
            .iter()
            .flat_map(|r| r.keys.iter())
            .chain(ENVELOPE_KEYS)
        {
            if !names.contains(k) {
                names.push(k);
            }
        }
        assert!(
            names.len() <= 128,
            "the probe holds at most 128 keys, the formats declare {}",
            names.len()
        );
        let bits = names
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i as u32))
            .collect();
        ProbeKeys {
            names: Vec::leak(names),
            bits,
        }
    })
}

/// The top-level keys of a message that some registered format detects on, read without building values, and the
/// values of `kind` and `category` (which some formats detect by); formats sniff it with [`Probe::has`]. The keys
/// are those the formats declare in the registry ([`Registered::keys`]), so a new format adds its own without
/// touching this type.
#[derive(Default, Debug)]
pub struct Probe<'a> {
    present: u128,
    /// The value of a top-level `kind` string (Google's `admin#reports#activity`).
    pub kind: Option<Text<'a>>,
    /// The value of a top-level `category` string (Azure Monitor's log category, the native event's category).
    pub category: Option<Text<'a>>,
    /// Every top-level key, for declarative mappings (filled only when mappings are configured).
    pub keys: Vec<Text<'a>>,
}

impl Probe<'_> {
    /// Whether the message has the top-level key `key`. A format may ask only about keys it declares in its
    /// registry entry (checked in debug builds: an undeclared key would always read as absent).
    pub fn has(&self, key: &str) -> bool {
        match probe_keys().bits.get(key) {
            Some(bit) => self.present & (1u128 << bit) != 0,
            None => {
                debug_assert!(
                    false,
                    "the probe was asked for {key:?}, which no format declares in its keys"
                );
                false
            }
        }
    }

    /// Whether the message has any of `keys` (one key as vendors and pipelines spell it).
    pub fn has_any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.has(k))
    }

    pub(super) fn describe(&self) -> String {
        let keys: Vec<&str> = probe_keys()
            .names
            .iter()
            .enumerate()
            .filter(|(i, _)| self.present & (1u128 << i) != 0)
            .map(|(_, k)| *k)
            .collect();
        if keys.is_empty() {
            "none Quench knows".into()
        } else {
            keys.join(", ")
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Probe<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Probe<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Probe<'a>, M::Error> {
                let table = probe_keys();
                let mut p = Probe::default();
                // every declared key read so far, null or not: a key given twice is refused, as a typed parse
                // refuses it (two parsers must not read one message differently)
                let mut seen = 0u128;
                while let Some(key) = m.next_key::<Text<'de>>()? {
                    match table.bits.get(key.as_str()) {
                        Some(bit) => {
                            let bit = 1u128 << bit;
                            if seen & bit != 0 {
                                return Err(serde::de::Error::custom(format_args!(
                                    "duplicate field `{}`",
                                    key.as_str()
                                )));
                            }
                            seen |= bit;
                            // a key whose value is null is absent, as for a typed `Option` field
                            let present = match key.as_str() {
                                "kind" => {
                                    p.kind = m.next_value()?;
                                    p.kind.is_some()
                                }
                                "category" => {
                                    p.category = m.next_value()?;
                                    p.category.is_some()
                                }
                                _ => m.next_value::<Option<IgnoredAny>>()?.is_some(),
                            };
                            if present {
                                p.present |= bit;
                            }
                        }
                        None => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(p)
            }
        }
        // as a struct, so that a case-folding deserializer maps recased keys onto the declared ones
        d.deserialize_struct("Probe", probe_keys().names, Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a review of the registry-built probe: a key whose value is null is absent (fixed-schema exports
    /// fill missing columns with nulls), and a declared key given twice is refused, as the derived probe did.
    #[test]
    fn a_null_key_is_absent_and_a_repeated_key_is_refused() {
        let p: Probe = serde_json::from_str(
            r#"{"action":"repo.create","actor":"bob","created_at":1,"eventType":null,"kind":null}"#,
        )
        .unwrap();
        assert!(p.has("action") && p.has("actor") && p.has("created_at"));
        assert!(!p.has("eventType"));
        assert!(p.kind.is_none() && !p.has("kind"));
        let e = serde_json::from_str::<Probe>(
            r#"{"kind":"x","kind":"admin#reports#activity","events":[]}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("duplicate field `kind`"), "{e}");
        let e =
            serde_json::from_str::<Probe>(r#"{"eventType":null,"eventType":"user.session.start"}"#)
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("duplicate field"), "{e}");
        // keys no format declares may repeat, as before
        let p: Probe = serde_json::from_str(r#"{"x":1,"x":2,"published":"t"}"#).unwrap();
        assert!(p.has("published"));
    }
}

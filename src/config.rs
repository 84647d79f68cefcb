//! Configuration: the TOML file of `quench run` (documented key by key in `quench.example.toml`).
//!
//! In: the file's text. Out: a validated [`Config`]; every stage re-checks its own part when it is built at
//! start-up, and errors name the key, the bad value and what is allowed. State: none.

use crate::{correlate, decide, detect, normalize, respond};
use serde::Deserialize;

/// Any start-up configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Normalize(#[from] normalize::ConfigError),
    #[error(transparent)]
    Detect(#[from] detect::ConfigError),
    #[error(transparent)]
    Decide(#[from] decide::ConfigError),
    #[error(transparent)]
    Respond(#[from] respond::ConfigError),
    #[error(transparent)]
    Evidence(#[from] crate::evidence::ConfigError),
    #[error("{key} = {value:?}: {why}")]
    Invalid {
        key: String,
        value: String,
        why: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka input and outputs. Required for `quench run`.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    #[serde(default)]
    pub normalize: normalize::NormalizeConfig,
    #[serde(default)]
    pub correlate: correlate::CorrelateConfig,
    #[serde(default)]
    pub detect: detect::DetectConfig,
    #[serde(default)]
    pub decide: decide::DecideConfig,
    #[serde(default)]
    pub respond: respond::RespondConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Learned state kept across restarts (`[state]`). Default: none.
    #[serde(default)]
    pub state: crate::durable::StateConfig,
    /// The evidence store (`[evidence]`): events, findings, decisions and commands as Parquet. Default: off.
    #[serde(default)]
    pub evidence: crate::evidence::EvidenceConfig,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to serve Prometheus metrics on (`GET /metrics`), e.g. `"127.0.0.1:9464"`. Default: none (off).
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The listen address, checked.
    pub fn addr(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        self.listen
            .as_deref()
            .map(|l| {
                l.parse().map_err(|_| ConfigError::Invalid {
                    key: "metrics.listen".into(),
                    value: l.into(),
                    why: "allowed: an IP address and port such as \"127.0.0.1:9464\"".into(),
                })
            })
            .transpose()
    }
}

pub use crate::bus::{KafkaConfig, TopicConfig};

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `human` or `json`. Default `human`.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Config {
    pub fn from_str(text: &str, path: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        Config::from_str(&text, &p)
    }
    /// Checks that need more than one section.
    pub fn validate_kafka(&self, norm: &normalize::Normalize) -> Result<&KafkaConfig, ConfigError> {
        let k = self.kafka.as_ref().ok_or_else(|| ConfigError::Invalid {
            key: "kafka".into(),
            value: String::new(),
            why: "quench run needs a [kafka] section".into(),
        })?;
        if k.topics.is_empty() {
            return Err(ConfigError::Invalid {
                key: "kafka.topics".into(),
                value: "[]".into(),
                why: "name at least one input topic".into(),
            });
        }
        for (i, t) in k.topics.iter().enumerate() {
            norm.check_format(&format!("kafka.topics[{i}].format"), &t.format)?;
        }
        for key in [
            "enable.auto.commit",
            "enable.auto.offset.store",
            "group.id",
            "bootstrap.servers",
        ] {
            if k.properties.contains_key(key) {
                return Err(ConfigError::Invalid {
                    key: format!("kafka.properties.\"{key}\""),
                    value: k.properties[key].clone(),
                    why: "Quench sets this itself (offsets are committed only after processing)"
                        .into(),
                });
            }
        }
        if let Some(d) = &self.detect.dir {
            detect::check_dir(d)?;
        }
        if let Some(hold @ 1..) = self.normalize.reorder_secs {
            let why = if k.keyed.is_some() {
                Some("the reorder hold is for the single-instance topology only; remove [kafka.keyed] or set 0")
            } else if self.state.dir.is_none() {
                Some("held events are state whose input offsets are already committed: set [state] dir, or 0")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ConfigError::Invalid {
                    key: "normalize.reorder_secs".into(),
                    value: hold.to_string(),
                    why: why.into(),
                });
            }
        }
        if let Some(keyed) = &k.keyed {
            if self.evidence.dir.is_some() {
                return Err(ConfigError::Invalid {
                    key: "kafka.keyed".into(),
                    value: keyed.topic.clone(),
                    why: "the evidence store is written by the single-instance topology only; remove \
                          [evidence] dir or [kafka.keyed]"
                        .into(),
                });
            }
            if let Some(n @ (0 | 257..)) = keyed.threads {
                return Err(ConfigError::Invalid {
                    key: "kafka.keyed.threads".into(),
                    value: n.to_string(),
                    why: "a number of threads from 1 to 256".into(),
                });
            }
            let topics = [
                ("kafka.keyed.topic", &keyed.topic),
                ("kafka.keyed.snapshots_topic", &keyed.snapshots_topic),
                ("kafka.keyed.links_topic", &keyed.links_topic),
            ];
            for (key, t) in topics {
                let clash = k.topics.iter().any(|i| &i.name == t)
                    || [&k.decisions_topic, &k.dead_letter_topic].contains(&t)
                    || topics.iter().filter(|(_, o)| *o == t).count() > 1;
                if clash || t.is_empty() {
                    return Err(ConfigError::Invalid {
                        key: key.into(),
                        value: t.to_string(),
                        why: "a topic of its own: not an input, decisions or dead-letter topic, and not another internal topic".into(),
                    });
                }
            }
        }
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped example documents every key, parses and holds every target type.
    #[test]
    fn the_example_config_parses_and_builds() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/quench.example.toml");
        let cfg = Config::load(std::path::Path::new(path)).unwrap();
        let norm = normalize::Normalize::new(&cfg.normalize).unwrap();
        let k = cfg.validate_kafka(&norm).unwrap();
        assert!(!k.topics.is_empty());
        // one target of every registered type (each built with its credentials in tests/it/confirmation.rs)
        let mut types: Vec<&str> = cfg
            .respond
            .targets
            .iter()
            .filter_map(|t| t.get("type")?.as_str())
            .collect();
        types.sort_unstable();
        types.dedup();
        let mut registered: Vec<&str> = respond::registry().iter().map(|r| r.name).collect();
        registered.sort_unstable();
        assert_eq!(types, registered);
        assert!(cfg.metrics.addr().unwrap().is_some());
        detect::Detect::new(&cfg.detect).unwrap();
        decide::Decide::new(cfg.decide.clone()).unwrap();
        assert!(cfg.evidence.dir.is_some());
        cfg.evidence.validate().unwrap();
    }

    #[test]
    fn a_bad_evidence_bound_names_the_key_and_what_is_allowed() {
        let cfg = Config::from_str(
            "[evidence]
batch_rows = 0
",
            "q.toml",
        )
        .unwrap();
        let e = cfg.evidence.validate().err().unwrap().to_string();
        assert!(
            e.contains("evidence.batch_rows") && e.contains("\"0\"") && e.contains("1 to 65536"),
            "{e}"
        );
        let e = Config::from_str(
            "[evidence]
directory = \"x\"\n",
            "q.toml",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("directory"), "{e}");
    }

    #[test]
    fn a_bad_metrics_address_names_the_key() {
        let cfg = Config::from_str("[metrics]\nlisten = \"localhost\"\n", "q.toml").unwrap();
        let e = cfg.metrics.addr().err().unwrap().to_string();
        assert!(
            e.contains("metrics.listen") && e.contains("localhost"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_topic_format_names_the_key_and_the_allowed_values() {
        let cfg = Config::from_str(
            "[kafka]\nbrokers = \"b:9092\"\ntopics = [{ name = \"t\", format = \"splunk\" }]\n",
            "q.toml",
        )
        .unwrap();
        let norm = normalize::Normalize::new(&cfg.normalize).unwrap();
        let e = cfg.validate_kafka(&norm).err().unwrap().to_string();
        assert!(
            e.contains("kafka.topics[0].format") && e.contains("splunk") && e.contains("okta"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_keyed_setting_names_the_key_and_what_is_allowed() {
        let base = "[kafka]\nbrokers = \"b:9092\"\ntopics = [{ name = \"in\", format = \"auto\" }]\n[kafka.keyed]\n";
        for (extra, key, allowed) in [
            ("threads = 0\n", "kafka.keyed.threads", "from 1 to 256"),
            (
                "links_topic = \"in\"\n",
                "kafka.keyed.links_topic",
                "a topic of its own",
            ),
            (
                "snapshots_topic = \"quench.keyed\"\n",
                "kafka.keyed.topic",
                "a topic of its own",
            ),
        ] {
            let cfg = Config::from_str(&format!("{base}{extra}"), "q.toml").unwrap();
            let norm = normalize::Normalize::new(&cfg.normalize).unwrap();
            let e = cfg.validate_kafka(&norm).err().unwrap().to_string();
            assert!(e.contains(key) && e.contains(allowed), "{extra}: {e}");
        }
        let ok = Config::from_str(&format!("{base}threads = 2\n"), "q.toml").unwrap();
        let norm = normalize::Normalize::new(&ok.normalize).unwrap();
        assert!(ok.validate_kafka(&norm).is_ok());
    }

    #[test]
    fn the_reorder_hold_needs_durable_state_and_the_single_instance_topology() {
        let kafka =
            "[kafka]\nbrokers = \"b:9092\"\ntopics = [{ name = \"in\", format = \"auto\" }]\n";
        let hold = "[normalize]\nreorder_secs = 5400\n";
        let state = "[state]\ndir = \"/var/lib/quench\"\n";
        for (text, allowed) in [
            (format!("{hold}{kafka}"), "set [state] dir"),
            (
                format!("{hold}{state}{kafka}[kafka.keyed]\n"),
                "single-instance topology only",
            ),
        ] {
            let cfg = Config::from_str(&text, "q.toml").unwrap();
            let norm = normalize::Normalize::new(&cfg.normalize).unwrap();
            let e = cfg.validate_kafka(&norm).err().unwrap().to_string();
            assert!(
                e.contains("normalize.reorder_secs") && e.contains("5400") && e.contains(allowed),
                "{e}"
            );
        }
        let ok = Config::from_str(&format!("{hold}{state}{kafka}"), "q.toml").unwrap();
        let norm = normalize::Normalize::new(&ok.normalize).unwrap();
        assert!(ok.validate_kafka(&norm).is_ok());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = Config::from_str("[decide]\nrevoke_tokn = 0.7\n", "q.toml")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("revoke_tokn"), "{e}");
    }
}

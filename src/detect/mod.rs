//! Detect: score behavioural anomalies on correlated events.
//!
//! In: a correlated [`SessionEvent`]. Out: zero or more [`Finding`]s, each with a score in 0..=1, a plain-words
//! reason and the ids of its evidence events. State: each detector keeps its own per-key baseline in a bounded
//! [`crate::state::KeyedState`] (event-time TTL and a key cap, both in its config file).
//!
//! Each detector is one file with its config struct; its thresholds live in `detectors/NAME.toml` (the repo's
//! copies are compiled in as defaults and may be overridden with a directory of the same files).

mod data_domain;
mod destination_drift;
mod export_volume;
mod impossible_travel;
mod new_client;
mod rate;
mod session_hijack;
mod token_reuse;
mod tool_drift;
mod vendor_risk;

use crate::event::{Family, Keys, PrincipalKind, SessionEvent, Ts};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who a finding is about: every key the event carried after correlation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// E-mail when known, else the principal id.
    pub principal: Option<Arc<str>>,
    pub principal_id: Option<Arc<str>>,
    pub principal_email: Option<Arc<str>>,
    pub principal_kind: PrincipalKind,
    pub token_id: Option<Arc<str>>,
    pub session_id: Option<Arc<str>>,
    pub job_id: Option<Arc<str>>,
    /// The vendor whose log vouches for `principal_id` (none: the principal is only claimed).
    pub principal_vendor: Option<Arc<str>>,
    /// The IdP that vouches for `principal_email`.
    pub email_verified_by: Option<Arc<str>>,
    /// The vendor whose log vouches for `token_id` / `session_id`.
    pub token_vendor: Option<Arc<str>>,
    pub session_vendor: Option<Arc<str>>,
    /// The source vouches for the key decide tracks this subject by, and, for a person, for the person: the
    /// finding may back a revocation. Findings on claimed identities can only raise alerts.
    pub backed: bool,
}

impl Subject {
    pub fn of(ev: &SessionEvent<'_>) -> Subject {
        let vendor = || Some(ev.source.vendor.to_arc());
        let vouch = ev.principal.vouched_by.as_ref();
        let backed =
            ev.actor_vouched() && (ev.principal.kind != PrincipalKind::Human || vouch.is_some());
        Subject {
            principal_vendor: vouch
                .filter(|_| ev.principal.id.is_some())
                .map(|v| v.vendor.to_arc()),
            email_verified_by: vouch
                .filter(|v| v.family == Family::Idp && ev.principal.email.is_some())
                .map(|v| v.vendor.to_arc()),
            token_vendor: ev
                .session
                .token_id
                .as_ref()
                .filter(|_| ev.vouches(Keys::TOKEN))
                .and_then(|_| vendor()),
            session_vendor: ev
                .session
                .session_id
                .as_ref()
                .filter(|_| ev.vouches(Keys::SESSION))
                .and_then(|_| vendor()),
            backed,
            principal: ev.principal.key().map(Arc::from),
            principal_id: ev.principal.id.as_ref().map(|t| t.to_arc()),
            principal_email: ev.principal.email.as_ref().map(|t| t.to_arc()),
            principal_kind: ev.principal.kind,
            token_id: ev.session.token_id.as_ref().map(|t| t.to_arc()),
            session_id: ev.session.session_id.as_ref().map(|t| t.to_arc()),
            job_id: ev.session.job_id.as_ref().map(|t| t.to_arc()),
        }
    }
}

/// One anomaly, with why and on what evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub detector: &'static str,
    /// 0..=1: how strongly this alone says the session is compromised.
    pub score: f64,
    pub reason: String,
    /// Event ids, oldest first.
    pub evidence: Vec<String>,
    pub subject: Subject,
    pub event_time: Ts,
    pub family: Family,
}

impl Finding {
    pub fn new(
        detector: &'static str,
        score: f64,
        reason: String,
        evidence: Vec<String>,
        ev: &SessionEvent<'_>,
    ) -> Self {
        Finding {
            detector,
            score,
            reason,
            evidence,
            subject: Subject::of(ev),
            event_time: ev.event_time,
            family: ev.source.family,
        }
    }
}

/// A finding as saved with decide's state: the detector by name (see [`Finding::restore`]).
#[derive(Deserialize)]
pub struct SavedFinding {
    detector: String,
    score: f64,
    reason: String,
    evidence: Vec<String>,
    subject: Subject,
    event_time: Ts,
    family: Family,
}

impl Finding {
    /// A saved finding back, when its detector still exists.
    pub fn restore(s: SavedFinding) -> Option<Finding> {
        let detector = registry().into_iter().find(|r| r.name == s.detector)?.name;
        Some(Finding {
            detector,
            score: s.score,
            reason: s.reason,
            evidence: s.evidence,
            subject: s.subject,
            event_time: s.event_time,
            family: s.family,
        })
    }
}

/// A detector. `observe` is the only required method.
pub trait Detector: Send {
    /// Look at one event; push findings to `out`.
    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>);

    /// What this detector has learned, for a restart to resume from (see [`crate::durable`]). Default: nothing
    /// (a detector without state).
    fn save(&self) -> Result<Option<Saved>, serde_json::Error> {
        Ok(None)
    }

    /// Take back what [`Detector::save`] wrote; the current config's bounds apply. Default: nothing to take.
    fn load(&mut self, _saved: &RawValue) -> Result<(), String> {
        Ok(())
    }

    /// Learn from a configuration announcement (an `admin_change` naming a job) without judging it. The keyed
    /// topology sends a copy to every partition, because the admin who made the change and the agent it names
    /// can live in different partitions ([`crate::pipeline::Pipeline::process_routed`]). Default: nothing to
    /// learn.
    fn announce(&mut self, _ev: &SessionEvent<'_>) {}

    /// The pipeline's watermark advanced ([`crate::watermark`]): forget by it what keyed state is idle for longer
    /// than its TTL ([`crate::state::KeyedState::expire`]). Default: each event's own time sweeps.
    fn expire(&mut self, _watermark: crate::event::Ts) {}
}

pub use crate::state::Saved;
pub(crate) use crate::state::{load, save};

/// A configuration problem found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Parse {
        file: String,
        source: toml::de::Error,
    },
    #[error("{file}: {key} = {value}: {why}")]
    Invalid {
        file: String,
        key: &'static str,
        value: String,
        why: String,
    },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

/// Everything a detector may read when it is built.
#[derive(Default)]
pub struct BuildContext {
    /// Directory with overriding config files, if any.
    pub dir: Option<PathBuf>,
    /// `detect.own_destinations`.
    pub own_destinations: Vec<String>,
    /// [`DetectConfig::key_partitions`].
    pub key_partitions: u32,
}

impl BuildContext {
    /// The text of `detectors/NAME`: from the override directory when it has the file, else the built-in copy.
    pub fn file(&self, name: &str, builtin: &'static str) -> Result<(String, String), ConfigError> {
        if let Some(d) = &self.dir {
            let p = d.join(name);
            if p.exists() {
                let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Io {
                    file: p.display().to_string(),
                    source,
                })?;
                return Ok((p.display().to_string(), text));
            }
        }
        Ok((format!("detectors/{name} (built in)"), builtin.to_string()))
    }

    /// The bounds of a detector's keyed state: its TTL, and its `max_keys` or, in one partition of the keyed
    /// topology, that partition's share of it.
    pub fn bounds(&self, ttl_secs: u64, max_keys: usize) -> crate::state::Bounds {
        crate::state::Bounds::from_secs(
            ttl_secs,
            crate::state::Bounds::share(max_keys, self.key_partitions),
        )
    }

    /// Parse `detectors/NAME` into a config struct.
    pub fn config<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        builtin: &'static str,
    ) -> Result<(String, T), ConfigError> {
        let (file, text) = self.file(name, builtin)?;
        let t = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            file: file.clone(),
            source,
        })?;
        Ok((file, t))
    }
}

/// A registry entry: the detector's name and how to build it.
pub struct Registered {
    pub name: &'static str,
    pub build: fn(&BuildContext) -> Result<Box<dyn Detector>, ConfigError>,
}

/// Every detector, in the order they see each event. Adding one is one file plus one line here.
pub fn registry() -> Vec<Registered> {
    vec![
        Registered {
            name: session_hijack::NAME,
            build: session_hijack::build,
        },
        Registered {
            name: impossible_travel::NAME,
            build: impossible_travel::build,
        },
        Registered {
            name: rate::NAME,
            build: rate::build,
        },
        Registered {
            name: token_reuse::NAME,
            build: token_reuse::build,
        },
        Registered {
            name: data_domain::NAME,
            build: data_domain::build,
        },
        Registered {
            name: destination_drift::NAME,
            build: destination_drift::build,
        },
        Registered {
            name: export_volume::NAME,
            build: export_volume::build,
        },
        Registered {
            name: new_client::NAME,
            build: new_client::build,
        },
        Registered {
            name: tool_drift::NAME,
            build: tool_drift::build,
        },
        Registered {
            name: vendor_risk::NAME,
            build: vendor_risk::build,
        },
    ]
}

/// `[detect]` settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Directory of detector config files overriding the built-in `detectors/*.toml`. Default: none.
    pub dir: Option<PathBuf>,
    /// Detectors to leave out, by name. Default: none.
    pub disabled: Vec<String>,
    /// Globs of the organisation's own destinations (`"s3://corp-*"`, `"https://*.corp.example/*"`): a new one is a
    /// reconfiguration to look at, not exfiltration (destination_drift's `own_score`). Default: none.
    pub own_destinations: Vec<String>,
    /// Set by the keyed topology, not by configuration: the number of partitions keys are spread over, whose share
    /// of every detector's `max_keys` one partition's pipeline holds ([`crate::state::Bounds::share`]). 0 or 1:
    /// the full caps.
    #[serde(skip)]
    pub key_partitions: u32,
}

/// The detect stage: every enabled detector.
pub struct Detect {
    detectors: Vec<(&'static str, Box<dyn Detector>)>,
}

impl Detect {
    pub fn new(cfg: &DetectConfig) -> Result<Self, ConfigError> {
        let reg = registry();
        for d in &cfg.disabled {
            if !reg.iter().any(|r| r.name == d) {
                return Err(ConfigError::Invalid {
                    file: "config".into(),
                    key: "detect.disabled",
                    value: d.clone(),
                    why: format!(
                        "no such detector; allowed: {}",
                        reg.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let ctx = BuildContext {
            dir: cfg.dir.clone(),
            own_destinations: cfg.own_destinations.clone(),
            key_partitions: cfg.key_partitions,
        };
        let mut detectors = Vec::new();
        for r in reg
            .iter()
            .filter(|r| !cfg.disabled.iter().any(|d| d == r.name))
        {
            detectors.push((r.name, (r.build)(&ctx)?));
        }
        Ok(Detect { detectors })
    }

    /// Run every detector on `ev`.
    pub fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        for (_, d) in &mut self.detectors {
            d.observe(ev, out);
        }
    }

    /// Every detector learns from a configuration announcement ([`Detector::announce`]).
    pub fn announce(&mut self, ev: &SessionEvent<'_>) {
        for (_, d) in &mut self.detectors {
            d.announce(ev);
        }
    }

    /// Every detector forgets by the watermark ([`Detector::expire`]).
    pub fn expire(&mut self, watermark: crate::event::Ts) {
        for (_, d) in &mut self.detectors {
            d.expire(watermark);
        }
    }

    /// Every detector's learned state, by name.
    pub fn save(&self) -> Result<BTreeMap<&'static str, Saved>, serde_json::Error> {
        let mut out = BTreeMap::new();
        for (name, d) in &self.detectors {
            if let Some(s) = d.save()? {
                out.insert(*name, s);
            }
        }
        Ok(out)
    }

    /// Give each configured detector its saved state. A detector with none saved (new, or enabled since) starts
    /// cold; saved state of a detector no longer configured is left unused.
    pub fn load(&mut self, saved: &BTreeMap<String, Saved>) -> Result<(), String> {
        for (name, d) in &mut self.detectors {
            match saved.get(*name) {
                Some(s) => d.load(s).map_err(|e| format!("detector {name}: {e}"))?,
                None => tracing::info!(detector = name, "no saved state; starting cold"),
            }
        }
        Ok(())
    }
}

/// Check that each named score of a detector config lies in [0, 1].
pub(crate) fn check_scores(file: &str, scores: &[(&'static str, f64)]) -> Result<(), ConfigError> {
    for &(key, v) in scores {
        if !(0.0..=1.0).contains(&v) {
            return Err(ConfigError::Invalid {
                file: file.into(),
                key,
                value: v.to_string(),
                why: "must be in [0, 1]".into(),
            });
        }
    }
    Ok(())
}

pub(crate) use crate::pattern::glob;

/// A user agent's client family: the product (browser, vendor app or tool) and the OS, without versions, so a
/// browser update is the same client and another browser, an app or a script is not. `Client=OWA;<browser UA>`
/// (Exchange's client info) is the browser behind it.
pub fn ua_family(ua: &str) -> String {
    let l = ua.to_ascii_lowercase();
    let l = l.strip_prefix("client=owa;").unwrap_or(&l);
    let product = if l.starts_with("client=") {
        l.split(';').next().unwrap_or(l)
    } else if l.contains("outlook") {
        "outlook"
    } else if l.contains("teams/") {
        "teams"
    } else if l.contains("headlesschrome") {
        "headless-chrome"
    } else if l.contains("oktaverify") {
        "okta-verify"
    } else if l.contains("edg/") {
        "edge"
    } else if l.contains("firefox/") {
        "firefox"
    } else if l.contains("chrome/") {
        "chrome"
    } else if l.contains("safari/") {
        "safari"
    } else {
        // tools: "python-requests/2.32.3" -> "python-requests"
        l.split(['/', ' ', ';']).next().unwrap_or(l)
    };
    let os = if l.contains("iphone") || l.contains("ipad") || l.contains("ios") {
        "ios"
    } else if l.contains("android") {
        "android"
    } else if l.contains("windows") {
        "windows"
    } else if l.contains("mac os") || l.contains("macintosh") {
        "mac"
    } else if l.contains("linux") || l.contains("x11") {
        "linux"
    } else {
        ""
    };
    let product: String = product.chars().take(64).collect();
    format!("{product}/{os}")
}

/// Check a path exists, for error messages.
pub fn check_dir(dir: &Path) -> Result<(), ConfigError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            file: "config".into(),
            key: "detect.dir",
            value: dir.display().to_string(),
            why: "not a directory".into(),
        })
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::event::*;
    /// A bare event at `secs` seconds past 2026-11-02T00:00:00Z.
    pub fn at(secs: i64, id: &str, family: Family, cat: Category) -> SessionEvent<'static> {
        let src = SourceInfo {
            family,
            vendor: "test".into(),
            format: "test".into(),
        };
        SessionEvent::new(
            src,
            Text::from(id.to_string()),
            Ts(1_793_577_600_000 + secs * 1000),
            cat,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in `detectors/*.toml` parses into its detector's config.
    #[test]
    fn the_shipped_detector_configs_parse() {
        let d = Detect::new(&DetectConfig::default()).unwrap();
        assert_eq!(d.detectors.len(), registry().len());
        let d = Detect::new(&DetectConfig {
            dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/detectors").into()),
            disabled: vec![],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(d.detectors.len(), registry().len());
    }

    /// A file in `detect.dir` replaces the built-in copy: a rate limit of 5 requests in a cold minute fires on a
    /// burst of 20 that the shipped limit (1,000) lets pass.
    #[test]
    fn a_detector_file_in_the_detect_dir_overrides_the_built_in_thresholds() {
        let burst = |d: &mut Detect| {
            let mut out = Vec::new();
            for i in 0..20 {
                let mut e = testutil::at(
                    i,
                    &format!("r{i}"),
                    Family::Agent,
                    crate::event::Category::ToolCall,
                );
                e.session.job_id = Some("job-1".into());
                e.vouch_all();
                d.observe(&e, &mut out);
            }
            out.iter().filter(|f| f.detector == "rate").count()
        };
        let shipped = Detect::new(&DetectConfig::default()).unwrap();
        let mut shipped = shipped;
        assert_eq!(burst(&mut shipped), 0);
        let dir = std::env::temp_dir().join(format!("quench-detect-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = include_str!("../../detectors/rate.toml")
            .replace("cold_start_max = 1000", "cold_start_max = 5")
            .replace("min_count = 100", "min_count = 5");
        assert!(
            text.contains("cold_start_max = 5"),
            "the shipped file changed its form"
        );
        std::fs::write(dir.join("rate.toml"), text).unwrap();
        let mut overridden = Detect::new(&DetectConfig {
            dir: Some(dir.clone()),
            disabled: vec![],
            ..Default::default()
        })
        .unwrap();
        let fired = burst(&mut overridden);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(fired >= 1, "the override took no effect");
    }

    #[test]
    fn client_families_ignore_versions_but_tell_browsers_apps_and_tools_apart() {
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(ua_family(chrome), ua_family(&chrome.replace("131", "132")));
        assert_eq!(ua_family(chrome), "chrome/mac");
        assert_eq!(ua_family(&format!("Client=OWA;{chrome}")), "chrome/mac");
        assert_eq!(ua_family("python-requests/2.32.3"), "python-requests/");
        assert_eq!(ua_family("Client=MSExchangeRPC"), "client=msexchangerpc/");
        assert_ne!(
            ua_family("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0"),
            ua_family(chrome)
        );
    }

    #[test]
    fn disabling_an_unknown_detector_names_the_allowed_ones() {
        let e = Detect::new(&DetectConfig {
            dir: None,
            disabled: vec!["astrology".into()],
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("astrology") && e.contains("impossible_travel"),
            "{e}"
        );
    }
}

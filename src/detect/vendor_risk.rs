//! vendor_risk: the vendors' own risk verdicts as evidence: Okta's session roaming, session context change, user
//! risk and sign-in behaviour risk; Entra ID Protection's sign-in risk, risk detections and risky users;
//! Salesforce's session-hijacking detection; Google's account warnings (its suspicious-session-cookie sign-out).
//!
//! In: events whose source put a verdict on them (`risk`, set by the normalizers) and vouches for the principal
//! they name (an IdP or SaaS about its own users: a verdict in a log line nobody vouches for is a claim, and is
//! not read). Out: one finding per such event, scored by level (`medium_score`, `high_score`,
//! `compromised_score`; low verdicts are not findings unless `low_score` says so), with the vendor's name for what
//! it saw. Decide's dedup keeps one decision per subject and action. State: none.

use super::{BuildContext, ConfigError, Detector, Finding};
use crate::event::{RiskLevel, SessionEvent};
use crate::state::bounded;
use serde::Deserialize;

pub const NAME: &str = "vendor_risk";
const FILE: &str = "vendor_risk.toml";
const BUILTIN: &str = include_str!("../../detectors/vendor_risk.toml");

/// `detectors/vendor_risk.toml`; defaults in that file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VendorRiskConfig {
    pub low_score: f64,
    pub medium_score: f64,
    pub high_score: f64,
    pub compromised_score: f64,
}

impl Default for VendorRiskConfig {
    fn default() -> Self {
        VendorRiskConfig {
            low_score: 0.0,
            medium_score: 0.2,
            high_score: 0.8,
            compromised_score: 0.95,
        }
    }
}

pub fn build(ctx: &BuildContext) -> Result<Box<dyn Detector>, ConfigError> {
    let (file, cfg): (String, VendorRiskConfig) = ctx.config(FILE, BUILTIN)?;
    super::check_scores(
        &file,
        &[
            ("low_score", cfg.low_score),
            ("medium_score", cfg.medium_score),
            ("high_score", cfg.high_score),
            ("compromised_score", cfg.compromised_score),
        ],
    )?;
    Ok(Box::new(VendorRisk { cfg }))
}

pub struct VendorRisk {
    cfg: VendorRiskConfig,
}

impl Detector for VendorRisk {
    fn observe(&mut self, ev: &SessionEvent<'_>, out: &mut Vec<Finding>) {
        let Some(risk) = &ev.risk else {
            return;
        };
        let Some(vouch) = &ev.principal.vouched_by else {
            return;
        };
        let score = match risk.level {
            RiskLevel::Low => self.cfg.low_score,
            RiskLevel::Medium => self.cfg.medium_score,
            RiskLevel::High => self.cfg.high_score,
            RiskLevel::Compromised => self.cfg.compromised_score,
        };
        if score <= 0.0 {
            return;
        }
        let who = bounded(ev.principal.key().unwrap_or("an unknown principal"));
        let reason = format!(
            "{} rated {who} {} risk: {}",
            bounded(&vouch.vendor),
            risk.level.as_str(),
            bounded(&risk.kind)
        );
        out.push(Finding::new(
            NAME,
            score,
            reason,
            vec![ev.event_id.to_string()],
            ev,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testutil::at;
    use crate::event::*;

    fn rated(level: RiskLevel, vouched: bool) -> SessionEvent<'static> {
        let mut e = at(0, "r1", Family::Idp, Category::Login);
        e.principal.email = Some("ann@example.com".into());
        e.principal.id = Some("00uann".into());
        if vouched {
            e.principal.vouched_by = Some(Vouch {
                vendor: "okta".into(),
                family: Family::Idp,
            });
        }
        e.risk = Some(Risk {
            level,
            kind: "detect_client_roaming".into(),
        });
        e
    }

    fn run(e: &SessionEvent<'static>) -> Vec<Finding> {
        let mut d = build(&BuildContext::default()).unwrap();
        let mut out = Vec::new();
        d.observe(e, &mut out);
        out
    }

    #[test]
    fn a_vendors_high_risk_verdict_is_high_fidelity_evidence() {
        let out = run(&rated(RiskLevel::High, true));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].score, 0.8);
        assert!(
            out[0]
                .reason
                .contains("okta rated ann@example.com high risk: detect_client_roaming"),
            "{}",
            out[0].reason
        );
        assert_eq!(run(&rated(RiskLevel::Compromised, true))[0].score, 0.95);
        // medium verdicts are noisy (Entra calls every traveller's first sign-in abroad "unfamiliar"): evidence that
        // adds to Quench's own findings, not an alert alone
        assert_eq!(run(&rated(RiskLevel::Medium, true))[0].score, 0.2);
        assert!(run(&rated(RiskLevel::Low, true)).is_empty());
    }

    /// A verdict in a line whose source does not vouch for the principal (a forged native event) is a claim.
    #[test]
    fn a_verdict_nobody_vouches_for_is_not_read() {
        assert!(run(&rated(RiskLevel::Compromised, false)).is_empty());
    }
}

//! The attacks on people: one attack on a victim on the day it happens, in the vendors' shapes, labelled with
//! its first malicious event.
//!
//! In: the victim's working day and the attack's kind and variant. Out: lines in [`Out`] and a label. State: none.

use super::workdays::Workday;
use super::*;

/// One attack on the victim of working day `w` (whose Entra token id issued last is `last_uti`); labels it with
/// its first malicious event's time and arrival.
pub(super) fn attack_person(
    o: &mut Out,
    rng: &mut Rng,
    labels: &mut Labeller,
    w: &Workday<'_>,
    last_uti: &str,
    kind: &str,
    variant: usize,
) {
    let Workday { p, ref day, .. } = *w;
    let (entra_session, okta_session, rt) = (
        w.entra_session.as_str(),
        w.okta_session.as_str(),
        w.rt.as_str(),
    );
    let who = p.who();
    let home = &CITIES[p.home];
    // while the victim is at work
    let at = day.start + rng.range(90, 240) * MIN;
    let site = &world::ATTACKERS[rng.below(world::ATTACKERS.len() as u64) as usize];
    let foreign = Net::at_site(world::host(site.prefix, rng.u64(), 0), site);
    let h = world::hosting_for(home);
    let cloud = Net {
        ip: world::hosting_ip(p.home, rng.u64()),
        asn: h.asn,
        org: h.org,
        lat: h.lat,
        lon: h.lon,
        city: home.name,
        country: home.country,
        cc: home.cc,
        proxy: false,
    };
    let victim_ua = ua_of(p.browser, p.version);
    let attacker_ua = ATTACKER_UAS[variant % ATTACKER_UAS.len()];
    let subject = (Some(p.email.as_str()), None, None);
    let (first, variant_name, actions): (i64, &str, &[Action]) = match kind {
        "cookie_replay" => {
            let mut first = 0;
            for k in 0..3 {
                let arr = o.okta(
                    at + k * 2 * MIN,
                    "user.authentication.sso",
                    &who,
                    &foreign,
                    okta_session,
                    attacker_ua,
                    None,
                    APPS[k as usize],
                );
                if k == 0 {
                    first = arr;
                }
            }
            (
                first,
                if variant.is_multiple_of(2) {
                    "tooling"
                } else {
                    "browser"
                },
                SESSION_ACTIONS,
            )
        }
        "aitm_replay" => {
            // the kit replays the victim's session with the victim's exact user agent and device, from a cloud
            // region in the victim's country
            let first = o.entra(
                at,
                &who,
                &cloud,
                entra_session,
                &format!("{last_uti}x"),
                &victim_ua,
                Some(&p.laptop),
                "Microsoft Exchange Online",
                false,
            );
            for k in 0..3 {
                o.m365(
                    at + (k + 1) * MIN,
                    "Exchange",
                    "MailItemsAccessed",
                    &who,
                    &cloud.ip,
                    &format!("Client=OWA;{victim_ua}"),
                    entra_session,
                    &format!("{last_uti}x"),
                    "",
                );
            }
            (first, "same_device_cloud", SESSION_ACTIONS)
        }
        "impossible_travel" => {
            let first = if variant.is_multiple_of(2) {
                o.okta(
                    at,
                    "user.session.start",
                    &who,
                    &foreign,
                    &format!("102{}x{}", p.okta_id, at),
                    attacker_ua,
                    None,
                    "Okta Dashboard",
                )
            } else {
                o.entra(
                    at,
                    &who,
                    &foreign,
                    &format!("{}-atk{at}", &p.oid[..8]),
                    &format!("utiatk{at}"),
                    attacker_ua,
                    None,
                    "OfficeHome",
                    true,
                )
            };
            (
                first,
                if variant.is_multiple_of(2) {
                    "okta"
                } else {
                    "entra"
                },
                &[
                    Action::StepUp,
                    Action::RevokeToken,
                    Action::TerminateSession,
                ][..],
            )
        }
        "refresh_token_reuse" => (
            o.okta_refresh(at, &who, &foreign, rt, true),
            "idp_reported",
            SESSION_ACTIONS,
        ),
        "entra_token_replay" => {
            let net = if variant.is_multiple_of(2) {
                &foreign
            } else {
                &cloud
            };
            let first = o.entra(
                at,
                &who,
                net,
                entra_session,
                last_uti,
                attacker_ua,
                None,
                "Microsoft Graph",
                false,
            );
            (
                first,
                if variant.is_multiple_of(2) {
                    "foreign"
                } else {
                    "cloud"
                },
                SESSION_ACTIONS,
            )
        }
        "m365_mailbox_access" => {
            let net = if variant.is_multiple_of(2) {
                &foreign
            } else {
                &cloud
            };
            let mut first = 0;
            for k in 0..5 {
                let arr = o.m365(
                    at + k * 2 * MIN,
                    "Exchange",
                    "MailItemsAccessed",
                    &who,
                    &net.ip,
                    "Client=REST;Client=RESTSystem;;",
                    entra_session,
                    &format!("utim{at}"),
                    "",
                );
                if k == 0 {
                    first = arr;
                }
            }
            (
                first,
                if variant.is_multiple_of(2) {
                    "foreign"
                } else {
                    "cloud"
                },
                SESSION_ACTIONS,
            )
        }
        _ => {
            // bulk export to a new integration
            if variant.is_multiple_of(2) && p.sales {
                let first = o.salesforce_export(
                    at,
                    &who,
                    &foreign.ip,
                    &format!("sk-{okta_session}"),
                    200_000 + rng.below(100_000),
                    "0H4DataLoaderExt",
                );
                (first, "salesforce_new_app", SESSION_ACTIONS)
            } else {
                let first = o.google(at, "token", "authorize", &who, &foreign.ip, json!([{"name": "client_id", "value": format!("{:x}-backup.apps.googleusercontent.com", rng.u64() & 0xffff)}, {"name": "app_name", "value": "Drive Backup Pro"}, {"name": "scope", "multiValue": ["https://www.googleapis.com/auth/drive.readonly"]}]));
                for k in 0..150 {
                    o.google(at + 5 * MIN + k * 8 * S, "drive", "download", &who, &foreign.ip, json!([{"name": "doc_id", "value": format!("doc-{}", rng.below(5000))}, {"name": "doc_type", "value": "spreadsheet"}]));
                }
                (first, "drive_new_oauth_app", SESSION_ACTIONS)
            }
        }
    };
    labels.add(kind, variant_name, subject, at, first, actions);
}

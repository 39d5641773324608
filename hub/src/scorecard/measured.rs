//! KPIs measured from the hub's own records: what each country actually exchanged over a
//! window, turned into a 1-5 score by a rule written here once and shown under every score
//! (and in `docs/scorecard.md`).
//!
//! Why measured and not only assessed: assessments come from surveys every year or two and
//! say what a country reports; the hub sees every day what a country's spokes send, how fast
//! they acknowledge, which corridors carry documents and how the country keeps its keys. The
//! rules read only what the hub holds: the messages and their states (`Backend::exchange_facts`),
//! the trust list in force (participants and their country, stage, keys and corridors), the
//! client certificates seen and the conformance reports recorded. A participant with no
//! country recorded counts for none. A KPI with nothing to measure (no document addressed to
//! the country, none of its documents settled) has no score rather than a low one: the index
//! is then taken over the KPIs that have one, and says how much of the weight that is. The same
//! holds for a country with no participant in the trust list: the hub sees nothing of it, which
//! says nothing about its systems (it may exchange outside Caravan), so none of its measured
//! KPIs has a score until it joins or an assessor overrides one with a reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost::Message;
use serde::{Deserialize, Serialize};

use caravan_common::{
    CountryCode, RefusalCode, Timestamp,
    trust::{CorridorState, KeyStatus, ParticipantStage, TrustSet},
};
use caravan_proto::v1;

use crate::store::{CertificateRecord, ConformanceRecord, ExchangeFact, MessageState};

/// "Acknowledged within minutes": from the hub's acceptance to the recipient's signed
/// acknowledgement.
pub const ACKNOWLEDGED_WITHIN_MS: i64 = 5 * 60 * 1000;
/// A spoke that is connected takes a document within this time of its acceptance.
pub const DELIVERED_WITHIN_MS: i64 = 60 * 1000;
/// A certificate's validity left that counts as safe.
const CERTIFICATE_MARGIN_DAYS: i64 = 30;
/// A document-signing key in use longer than this is due for rotation.
const KEY_AGE_DAYS: i64 = 730;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The KPIs measured, their rules as people read them, and whether the monthly figures can
/// show them (the ones read from the trust list and the certificates are as of now only).
pub const RULES: &[Rule] = &[
    Rule {
        kpi: "data-exchange-capability",
        monthly: true,
        text: "Documents the country sent or received (n), and the share acknowledged by their recipient within 5 minutes of the hub's acceptance (q). 1: none exchanged; 2: n >= 1; 3: n >= 10 and q >= 50%; 4: n >= 100 and q >= 80%; 5: n >= 1,000 and q >= 95%.",
    },
    Rule {
        kpi: "system-reliability",
        monthly: true,
        text: "Documents addressed to the country (n): the share its spokes took within 1 minute of acceptance (d, which only a connected spoke can do), and those that expired untaken per thousand (x). No score when n = 0. 1: d < 50%; 2: d >= 50%; 3: d >= 80% and x <= 10; 4: d >= 95% and x <= 1; 5: d >= 99% and x = 0. The median delivery time and rejections per thousand are shown, not scored (a rejection is the recipient's decision).",
    },
    Rule {
        kpi: "data-standards-alignment",
        monthly: true,
        text: "Documents the country sent that their recipient settled (n): the share not rejected as INVALID_DOCUMENT (s). The recipient's spoke accepts a document only when it is recognised as a standard format (UN/CEFACT SPS, UBL, CII, the JSON e-CO) of its declared type with every field its type requires, so s is the share recognised whole. No score when n = 0. 1: s < 50%; 2: s >= 50%; 3: s >= 80%; 4: s >= 95%; 5: s >= 99%.",
    },
    Rule {
        kpi: "cross-border-exchange-capability",
        monthly: true,
        text: "Corridors with another country that carried an acknowledged document (state as in the trust list in force). 1: none; 2: pilot corridors only; 3: at least one open corridor; 4: open corridors with 2 or more countries; 5: open corridors with 3 or more countries and 90% or more of the country's documents acknowledged within 5 minutes.",
    },
    Rule {
        kpi: "priority-use-cases",
        monthly: true,
        text: "Document types (e-CO, e-Phyto, e-invoice) acknowledged over open corridors with the country at either end: in production. 1: none; 2: acknowledged on pilot corridors only; 3: one type in production; 4: two; 5: three or more.",
    },
    Rule {
        kpi: "participation-in-pilots",
        monthly: false,
        text: "Pilot and open corridors joining the country's participants in the trust list in force, its conformance reports, and the countries it exchanged acknowledged documents with over them. 1: no pilot or open corridor and no conformance report; 2: a conformance report recorded or a pilot or open corridor; 3: a passing conformance report and acknowledged documents on a pilot or open corridor; 4: that, with 2 or more countries; 5: that, with 3 or more countries and a participant at stage production.",
    },
    Rule {
        kpi: "security-trust-frameworks",
        monthly: false,
        text: "The country's document-signing keys in the trust list in force and the TLS certificates the hub has seen of its participants. 1: no active key; 2: an active key; 3: that, and every participant's newest certificate valid 30 days more; 4: that, and a key rotated (an earlier key revoked or expired) or the newest active key valid from less than 2 years ago; 5: both.",
    },
];

/// A measured KPI's rule.
#[derive(Debug)]
pub struct Rule {
    pub kpi: &'static str,
    pub text: &'static str,
    /// Whether it can be measured month by month from the messages alone.
    pub monthly: bool,
}

/// Whether the scorecard measures `kpi` (and so takes overrides, not assessments, for it).
pub fn is_measured(kpi: &str) -> bool {
    rule(kpi).is_some()
}

pub fn rule(kpi: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.kpi == kpi)
}

/// A measured score and the figures it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// `None`: nothing to measure in the window.
    pub score: Option<u8>,
    pub figures: Vec<Figure>,
}

/// One figure a score comes from: a label and its value with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub label: String,
    pub value: String,
}

fn figure(label: &str, value: impl ToString) -> Figure {
    Figure {
        label: label.into(),
        value: value.to_string(),
    }
}

/// A share as a percentage, for figures.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn per_thousand(part: u64, whole: u64) -> f64 {
    share(part, whole) * 1000.0
}

/// The highest score whose condition holds (conditions for 2 to 5, in order); 1 otherwise.
fn highest(conditions: [bool; 4]) -> u8 {
    conditions
        .iter()
        .rposition(|c| *c)
        .map_or(1, |i| i as u8 + 2)
}

/// What the rules read besides the messages.
pub struct State<'a> {
    pub trust: &'a TrustSet,
    pub certificates: &'a [CertificateRecord],
    pub reports: &'a [ConformanceRecord],
    pub now: Timestamp,
}

impl State<'_> {
    /// Each participant's country, by participant id.
    pub fn countries(&self) -> HashMap<String, CountryCode> {
        self.trust
            .participants()
            .filter_map(|p| Some((p.id.to_string(), p.country?)))
            .collect()
    }
}

/// What one country's messages add up to over a window.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Sent or received.
    involved: u64,
    acknowledged_fast: u64,
    /// Addressed to the country.
    received: u64,
    delivered_fast: u64,
    expired: u64,
    rejected: u64,
    delivery_ms: Vec<i64>,
    /// Sent by the country and settled by their recipient.
    sent_settled: u64,
    sent_invalid: u64,
    /// Other countries with an acknowledged document on an open, or a pilot, corridor.
    open_partners: BTreeSet<CountryCode>,
    pilot_partners: BTreeSet<CountryCode>,
    open_types: BTreeSet<String>,
    pilot_types: BTreeSet<String>,
}

/// Whether a rejection says the document was not a standard document whole.
fn rejected_as_invalid(ack: &[u8]) -> bool {
    v1::SignedAck::decode(ack)
        .ok()
        .and_then(|a| v1::AckBody::decode(a.body.as_slice()).ok())
        .is_some_and(|b| b.reason_code == RefusalCode::InvalidDocument.as_str())
}

/// The tallies of every country with a message among `facts` (see [`add`]).
pub fn tally(
    facts: &[ExchangeFact],
    countries: &HashMap<String, CountryCode>,
    trust: &TrustSet,
) -> BTreeMap<CountryCode, Tally> {
    let mut out = BTreeMap::new();
    for f in facts {
        add(&mut out, f, countries, trust);
    }
    out
}

/// Count one message into the tallies of the countries at its ends (`countries`: each
/// participant's), so that a report needs no more memory than its tallies whatever the number
/// of messages.
pub fn add(
    out: &mut BTreeMap<CountryCode, Tally>,
    f: &ExchangeFact,
    countries: &HashMap<String, CountryCode>,
    trust: &TrustSet,
) {
    let from = countries.get(&f.sender).copied();
    let to = countries.get(&f.recipient).copied();
    let acknowledged = f.state == MessageState::Acknowledged;
    let fast = acknowledged
        && f.settled_at_ms
            .is_some_and(|at| at - f.accepted_at_ms <= ACKNOWLEDGED_WITHIN_MS);
    let corridor = match (
        f.sender.parse(),
        f.recipient.parse(),
        f.document_type.parse(),
    ) {
        (Ok(s), Ok(r), Ok(t)) => trust.corridor(s, r, t),
        _ => CorridorState::Closed,
    };
    // Each end's country with the other end's; a message within one country counts once.
    let ends = [(from, to), (to, from)];
    for &(country, partner) in &ends[..if from == to { 1 } else { 2 }] {
        let Some(country) = country else { continue };
        let t = out.entry(country).or_default();
        t.involved += 1;
        t.acknowledged_fast += u64::from(fast);
        if acknowledged {
            let (partners, types) = match corridor {
                CorridorState::Open => (&mut t.open_partners, &mut t.open_types),
                CorridorState::Pilot => (&mut t.pilot_partners, &mut t.pilot_types),
                CorridorState::Closed => continue,
            };
            types.insert(f.document_type.clone());
            if let Some(p) = partner.filter(|p| *p != country) {
                partners.insert(p);
            }
        }
    }
    if let Some(to) = to {
        let t = out.entry(to).or_default();
        t.received += 1;
        if let Some(at) = f.delivered_at_ms {
            t.delivery_ms.push(at - f.accepted_at_ms);
            t.delivered_fast += u64::from(at - f.accepted_at_ms <= DELIVERED_WITHIN_MS);
        }
        t.expired += u64::from(f.state == MessageState::Expired);
        t.rejected += u64::from(f.state == MessageState::Rejected);
    }
    if let Some(from) = from
        && matches!(f.state, MessageState::Acknowledged | MessageState::Rejected)
    {
        let t = out.entry(from).or_default();
        t.sent_settled += 1;
        t.sent_invalid +=
            u64::from(f.state == MessageState::Rejected && rejected_as_invalid(&f.rejection));
    }
}

/// Every measured KPI of `country`, from its tally over the window (an empty one if it
/// exchanged nothing) and the state now. `monthly_only`: only the KPIs the messages alone
/// measure.
pub fn measure(
    country: CountryCode,
    t: &Tally,
    state: &State<'_>,
    monthly_only: bool,
) -> BTreeMap<String, Measured> {
    // A country with no participant: the hub sees nothing of it.
    let unseen = participants_of(country, state).is_empty();
    RULES
        .iter()
        .filter(|r| r.monthly || !monthly_only)
        .map(|r| {
            let measured = if unseen {
                Measured {
                    score: None,
                    figures: vec![figure("participants in the trust list", "none")],
                }
            } else {
                measure_one(r.kpi, country, t, state)
            };
            (r.kpi.to_owned(), measured)
        })
        .collect()
}

fn measure_one(kpi: &str, country: CountryCode, t: &Tally, state: &State<'_>) -> Measured {
    let q = share(t.acknowledged_fast, t.involved);
    match kpi {
        "data-exchange-capability" => {
            let n = t.involved;
            Measured {
                score: Some(if n == 0 {
                    1
                } else {
                    highest([
                        true,
                        n >= 10 && q >= 0.5,
                        n >= 100 && q >= 0.8,
                        n >= 1000 && q >= 0.95,
                    ])
                }),
                figures: vec![
                    figure("documents sent or received", n),
                    figure(
                        "acknowledged within 5 minutes",
                        percent(t.acknowledged_fast, n),
                    ),
                ],
            }
        }
        "system-reliability" => {
            let n = t.received;
            let d = share(t.delivered_fast, n);
            let x = per_thousand(t.expired, n);
            let mut delivery = t.delivery_ms.clone();
            delivery.sort_unstable();
            let median = delivery
                .get(delivery.len() / 2)
                .map_or("–".into(), |ms| format!("{:.1} s", *ms as f64 / 1000.0));
            Measured {
                score: (n > 0).then(|| {
                    highest([
                        d >= 0.5,
                        d >= 0.8 && x <= 10.0,
                        d >= 0.95 && x <= 1.0,
                        d >= 0.99 && t.expired == 0,
                    ])
                }),
                figures: vec![
                    figure("documents addressed to it", n),
                    figure("taken within 1 minute", percent(t.delivered_fast, n)),
                    figure("median time to delivery", median),
                    figure("expired untaken, per thousand", format!("{x:.1}")),
                    figure(
                        "rejected, per thousand",
                        format!("{:.1}", per_thousand(t.rejected, n)),
                    ),
                ],
            }
        }
        "data-standards-alignment" => {
            let n = t.sent_settled;
            let s = 1.0 - share(t.sent_invalid, n);
            Measured {
                score: (n > 0).then(|| highest([s >= 0.5, s >= 0.8, s >= 0.95, s >= 0.99])),
                figures: vec![
                    figure("its documents settled by their recipient", n),
                    figure("rejected as INVALID_DOCUMENT", t.sent_invalid),
                    figure("recognised whole", percent(n - t.sent_invalid.min(n), n)),
                ],
            }
        }
        "cross-border-exchange-capability" => {
            let open = t.open_partners.len();
            Measured {
                score: Some(highest([
                    !t.pilot_partners.is_empty() || open > 0,
                    open >= 1,
                    open >= 2,
                    open >= 3 && q >= 0.9,
                ])),
                figures: vec![
                    figure("countries over open corridors", names(&t.open_partners)),
                    figure("countries over pilot corridors", names(&t.pilot_partners)),
                    figure(
                        "acknowledged within 5 minutes",
                        percent(t.acknowledged_fast, t.involved),
                    ),
                ],
            }
        }
        "priority-use-cases" => {
            let types = t.open_types.len();
            Measured {
                score: Some(highest([
                    types > 0 || !t.pilot_types.is_empty(),
                    types >= 1,
                    types >= 2,
                    types >= 3,
                ])),
                figures: vec![
                    figure("document types in production", list(&t.open_types)),
                    figure("document types in pilot", list(&t.pilot_types)),
                ],
            }
        }
        "participation-in-pilots" => pilots(country, t, state),
        "security-trust-frameworks" => security(country, state),
        _ => Measured {
            score: None,
            figures: Vec::new(),
        },
    }
}

fn names(countries: &BTreeSet<CountryCode>) -> String {
    if countries.is_empty() {
        return "none".into();
    }
    countries
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(items: &BTreeSet<String>) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The participant ids of `country` in the trust list.
fn participants_of(country: CountryCode, state: &State<'_>) -> Vec<String> {
    state
        .trust
        .participants()
        .filter(|p| p.country == Some(country))
        .map(|p| p.id.to_string())
        .collect()
}

fn pilots(country: CountryCode, t: &Tally, state: &State<'_>) -> Measured {
    let ids = participants_of(country, state);
    let joins = |s: &dyn ToString, r: &dyn ToString| {
        ids.contains(&s.to_string()) || ids.contains(&r.to_string())
    };
    let (mut pilot, mut open) = (0, 0);
    for ((s, r, _), c) in state.trust.corridors() {
        if joins(s, r) {
            match c {
                CorridorState::Pilot => pilot += 1,
                CorridorState::Open => open += 1,
                CorridorState::Closed => {}
            }
        }
    }
    let reports: Vec<&ConformanceRecord> = state
        .reports
        .iter()
        .filter(|r| ids.contains(&r.participant))
        .collect();
    let passed = reports.iter().any(|r| r.passed);
    let partners: BTreeSet<CountryCode> =
        t.open_partners.union(&t.pilot_partners).copied().collect();
    let exchanged = !t.open_types.is_empty() || !t.pilot_types.is_empty();
    let production = state
        .trust
        .participants()
        .any(|p| p.country == Some(country) && p.stage == ParticipantStage::Production);
    Measured {
        score: Some(highest([
            !reports.is_empty() || pilot + open > 0,
            passed && exchanged,
            passed && exchanged && partners.len() >= 2,
            passed && exchanged && partners.len() >= 3 && production,
        ])),
        figures: vec![
            figure("pilot corridors", pilot),
            figure("open corridors", open),
            figure(
                "conformance reports",
                format!(
                    "{} ({} passed)",
                    reports.len(),
                    reports.iter().filter(|r| r.passed).count()
                ),
            ),
            figure("countries exchanged with", names(&partners)),
        ],
    }
}

fn security(country: CountryCode, state: &State<'_>) -> Measured {
    let ids = participants_of(country, state);
    let keys: Vec<_> = state
        .trust
        .keys()
        .into_iter()
        .filter(|k| ids.contains(&k.participant.to_string()))
        .collect();
    let active: Vec<_> = keys
        .iter()
        .filter(|k| k.status(state.now) == KeyStatus::Active)
        .collect();
    let retired = keys
        .iter()
        .filter(|k| matches!(k.status(state.now), KeyStatus::Revoked | KeyStatus::Expired))
        .count();
    let rotated = retired > 0 && !active.is_empty();
    let newest_start = active.iter().filter_map(|k| k.not_before).max();
    let young =
        newest_start.is_some_and(|s| state.now.as_millis() - s.as_millis() < KEY_AGE_DAYS * DAY_MS);
    // Each participant's newest certificate seen, by the end of its validity.
    let margins: Vec<i64> = ids
        .iter()
        .map(|id| {
            state
                .certificates
                .iter()
                .filter(|c| c.subject == format!("participant:{id}"))
                .map(|c| c.not_after_ms)
                .max()
                .map_or(i64::MIN, |end| (end - state.now.as_millis()) / DAY_MS)
        })
        .collect();
    let margin = margins.iter().copied().min();
    let certificates_safe =
        !margins.is_empty() && margins.iter().all(|m| *m >= CERTIFICATE_MARGIN_DAYS);
    Measured {
        score: Some(highest([
            !active.is_empty(),
            !active.is_empty() && certificates_safe,
            !active.is_empty() && certificates_safe && (rotated || young),
            !active.is_empty() && certificates_safe && rotated && young,
        ])),
        figures: vec![
            figure("active document-signing keys", active.len()),
            figure("keys retired (revoked or expired)", retired),
            figure(
                "newest active key valid from",
                newest_start.map_or("not stated".into(), |s| {
                    s.to_string().get(..10).unwrap_or_default().to_owned()
                }),
            ),
            figure(
                "certificate validity left (least)",
                match margin {
                    None => "no participant".into(),
                    Some(i64::MIN) => "no certificate seen".into(),
                    Some(days) => format!("{days} days"),
                },
            ),
        ],
    }
}

#[cfg(test)]
mod docs {
    /// docs/scorecard.md copies every rule exactly, so that what people read there is what
    /// the hub applies and shows.
    #[test]
    fn the_docs_state_every_rule_as_written_here() {
        let doc = include_str!("../../../docs/scorecard.md");
        for rule in super::RULES {
            let line = format!("- **`{}`** (", rule.kpi);
            let at = doc
                .find(&line)
                .unwrap_or_else(|| panic!("docs/scorecard.md has no line for {}", rule.kpi));
            let stated = doc[at..].lines().next().unwrap_or_default();
            assert!(
                stated.ends_with(&format!("): {}", rule.text)),
                "docs/scorecard.md states {} otherwise than RULES:\n{stated}",
                rule.kpi
            );
            let monthly = stated.contains("also month by month");
            assert_eq!(monthly, rule.monthly, "{}: {stated}", rule.kpi);
        }
    }
}

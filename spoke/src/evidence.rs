//! Evidence bundles and the offline verifier.
//!
//! An evidence bundle holds everything needed to judge a received document without any
//! network: the envelope as it travelled (signed header, signature, payload), the hub's
//! receipt, this spoke's signed acknowledgement, and the signed trust list in force. The receipt
//! is in the form the document came with: a receipt the hub signed (`caravan-evidence/1`), or
//! the log proof of its acceptance under a signed tree head (protocol v2, `caravan-evidence/2`);
//! the verifier judges both. Anyone with
//! the hub's anchor public key can verify it: the trust list inside counts only because that
//! key signed it, and everything else is judged with that list, the signing key at the time the
//! hub accepted the document.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message;
use serde::{Deserialize, Serialize};

use caravan_common::{Refusal, Timestamp, signing::PublicKey, trust::CorridorState};
use caravan_proto::{ack, envelope, receipt, trust_list, v1};

use crate::store::Evidence;

/// The bundle format whose receipt is one the hub signed (`receipt`).
pub const FORMAT: &str = "caravan-evidence/1";
/// The bundle format whose receipt is a log proof of the acceptance (`accepted_proof`).
pub const FORMAT_PROOF: &str = "caravan-evidence/2";

/// An evidence bundle, as written to a file (JSON, binary parts in base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    /// The encoded `caravan.v1.Envelope`: header bytes, signature, payload.
    pub envelope: String,
    /// The encoded `caravan.v1.SignedReceipt` (`caravan-evidence/1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub receipt: String,
    /// The encoded `caravan.v1.LogProof` of the message's ACCEPTED entry, under a tree head
    /// the hub signed (`caravan-evidence/2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_proof: Option<String>,
    /// The encoded `caravan.v1.SignedAck` the recipient sent, if any.
    pub acknowledgement: Option<String>,
    /// The encoded `caravan.v1.SignedTrustList` in force when the bundle was made.
    pub trust_list: String,
}

/// One check of the verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What the offline verifier concluded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// True only when every check passed.
    pub genuine: bool,
    pub checks: Vec<Check>,
    /// What the document claims, once its signature verified.
    pub document: Option<serde_json::Value>,
    /// The content checks ([`crate::checks`]) of a verified, understood document, judged with
    /// the bundle's trust list at the hub's acceptance time and the default limits; duplicate
    /// and replaced are the recipient's inbox's to judge and are not here. `genuine` does not
    /// depend on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_checks: Vec<crate::checks::Check>,
    /// True when the document is genuine and every content check passed; absent when the
    /// content was not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent: Option<bool>,
}

impl Verdict {
    fn check(&mut self, name: &str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let detail = result.unwrap_or_else(|e| e);
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail,
        });
        ok
    }
}

fn decode<M: Message + Default>(text: &str, what: &str) -> Result<M, String> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|e| format!("{what} is not base64: {e}"))?;
    M::decode(bytes.as_slice()).map_err(|e| format!("{what} does not decode: {e}"))
}

fn refusal(r: Refusal) -> String {
    r.to_string()
}

/// Judge `bundle` with the anchor public key alone. Every check is reported, in order; a check
/// that depends on an earlier failed one says so.
pub fn verify(bundle: &Bundle, anchor: &PublicKey) -> Verdict {
    let mut v = Verdict {
        genuine: false,
        checks: Vec::new(),
        document: None,
        content_checks: Vec::new(),
        consistent: None,
    };
    if bundle.format != FORMAT && bundle.format != FORMAT_PROOF {
        v.check(
            "format",
            Err(format!(
                "format {:?} is neither {FORMAT} nor {FORMAT_PROOF}",
                bundle.format
            )),
        );
        return v;
    }
    // 1. The trust list: signed by the anchor.
    let trust = decode::<v1::SignedTrustList>(&bundle.trust_list, "trust list")
        .and_then(|signed| trust_list::open(&signed, anchor).map_err(refusal));
    let trust = match &trust {
        Ok((_, set)) => {
            let info = set.info;
            let issued = info.issued_at.map(|t| t.to_string()).unwrap_or_default();
            v.check(
                "trust list",
                Ok(format!(
                    "version {} issued {issued}, signed by the anchor key {}",
                    info.version,
                    anchor.key_id()
                )),
            );
            Some(set)
        }
        Err(e) => {
            v.check("trust list", Err(e.clone()));
            None
        }
    };
    // 2. The hub's receipt: signed by a hub key the list vouches for, or the log proof of the
    // acceptance under a tree head such a key signed.
    let by_proof = bundle.format == FORMAT_PROOF;
    let receipt = match trust {
        None => Err("not checked: no valid trust list".into()),
        Some(set) if by_proof => bundle
            .accepted_proof
            .as_deref()
            .ok_or_else(|| format!("a {FORMAT_PROOF} bundle has no accepted_proof"))
            .and_then(|text| decode::<v1::LogProof>(text, "accepted proof"))
            .and_then(|proof| receipt::verify_proof(&proof, set).map_err(refusal)),
        Some(set) => decode::<v1::SignedReceipt>(&bundle.receipt, "receipt")
            .and_then(|signed| receipt::verify(&signed, set).map_err(refusal)),
    };
    let receipt_ok = v.check(
        "hub receipt",
        receipt
            .as_ref()
            .map(|r| {
                let form = match by_proof {
                    true => "proved in the hub's exchange log under a tree head signed by",
                    false => "signed by",
                };
                format!(
                    "hub sequence {} accepted at {} ({form} hub key {})",
                    r.hub_sequence, r.accepted_at, r.key_id
                )
            })
            .map_err(Clone::clone),
    );
    // 3. The document: signature, signing key at acceptance time, sender, type, payload.
    let env = decode::<v1::Envelope>(&bundle.envelope, "envelope");
    let opened = match (trust, &receipt, &env) {
        (Some(set), Ok(r), Ok(env)) => {
            envelope::open(env, set, None, r.accepted_at).map_err(refusal)
        }
        (_, _, Err(e)) => Err(e.clone()),
        _ => Err("not checked: needs a valid trust list and hub receipt".into()),
    };
    let signature_ok = v.check(
        "signature",
        opened
            .as_ref()
            .map(|o| {
                format!(
                    "signed by {} with key {}, valid when the hub accepted it",
                    o.header.sender,
                    o.signer.key_id()
                )
            })
            .map_err(Clone::clone),
    );
    if let (Ok(o), Ok(r)) = (&opened, &receipt) {
        let h = &o.header;
        v.check(
            "receipt matches document",
            if r.message_id == h.message_id
                && r.sender == h.sender
                && r.recipient == h.recipient
                && r.header_sha256 == o.header_sha256
            {
                Ok(format!(
                    "receipt names message {} and header {}",
                    r.message_id,
                    hex::encode(o.header_sha256)
                ))
            } else {
                Err("the receipt is for another message or header".into())
            },
        );
        if let Some(rev) = &o.signer.revoked {
            v.checks.push(Check {
                name: "key since revoked".into(),
                ok: true,
                detail: format!(
                    "key {} was revoked at {} ({}), after the hub accepted the document",
                    o.signer.key_id(),
                    rev.at,
                    rev.reason
                ),
            });
        }
        if let Some(set) = trust
            && set.corridor(h.sender, h.recipient, h.document_type) == CorridorState::Pilot
        {
            v.checks.push(Check {
                name: "pilot corridor".into(),
                ok: true,
                detail: "sent on a pilot corridor".into(),
            });
        }
        v.document = serde_json::to_value(h).ok();
        if let (Some(set), Ok(env)) = (trust, &env)
            && h.content_type != crate::store::RESPONSE_CONTENT_TYPE
            && let Ok(content) =
                crate::document::judge(&env.payload, h.document_type, Some(&h.content_type))
        {
            use crate::checks::{self, Registered};
            v.content_checks = checks::run(&checks::Facts {
                content: &content,
                header: &checks::HeaderClaims::from(h),
                sender: &Registered::of(set, h.sender),
                recipient: &Registered::of(set, h.recipient),
                now: r.accepted_at,
                rules: &checks::CheckRules::default(),
                known: None,
            });
        }
    }
    // 4. The recipient's acknowledgement, when the bundle has one.
    if let Some(text) = &bundle.acknowledgement {
        let result = match (
            trust,
            decode::<v1::SignedAck>(text, "acknowledgement"),
            &opened,
        ) {
            (Some(set), Ok(signed), Ok(o)) => ack::verify(&signed, set, Timestamp::now())
                .map_err(refusal)
                .and_then(|a| {
                    if a.message_id == o.header.message_id
                        && a.header_sha256 == o.header_sha256
                        && a.recipient == o.header.recipient
                    {
                        Ok(format!(
                            "{} acknowledged it ({:?}) at {}",
                            a.recipient, a.outcome, a.acknowledged_at
                        ))
                    } else {
                        Err("the acknowledgement is for another message or header".into())
                    }
                }),
            (_, Err(e), _) => Err(e),
            _ => Err("not checked: the document did not verify".into()),
        };
        v.check("acknowledgement", result);
    }
    v.genuine = receipt_ok && signature_ok && v.checks.iter().all(|c| c.ok);
    if !v.content_checks.is_empty() {
        v.consistent = Some(
            v.genuine && crate::checks::worst(&v.content_checks) == crate::checks::Outcome::Pass,
        );
    }
    v
}

/// Build a bundle from the evidence a spoke keeps of an inbox entry, its payload and the trust
/// list in force.
pub fn bundle(
    evidence: &Evidence,
    payload: &[u8],
    trust: &v1::SignedTrustList,
) -> Result<Bundle, String> {
    let b64 = |s: &str| BASE64.decode(s).map_err(|e| e.to_string());
    let envelope = v1::Envelope {
        header: b64(&evidence.header)?,
        signature: Some(v1::Signature {
            key_id: evidence.signature_key_id.clone(),
            signature: b64(&evidence.signature)?,
        }),
        payload: payload.to_vec(),
    };
    Ok(Bundle {
        format: match evidence.accepted_proof {
            Some(_) => FORMAT_PROOF.into(),
            None => FORMAT.into(),
        },
        envelope: BASE64.encode(envelope.encode_to_vec()),
        receipt: evidence.receipt.clone(),
        accepted_proof: evidence.accepted_proof.clone(),
        acknowledgement: evidence.ack.clone(),
        trust_list: BASE64.encode(trust.encode_to_vec()),
    })
}

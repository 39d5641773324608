//! The Sent pages' unit tests: a recipient's answer (Caravan's codes explained, business codes
//! shown as written), an acknowledgement that does not verify, each state, filters and pages.

use super::super::{
    tests::{ESCAPED, HOSTILE},
    *,
};
use super::*;

/// A document sent to CN, `lifecycle` as given, with the recipient's acknowledgement `ack`.
fn sent_record(
    lifecycle: crate::store::Lifecycle,
    ack: Option<crate::store::AckRecord>,
) -> crate::store::SentRecord {
    use crate::store::{HubState, StateChange};
    let at_hub = matches!(lifecycle, crate::store::Lifecycle::AtHub { .. });
    let state = match &lifecycle {
        crate::store::Lifecycle::AtHub { state, .. } => Some(*state),
        _ => None,
    };
    let mut transitions = Vec::new();
    if at_hub {
        transitions.push(StateChange {
            state: HubState::Accepted,
            at: Timestamp::from_millis(1_796_000_100_000),
        });
        if let Some(state) = state.filter(|s| *s != HubState::Accepted) {
            transitions.push(StateChange {
                state,
                at: Timestamp::from_millis(1_796_000_200_000),
            });
        }
    }
    crate::store::SentRecord {
        message_id: MessageId::generate(),
        recipient: "CN".parse().unwrap(),
        document_type: caravan_common::DocumentType::CertificateOfOrigin,
        document_id: "KZ-CO-2026-000123".into(),
        payload_length: 18_834,
        header_sha256: "ab".repeat(32),
        queued_at: Timestamp::from_millis(1_796_000_000_000),
        lifecycle,
        attempts: 1,
        last_error: None,
        transitions,
        acknowledgement: ack,
        responses: Vec::new(),
    }
}

fn receipt() -> crate::store::ReceiptInfo {
    crate::store::ReceiptInfo {
        hub_sequence: 42,
        accepted_at: Timestamp::from_millis(1_796_000_100_000),
        key_id: "0011223344556677".into(),
        signed: "c2ln".into(),
        log_proof: None,
    }
}

fn at_hub(state: crate::store::HubState) -> crate::store::Lifecycle {
    crate::store::Lifecycle::AtHub {
        state,
        receipt: Some(receipt()),
    }
}

/// The recipient's verified acknowledgement, as the spoke stores it (the `Ack` as JSON).
fn verified_ack(outcome: caravan_common::envelope::AckOutcome) -> crate::store::AckRecord {
    let ack = caravan_common::envelope::Ack {
        message_id: MessageId::generate(),
        sender: "KZ".parse().unwrap(),
        recipient: "CN".parse().unwrap(),
        header_sha256: [0xab; 32],
        outcome,
        acknowledged_at: Timestamp::from_millis(1_796_000_200_000),
        key_id: "0011223344556677".parse().unwrap(),
    };
    crate::store::AckRecord {
        check: crate::store::AckCheck::Verified(serde_json::to_value(&ack).unwrap()),
        signed: "c2lnbmVk".into(),
    }
}

fn rejected_with(code: &str, reason: &str) -> crate::store::SentRecord {
    sent_record(
        at_hub(crate::store::HubState::Rejected),
        Some(verified_ack(
            caravan_common::envelope::AckOutcome::Rejected {
                code: code.parse().unwrap(),
                reason: reason.into(),
            },
        )),
    )
}

fn sent_list_of(records: Vec<crate::store::SentRecord>) -> crate::store::SentPage {
    crate::store::SentPage {
        matching: records.len() as u64,
        records: records.into_iter().map(|r| (r.message_id, r)).collect(),
        ..crate::store::SentPage::default()
    }
}

fn china() -> std::collections::HashMap<caravan_common::ParticipantId, String> {
    [("CN".parse().unwrap(), "CN".to_owned())].into()
}

#[test]
fn a_business_rejection_shows_its_code_namespace_and_reason_never_interpreted() {
    let record = rejected_with(
        "cn.customs:QUOTA_EXCEEDED",
        "The import quota for HS 0808 is exhausted.",
    );
    let en = Lang::default();
    let page = sent::sent_document_body(en, &Clock::default(), &record, &china()).into_string();
    for expected in [
        "<h1>KZ-CO-2026-000123</h1>",
        "<b>CN</b> — China <small>(CN)</small>",
        "REJECTED: the recipient refused it; its reason is below.",
        // The code exactly, its namespace and code set apart, labelled as the recipient's.
        "<code class=\"business\"><span class=\"namespace\" title=\"Namespace: the recipient's system or code list\">cn.customs</span><span class=\"colon\">:</span><span class=\"local\" title=\"The recipient system's code\">QUOTA_EXCEEDED</span></code>",
        "(business code of the recipient's system)",
        "Namespace cn.customs, code QUOTA_EXCEEDED: shown as the recipient wrote it; Caravan does not interpret it.",
        "<td class=\"reason\">The import quota for HS 0808 is exhausted.</td>",
        "✔ The recipient's signature over its acknowledgement verifies",
        // The hub's receipt and the history, in local time.
        "accepted at 2026-11-30 00:55:00 +00:00, sequence 42.",
        "<td>2026-11-30 00:56:40 +00:00</td><td><span class=\"fail\">REJECTED</span></td>",
        "<th>Answered</th><td>2026-11-30 00:56:40 +00:00</td>",
        "Accepted by the hub",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    // No Caravan explanation is made up for a business code.
    assert!(!page.contains("Caravan code"), "{page}");
    // In the list: the state, the code and the reason.
    let list = sent::sent_body(
        en,
        &Clock::default(),
        &sent::SentFilters::default(),
        1,
        &sent_list_of(vec![record.clone()]),
        &china(),
    )
    .into_string();
    for expected in [
        "<span class=\"fail\">REJECTED</span>",
        ">cn.customs</span><span class=\"colon\">:</span><span class=\"local\"",
        "(business code of the recipient's system)</small><br>The import quota for HS 0808 is exhausted.",
        &format!(
            "<a href=\"/console/sent/{}\">KZ-CO-2026-000123</a>",
            record.message_id
        ),
        "<td>Certificate of origin</td>",
        "Documents sent: 1.",
    ] {
        assert!(list.contains(expected), "{expected} not in {list}");
    }
    // In Russian: the label and the state translated, the code as the recipient wrote it.
    let ru = Lang::from_tag("ru").unwrap();
    let page = sent::sent_document_body(ru, &Clock::default(), &record, &china()).into_string();
    for expected in [
        "ОТКЛОНЁН: получатель отклонил документ",
        "Китай <small>(CN)</small>",
        ">cn.customs</span><span class=\"colon\">:</span><span class=\"local\" title=\"Код системы получателя\">QUOTA_EXCEEDED</span>",
        "(бизнес-код системы получателя)",
        "The import quota for HS 0808 is exhausted.",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    // A hostile reason from the recipient's system is escaped.
    let hostile = rejected_with("kz.customs:X", HOSTILE);
    let page = sent::sent_document_body(en, &Clock::default(), &hostile, &china()).into_string();
    assert!(
        !page.contains("<script>") && page.contains(ESCAPED),
        "{page}"
    );
}

#[test]
fn a_caravan_code_is_shown_with_its_explanation() {
    let record = rejected_with("BAD_SIGNATURE", "the header signature does not verify");
    let en = Lang::default();
    let page = sent::sent_document_body(en, &Clock::default(), &record, &china()).into_string();
    for expected in [
        "<code>BAD_SIGNATURE</code> <small>(Caravan code)</small><br>The signature does not verify: the document or its header was altered, or signed with another key.",
        "<td class=\"reason\">the header signature does not verify</td>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    assert!(!page.contains("business code"), "{page}");
    let zh = Lang::from_tag("zh").unwrap();
    let page = sent::sent_document_body(zh, &Clock::default(), &record, &china()).into_string();
    assert!(
        page.contains("<code>BAD_SIGNATURE</code> <small>(Caravan 代码)</small><br>签名核验未通过"),
        "{page}"
    );
    // Every Caravan code has its explanation (the other catalogues are held to English's keys).
    for code in caravan_common::RefusalCode::ALL {
        assert!(
            en.lookup(&format!("refusal.{}", code.as_str())).is_some(),
            "no explanation of {code}"
        );
    }
}

#[test]
fn an_unverified_acknowledgement_says_so_and_shows_nothing_it_claims() {
    let record = sent_record(
        at_hub(crate::store::HubState::Rejected),
        Some(crate::store::AckRecord {
            check: crate::store::AckCheck::Failed("BAD_SIGNATURE: forged".into()),
            signed: "eA==".into(),
        }),
    );
    let en = Lang::default();
    let page = sent::sent_document_body(en, &Clock::default(), &record, &china()).into_string();
    assert!(
        page.contains("✘ The acknowledgement's signature DID NOT VERIFY: BAD_SIGNATURE: forged."),
        "{page}"
    );
    assert!(!page.contains("Reason code"), "{page}");
    let list = sent::sent_body(
        en,
        &Clock::default(),
        &sent::SentFilters::default(),
        1,
        &sent_list_of(vec![record]),
        &china(),
    )
    .into_string();
    assert!(list.contains("acknowledgement NOT VERIFIED"), "{list}");
    // Rejected at the hub, its acknowledgement not here yet.
    let waiting = sent_record(at_hub(crate::store::HubState::Rejected), None);
    let page = sent::sent_document_body(en, &Clock::default(), &waiting, &china()).into_string();
    assert!(
        page.contains("the recipient's signed acknowledgement has not reached this spoke yet"),
        "{page}"
    );
}

#[test]
fn expired_refused_and_acknowledged_documents_say_where_they_are() {
    let en = Lang::default();
    let expired = sent_record(at_hub(crate::store::HubState::Expired), None);
    let page = sent::sent_document_body(en, &Clock::default(), &expired, &china()).into_string();
    assert!(
        page.contains("<p class=\"headline fail\">EXPIRED: the recipient did not acknowledge it within its time to live"),
        "{page}"
    );
    assert!(!page.contains("The recipient's answer"), "{page}");
    let refused = sent_record(
        crate::store::Lifecycle::Refused {
            refusal: caravan_common::Refusal::new(
                caravan_common::RefusalCode::CorridorClosed,
                "no corridor KZ -> CN for e-co",
            ),
        },
        None,
    );
    let page = sent::sent_document_body(en, &Clock::default(), &refused, &china()).into_string();
    for expected in [
        "REFUSED by the hub: the hub refused it",
        "<th>Hub's refusal</th><td><span class=\"fail\"><code>CORRIDOR_CLOSED</code><br>No open corridor lets this country send this type of document to the recipient.<br>no corridor KZ -&gt; CN for e-co</span></td>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    assert!(!page.contains("No receipt from the hub yet"), "{page}");
    let acknowledged = sent_record(
        at_hub(crate::store::HubState::Acknowledged),
        Some(verified_ack(caravan_common::envelope::AckOutcome::Accepted)),
    );
    let list = sent::sent_body(
        Lang::from_tag("ru").unwrap(),
        &Clock::default(),
        &sent::SentFilters::default(),
        3,
        &sent_list_of(vec![expired, refused, acknowledged.clone()]),
        &china(),
    )
    .into_string();
    for expected in [
        "<span class=\"fail\">ПРОСРОЧЕН</span></td><td>не подтверждён вовремя</td>",
        "<span class=\"fail\">ОТКАЗ хаба</span></td><td><code>CORRIDOR_CLOSED</code>: no corridor KZ -&gt; CN for e-co</td>",
        "<span class=\"ok\">Подтверждён</span>",
    ] {
        assert!(list.contains(expected), "{expected} not in {list}");
    }
    let page =
        sent::sent_document_body(en, &Clock::default(), &acknowledged, &china()).into_string();
    assert!(
        page.contains("<span class=\"ok\">✔ Accepted</span>"),
        "{page}"
    );
}

#[test]
fn the_sent_list_filters_by_state_and_pages_both_ways() {
    use crate::store::HubState;
    let rejected = rejected_with("cn.customs:QUOTA_EXCEEDED", "quota");
    let delivered = sent_record(at_hub(HubState::Delivered), None);
    let queued = sent_record(crate::store::Lifecycle::QUEUED, None);
    let expired = sent_record(at_hub(HubState::Expired), None);
    let filter = |state: &str| sent::SentFilters {
        state: state.into(),
        ..sent::SentFilters::default()
    };
    let kept = |f: &sent::SentFilters| {
        [&rejected, &delivered, &queued, &expired]
            .into_iter()
            .filter(|r| f.keep(r))
            .count()
    };
    assert_eq!(kept(&filter("")), 4);
    assert_eq!(kept(&filter("failed")), 2);
    assert_eq!(kept(&filter("WAITING")), 2);
    assert_eq!(kept(&filter("acknowledged")), 0);
    let search = |q: &str| sent::SentFilters {
        q: q.into(),
        ..sent::SentFilters::default()
    };
    assert_eq!(kept(&search("co-2026")), 4);
    assert_eq!(kept(&search("cn")), 4);
    assert_eq!(kept(&search("UZ")), 0);
    // A cursor that is not a message id is no page (the handler answers 400), never a panic.
    let bad = sent::SentFilters {
        before: Some("../../etc".into()),
        ..sent::SentFilters::default()
    };
    assert!(bad.at().is_none());
    assert_eq!(sent::SentFilters::default().at(), Some(PageAt::Newest));
    let (older, newer) = (MessageId::generate(), MessageId::generate());
    let body = sent::sent_body(
        Lang::default(),
        &Clock::default(),
        &filter("failed"),
        500,
        &crate::store::SentPage {
            records: vec![(rejected.message_id, rejected.clone())],
            matching: 250,
            newer: 100,
            older_from: Some(older),
            newer_from: Some(newer),
        },
        &china(),
    )
    .into_string();
    for expected in [
        "Documents sent: 500.",
        " Showing 101–101 of 250 matching (100 a page).",
        &format!("href=\"/console/sent?q=&amp;state=failed&amp;before={older}\">Older documents →"),
        &format!("href=\"/console/sent?q=&amp;state=failed&amp;after={newer}\">← Newer documents"),
        "<option value=\"failed\" selected>Rejected, refused or expired</option>",
    ] {
        assert!(body.contains(expected), "{expected} not in {body}");
    }
    // The shell links the inbox, the sent documents and the certificates once logged in.
    let shell = page(Lang::default(), "Sent", Some(("ana", "t")), html! {}).0;
    assert!(
        shell.contains(
            "<nav><a href=\"/console\">Received</a><a href=\"/console/sent\">Sent</a><a href=\"/console/certificates\">Certificates</a></nav>"
        ),
        "{shell}"
    );
    let anonymous = page(Lang::default(), "Log in", None, html! {}).0;
    assert!(!anonymous.contains("/console/sent"), "{anonymous}");
}

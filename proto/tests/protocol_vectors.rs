//! The test vectors of `docs/protocol.md` (section 13), computed here with the real code from
//! the same fixed inputs and compared with the values the document states, so that the
//! document and the code cannot drift apart. Every signature is also verified, and the world
//! the vectors describe is opened as a spoke opens it (trust list with the anchor, envelope,
//! receipt, acknowledgements, log proofs). Where `openssl` is installed, every signature is
//! made again by OpenSSL from the same PKCS#8 key files and compared: another implementation
//! of Ed25519 agrees with the values.
//!
//! To print the values in the document's form (after a deliberate change of the wire format):
//! `CARAVAN_PRINT_VECTORS=1 cargo test -p caravan-proto --test protocol_vectors -- --nocapture`.

use std::{collections::BTreeMap, path::Path, process::Command};

use base64::Engine;
use caravan_common::{
    MessageId, ParticipantId, RefusalCode, Timestamp,
    envelope::{Ack, AckOutcome, Header, Receipt},
    merkle,
    signing::{Purpose, SigningKey, pae, sha256},
};
use caravan_proto::{ack, envelope, log, receipt, trust_list, v1};
use prost::Message;

const DOC: &str = include_str!("../../docs/protocol.md");

/// The fixed inputs (section 13.1 of the document).
const MESSAGE_ID: &str = "019abf88-b980-7c3d-9e4f-5a6b7c8d9e0f";
const CREATED_AT_MS: i64 = 1_764_150_000_000;
const ACCEPTED_AT_MS: i64 = 1_764_150_000_250;
const ACKNOWLEDGED_AT_MS: i64 = 1_764_150_001_500;
const DELIVERED_AT_MS: i64 = 1_764_150_000_800;
const ISSUED_AT_MS: i64 = 1_764_140_000_000;
const NEXT_UPDATE_MS: i64 = ISSUED_AT_MS + 86_400_000;
const REISSUED_AT_MS: i64 = 1_764_150_001_900;
const TREE_HEAD_AT_MS: i64 = 1_764_150_002_000;
const PAYLOAD: &[u8] = b"<doc/>";
const DOCUMENT_ID: &str = "KZ-PHY-2025-000123";

/// The ed25519 seed `first, first + 1, ..., first + 31`.
fn seed(first: u8) -> [u8; 32] {
    std::array::from_fn(|i| first + i as u8)
}

/// The PKCS#8 v1 (RFC 8410) DER of an ed25519 seed, as `SigningKey::save` writes it.
fn pkcs8_v1(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(seed);
    der
}

/// Load the key of `seed` the way a spoke or the hub does: from a PKCS#8 PEM key file, written
/// in `dir` as `<name>.key`.
fn key(seed: &[u8; 32], dir: &Path, name: &str) -> SigningKey {
    let path = dir.join(format!("{name}.key"));
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8_v1(seed));
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    std::fs::write(&path, pem).unwrap();
    let key = SigningKey::load(&path).unwrap();
    // The file `save` writes for it is the same DER.
    let again = dir.join(format!("{name}-again.key"));
    key.save(&again).unwrap();
    let written = std::fs::read_to_string(&again).unwrap();
    let b64: String = written
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        pkcs8_v1(seed)
    );
    key
}

/// Another implementation's signature: OpenSSL's Ed25519 over `message` with the key file
/// `dir/<name>.key`, or `None` where `openssl` is not installed.
fn openssl_sign(dir: &Path, name: &str, message: &[u8]) -> Option<Vec<u8>> {
    let input = dir.join("message.bin");
    std::fs::write(&input, message).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(dir.join(format!("{name}.key")))
        .arg("-in")
        .arg(&input)
        .output()
        .map_err(|e| {
            eprintln!("openssl not run ({e}): the vectors were checked with Caravan's code only")
        })
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

fn signature(s: &Option<v1::Signature>) -> &[u8] {
    &s.as_ref().expect("signed").signature
}

fn pid(s: &str) -> ParticipantId {
    s.parse().unwrap()
}

/// The values, in the document's order.
#[derive(Default)]
struct Vectors(Vec<(String, String)>);

impl Vectors {
    fn text(&mut self, label: &str, value: impl Into<String>) {
        self.0.push((label.to_owned(), value.into()));
    }

    fn hex(&mut self, label: &str, bytes: &[u8]) {
        self.text(label, hex::encode(bytes));
    }

    /// The PAE prefix of `purpose` for a body of `len` bytes, without its final space.
    fn prefix(&mut self, label: &str, purpose: Purpose, body: &[u8]) {
        let full = pae(purpose.payload_type(), body);
        let prefix = format!(
            "DSSEv1 {} {} {}",
            purpose.payload_type().len(),
            purpose.payload_type(),
            body.len()
        );
        // PAE is the prefix, one space, then the body.
        assert_eq!(full, [prefix.as_bytes(), b" ", body].concat());
        self.text(label, prefix);
    }

    /// The lines to paste into the document: long values wrapped at 64 characters.
    fn print(&self) {
        for (label, value) in &self.0 {
            let indent = " ".repeat(label.len() + 3);
            let mut rest = value.as_str();
            let mut first = true;
            while first || !rest.is_empty() {
                let (line, tail) = rest.split_at(rest.len().min(64));
                if first {
                    println!("{label} = {line}");
                } else {
                    println!("{indent}{line}");
                }
                first = false;
                rest = tail;
            }
        }
    }
}

/// The `label = value` lines of the document's section 13, in fenced blocks; a line that
/// starts with white space continues the value before it.
fn stated() -> BTreeMap<String, String> {
    let section = &DOC[DOC
        .find("\n## 13.")
        .expect("section 13 of docs/protocol.md")..];
    let mut values = BTreeMap::new();
    let mut fenced = false;
    let mut last: Option<String> = None;
    for line in section.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            last = None;
            continue;
        }
        if !fenced {
            continue;
        }
        if line.starts_with(char::is_whitespace) && !line.trim().is_empty() {
            let label = last.as_ref().expect("a continuation follows a value");
            values
                .get_mut(label)
                .map(|v: &mut String| v.push_str(line.trim()))
                .unwrap();
        } else if let Some((label, value)) = line.split_once(" = ") {
            let label = label.trim().to_owned();
            assert!(
                values
                    .insert(label.clone(), value.trim().to_owned())
                    .is_none(),
                "{label} is stated twice"
            );
            last = Some(label);
        }
    }
    values
}

#[test]
fn the_documents_test_vectors_are_what_the_code_computes() {
    let mut v = Vectors::default();

    // ---- 13.1 Keys.
    let names = [("kz", 0x01), ("cn", 0x41), ("hub", 0x21), ("anchor", 0x61)];
    let dir = tempfile::tempdir().unwrap();
    let mut keys = BTreeMap::new();
    for (name, first) in names {
        let s = seed(first);
        let k = key(&s, dir.path(), name);
        v.hex(&format!("{name}.seed"), &s);
        v.hex(&format!("{name}.pkcs8_der"), &pkcs8_v1(&s));
        v.hex(&format!("{name}.public_key"), k.public().raw());
        v.text(&format!("{name}.key_id"), k.key_id().to_string());
        // The key id is the first 8 bytes of SHA-256 over the raw public key.
        assert_eq!(
            k.key_id().to_string(),
            hex::encode(&sha256(k.public().raw())[..8])
        );
        keys.insert(name, k);
    }
    let (kz, cn, hub, anchor) = (&keys["kz"], &keys["cn"], &keys["hub"], &keys["anchor"]);

    // ---- 13.2 The trust list.
    let list = v1::TrustList {
        version: 1,
        issued_at_ms: ISSUED_AT_MS,
        next_update_ms: NEXT_UPDATE_MS,
        anchor_key_id: anchor.key_id().to_string(),
        participants: ["KZ", "CN"]
            .into_iter()
            .map(|id| v1::TrustedParticipant {
                id: id.into(),
                name: if id == "KZ" { "Kazakhstan" } else { "China" }.into(),
                status: v1::ParticipantStatus::Active as i32,
                ..Default::default()
            })
            .collect(),
        keys: [("KZ", kz), ("CN", cn)]
            .into_iter()
            .map(|(p, k)| v1::TrustedKey {
                key_id: k.key_id().to_string(),
                participant: p.into(),
                public_key: k.public().raw().to_vec(),
                document_types: vec!["e-phyto".into()],
                ..Default::default()
            })
            .collect(),
        corridors: vec![v1::Corridor {
            sender: "KZ".into(),
            recipient: "CN".into(),
            document_type: "e-phyto".into(),
            state: v1::CorridorState::Open as i32,
        }],
        hub_keys: vec![v1::HubKey {
            key_id: hub.key_id().to_string(),
            public_key: hub.public().raw().to_vec(),
            ..Default::default()
        }],
    };
    let signed_list = trust_list::sign(&list, anchor);
    v.hex("trust_list.body", &signed_list.body);
    v.prefix(
        "trust_list.pae_prefix",
        Purpose::TrustList,
        &signed_list.body,
    );
    let sig = &signed_list.signature.as_ref().unwrap().signature;
    v.hex("trust_list.signature", sig);
    assert!(
        anchor
            .public()
            .verify(Purpose::TrustList, &signed_list.body, sig)
            .is_ok()
    );
    let list_evidence = sha256(&signed_list.encode_to_vec());
    v.hex("trust_list.signed_sha256", &list_evidence);
    let (_, trust) = trust_list::open(&signed_list, anchor.public()).unwrap();

    // ---- 13.3 The header and envelope.
    let message_id: MessageId = MESSAGE_ID.parse().unwrap();
    let header = Header {
        message_id,
        sender: pid("KZ"),
        recipient: pid("CN"),
        document_type: "e-phyto".parse().unwrap(),
        document_id: DOCUMENT_ID.into(),
        content_type: "application/xml".into(),
        payload_sha256: sha256(PAYLOAD),
        payload_length: PAYLOAD.len() as u64,
        created_at: Timestamp::from_millis(CREATED_AT_MS),
        key_id: kz.key_id(),
        supersedes: None,
        in_reply_to: None,
    };
    v.text("header.message_id", MESSAGE_ID);
    v.text("header.document_id", DOCUMENT_ID);
    v.text("header.created_at_ms", CREATED_AT_MS.to_string());
    v.text("payload.ascii", std::str::from_utf8(PAYLOAD).unwrap());
    v.hex("payload.sha256", &sha256(PAYLOAD));
    let env = envelope::seal(&header, PAYLOAD.to_vec(), kz);
    v.hex("header.bytes", &env.header);
    v.hex(
        "header.pae",
        &pae(Purpose::Header.payload_type(), &env.header),
    );
    let header_sig = env.signature.as_ref().unwrap().signature.clone();
    v.hex("header.signature", &header_sig);
    assert!(
        kz.public()
            .verify(Purpose::Header, &env.header, &header_sig)
            .is_ok()
    );
    let header_sha256 = sha256(&env.header);
    v.hex("header.sha256", &header_sha256);
    v.hex("envelope.bytes", &env.encode_to_vec());
    // A spoke opens it with the trust list, the key judged at the hub's acceptance time.
    let opened = envelope::open(&env, &trust, None, Timestamp::from_millis(ACCEPTED_AT_MS))
        .expect("the envelope opens");
    assert_eq!(opened.header, header);
    // The hub opens it for the caller whose certificate names KZ.
    assert!(envelope::open(&env, &trust, Some(pid("KZ")), Timestamp::now()).is_ok());

    // ---- 13.4 The hub's receipt.
    let r = Receipt {
        message_id,
        sender: pid("KZ"),
        recipient: pid("CN"),
        header_sha256,
        hub_sequence: 1,
        accepted_at: Timestamp::from_millis(ACCEPTED_AT_MS),
        key_id: hub.key_id(),
    };
    let signed_receipt = receipt::issue(&r, hub);
    v.hex("receipt.body", &signed_receipt.body);
    v.prefix("receipt.pae_prefix", Purpose::Receipt, &signed_receipt.body);
    let sig = &signed_receipt.signature.as_ref().unwrap().signature;
    v.hex("receipt.signature", sig);
    assert!(
        hub.public()
            .verify(Purpose::Receipt, &signed_receipt.body, sig)
            .is_ok()
    );
    assert_eq!(receipt::verify(&signed_receipt, &trust).unwrap(), r);

    // ---- 13.5 The acknowledgements: accepted, and rejected with a business code.
    let accepted = Ack {
        message_id,
        sender: pid("KZ"),
        recipient: pid("CN"),
        header_sha256,
        outcome: AckOutcome::Accepted,
        acknowledged_at: Timestamp::from_millis(ACKNOWLEDGED_AT_MS),
        key_id: cn.key_id(),
    };
    let signed_ack = ack::sign(&accepted, cn);
    v.hex("ack.body", &signed_ack.body);
    v.prefix("ack.pae_prefix", Purpose::Ack, &signed_ack.body);
    let sig = &signed_ack.signature.as_ref().unwrap().signature;
    v.hex("ack.signature", sig);
    assert!(
        cn.public()
            .verify(Purpose::Ack, &signed_ack.body, sig)
            .is_ok()
    );
    let ack_evidence = sha256(&signed_ack.encode_to_vec());
    v.hex("ack.signed_sha256", &ack_evidence);
    let at = Timestamp::from_millis(ACKNOWLEDGED_AT_MS);
    assert_eq!(ack::verify(&signed_ack, &trust, at).unwrap(), accepted);

    let rejected = Ack {
        outcome: AckOutcome::Rejected {
            code: "cn.customs:QUOTA_EXCEEDED".parse().unwrap(),
            reason: "import quota exhausted".into(),
        },
        ..accepted.clone()
    };
    let signed_rejection = ack::sign(&rejected, cn);
    v.hex("ack_rejected.body", &signed_rejection.body);
    let sig = &signed_rejection.signature.as_ref().unwrap().signature;
    v.hex("ack_rejected.signature", sig);
    assert_eq!(
        ack::verify(&signed_rejection, &trust, at).unwrap(),
        rejected
    );
    // Protocol v2: the two signed together, in a batch (section 6.4).
    let batch = ack::sign_batch(&[accepted.clone(), rejected.clone()], cn);
    assert_eq!(batch[0].body, signed_ack.body);
    assert_eq!(batch[1].body, signed_rejection.body);
    let proof = batch[0].batch.as_ref().unwrap();
    let proof_batch_bytes = proof.batch.clone();
    v.hex("ack_batch.leaf.0", &merkle::leaf_hash(&batch[0].body));
    v.hex("ack_batch.leaf.1", &merkle::leaf_hash(&batch[1].body));
    v.hex("ack_batch.batch", &proof.batch);
    v.prefix("ack_batch.pae_prefix", Purpose::AckBatch, &proof.batch);
    let batch_sig = signature(&proof.signature).to_vec();
    v.hex("ack_batch.signature", &batch_sig);
    for (i, signed) in batch.iter().enumerate() {
        let proof = signed.batch.as_ref().unwrap();
        assert_eq!(proof.leaf_index, i as u64);
        for (j, h) in proof.audit_path.iter().enumerate() {
            v.hex(&format!("ack_batch.path.{i}.{j}"), h);
        }
    }
    assert_eq!(ack::verify(&batch[0], &trust, at).unwrap(), accepted);
    assert_eq!(ack::verify(&batch[1], &trust, at).unwrap(), rejected);
    // The same body with a reason code that is neither Caravan's nor namespaced is refused.
    let mut body = v1::AckBody::decode(signed_rejection.body.as_slice()).unwrap();
    body.reason_code = "QUOTA_EXCEEDED".into();
    let body = body.encode_to_vec();
    let unknown = v1::SignedAck {
        signature: Some(v1::Signature {
            key_id: cn.key_id().to_string(),
            signature: cn.sign(Purpose::Ack, &body).to_vec(),
        }),
        body,
        batch: None,
    };
    assert_eq!(
        ack::verify(&unknown, &trust, at).unwrap_err().code,
        RefusalCode::InvalidAck
    );

    // ---- 13.6 The exchange log: five entries, a signed head, proofs.
    let entry = |kind: v1::LogEntryKind, at_ms: i64, evidence: &[u8]| v1::LogEntry {
        kind: kind as i32,
        at_ms,
        sequence: 1,
        sender: "KZ".into(),
        recipient: "CN".into(),
        message_id: MESSAGE_ID.into(),
        header_sha256: header_sha256.to_vec(),
        evidence_sha256: evidence.to_vec(),
        ..Default::default()
    };
    let registry = |at_ms: i64, actor: &str, detail: &str| v1::LogEntry {
        kind: v1::LogEntryKind::RegistryChange as i32,
        at_ms,
        evidence_sha256: list_evidence.to_vec(),
        actor: actor.into(),
        detail: detail.into(),
        ..Default::default()
    };
    let entries: Vec<Vec<u8>> = [
        registry(
            ISSUED_AT_MS,
            "operator:alice",
            "open corridor KZ->CN e-phyto",
        ),
        entry(v1::LogEntryKind::Accepted, ACCEPTED_AT_MS, &[]),
        entry(v1::LogEntryKind::Delivered, DELIVERED_AT_MS, &[]),
        entry(
            v1::LogEntryKind::Acknowledged,
            ACKNOWLEDGED_AT_MS,
            &ack_evidence,
        ),
        registry(REISSUED_AT_MS, "hub", "periodic re-issue"),
    ]
    .iter()
    .map(Message::encode_to_vec)
    .collect();
    let leaves: Vec<merkle::Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    for (i, (e, leaf)) in entries.iter().zip(&leaves).enumerate() {
        v.hex(&format!("log.entry.{i}"), e);
        v.hex(&format!("log.leaf.{i}"), leaf);
    }
    let root3 = merkle::root(&leaves[..3]);
    let root5 = merkle::root(&leaves);
    v.hex("log.root.3", &root3);
    v.hex("log.root.5", &root5);
    let head = log::sign_head(5, &root5, Timestamp::from_millis(TREE_HEAD_AT_MS), hub);
    v.hex("tree_head.body", &head.body);
    v.prefix("tree_head.pae_prefix", Purpose::TreeHead, &head.body);
    let sig = &head.signature.as_ref().unwrap().signature;
    v.hex("tree_head.signature", sig);
    assert!(
        hub.public()
            .verify(Purpose::TreeHead, &head.body, sig)
            .is_ok()
    );
    let path = merkle::inclusion_proof(1, &leaves);
    for (i, h) in path.iter().enumerate() {
        v.hex(&format!("log.inclusion.1.path.{i}"), h);
    }
    let path3 = merkle::inclusion_proof(3, &leaves);
    for (i, h) in path3.iter().enumerate() {
        v.hex(&format!("log.inclusion.3.path.{i}"), h);
    }
    let consistency = merkle::consistency_proof(3, &leaves);
    for (i, h) in consistency.iter().enumerate() {
        v.hex(&format!("log.consistency.3.5.{i}"), h);
    }
    // The proofs verify as a spoke checks them: the receipt's ACCEPTED entry and the
    // acknowledgement's ACKNOWLEDGED entry in the signed head, and the head of size 5 as an
    // extension of the one of size 3.
    let wire = |p: &[merkle::Hash]| p.iter().map(|h| h.to_vec()).collect::<Vec<_>>();
    let expected = |kind, evidence| log::Expected {
        kind,
        message_id,
        sender: pid("KZ"),
        recipient: pid("CN"),
        header_sha256: Some(header_sha256),
        evidence_sha256: evidence,
    };
    let proof = |index: usize, path: &[merkle::Hash]| v1::LogProof {
        leaf_index: index as u64,
        entry: entries[index].clone(),
        tree_head: Some(head.clone()),
        audit_path: wire(path),
    };
    let five = log::verify_proof(
        &proof(1, &path),
        &expected(v1::LogEntryKind::Accepted, None),
        &trust,
    )
    .unwrap();
    log::verify_proof(
        &proof(3, &path3),
        &expected(v1::LogEntryKind::Acknowledged, Some(ack_evidence)),
        &trust,
    )
    .unwrap();
    let three = log::TreeHead {
        size: 3,
        root: root3,
        ..five.clone()
    };
    log::verify_consistency(&three, &five, &wire(&consistency)).unwrap();
    // Protocol v2: the proof of the ACCEPTED entry is the receipt, and says what the signed
    // receipt of 13.4 says.
    assert_eq!(
        receipt::from_proof(&proof(1, &path), &five).unwrap(),
        receipt::verify(&signed_receipt, &trust).unwrap()
    );

    // ---- Every signature again with another implementation (OpenSSL), where installed:
    // Ed25519 is deterministic, so the same key over the same PAE gives the same bytes.
    let signed: [(&str, Purpose, &[u8], &[u8]); 7] = [
        ("cn", Purpose::AckBatch, &proof_batch_bytes, &batch_sig),
        ("kz", Purpose::Header, &env.header, &header_sig),
        (
            "anchor",
            Purpose::TrustList,
            &signed_list.body,
            signature(&signed_list.signature),
        ),
        (
            "hub",
            Purpose::Receipt,
            &signed_receipt.body,
            signature(&signed_receipt.signature),
        ),
        (
            "cn",
            Purpose::Ack,
            &signed_ack.body,
            signature(&signed_ack.signature),
        ),
        (
            "cn",
            Purpose::Ack,
            &signed_rejection.body,
            signature(&signed_rejection.signature),
        ),
        (
            "hub",
            Purpose::TreeHead,
            &head.body,
            signature(&head.signature),
        ),
    ];
    for (name, purpose, body, sig) in signed {
        if let Some(theirs) = openssl_sign(dir.path(), name, &pae(purpose.payload_type(), body)) {
            assert_eq!(theirs, sig, "{purpose:?} signed by {name}");
        } else {
            break;
        }
    }

    // ---- Compare with the document.
    if std::env::var_os("CARAVAN_PRINT_VECTORS").is_some() {
        v.print();
    }
    let stated = stated();
    let mut problems = Vec::new();
    for (label, value) in &v.0 {
        match stated.get(label) {
            None => problems.push(format!("{label}: not in docs/protocol.md")),
            Some(s) if s != value => {
                problems.push(format!("{label}: the document says {s}, the code {value}"))
            }
            Some(_) => {}
        }
    }
    for label in stated.keys() {
        if !v.0.iter().any(|(l, _)| l == label) {
            problems.push(format!("{label}: in docs/protocol.md, but not computed"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Section 12's table names every refusal code, each with the gRPC code the hub and spokes
/// give it (`caravan_proto::status::grpc_code`).
#[test]
fn the_documents_refusal_table_is_the_codes_mapping() {
    use tonic::Code;
    let start = DOC
        .find("\n## 12.")
        .expect("section 12 of docs/protocol.md");
    let section = &DOC[start..start + DOC[start..].find("\n## 13.").expect("section 13")];
    let rows: BTreeMap<&str, &str> = section
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code, cells.next()?))
        })
        .collect();
    for code in RefusalCode::ALL {
        let grpc = match caravan_proto::status::grpc_code(*code) {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::NotFound => "NOT_FOUND",
            Code::DataLoss => "DATA_LOSS",
            other => panic!("{code} maps to {other:?}, which this test does not name"),
        };
        assert_eq!(
            rows.get(code.as_str()).copied(),
            Some(grpc),
            "section 12 of docs/protocol.md: {code}"
        );
    }
    assert_eq!(rows.len(), RefusalCode::ALL.len(), "{rows:?}");
}

//! The spoke store's checks: the whole walk of `caravan-spoke store check`, and the bounded
//! one the spoke runs at start (see `caravan_common::check`).

use prost::Message;

use caravan_common::check::{
    NEWEST, Report, check_floors, hex_key, newest, note_floors, read, read_both_ends, scan,
};
use caravan_common::store::keys::u64_of;
use caravan_proto::v1;

use super::{
    CertificateRecord, SpokeStore, StoreError, TemplateRecord,
    payloads::decode_location,
    records::{InboxRecord, LogAlarm, LogHeadRecord, decode},
    sent::SentRecord,
    tables::{
        ACKS, ARRIVALS, CERTIFICATE_TOKENS, CERTIFICATES, CURRENT_TRUST_LIST, FORMAT_KEY,
        FORMAT_VERSION, INBOX, LOG_ALARMS, LOG_ALARMS_TOTAL, LOG_HEAD, META, NEXT_ARRIVAL,
        NEXT_QUEUED, OUTBOX, OUTBOX_PAYLOADS, PAYLOAD_AT, PAYLOADS, QUEUED, SENT, STATUS_CURSOR,
        TABLES, TEMPLATES, TRUST, WEBHOOK_CURSOR, inbox_key,
    },
};

/// An inbox key as an operator names the document.
fn inbox_name(key: &[u8]) -> String {
    match (key.get(..16), key.get(16..)) {
        (Some(id), Some(sender)) if key.len() == 18 => format!(
            "message {} from {}",
            uuid::Uuid::from_slice(id).map_or_else(|_| hex_key(id), |u| u.to_string()),
            String::from_utf8_lossy(sender)
        ),
        _ => hex_key(key),
    }
}

/// The meta records that hold a u64.
const U64_META: [&[u8]; 6] = [
    FORMAT_KEY,
    STATUS_CURSOR,
    WEBHOOK_CURSOR,
    LOG_ALARMS_TOTAL,
    NEXT_ARRIVAL.key(),
    NEXT_QUEUED.key(),
];

impl SpokeStore {
    fn report(&self) -> Report {
        let engine = self.db.kind().as_str();
        Report::new(&self.path, engine)
    }

    /// A payload kept in a segment: inside its segment, `length` bytes, and (when `read`)
    /// matching its checksums.
    fn check_placed(
        &self,
        report: &mut Report,
        pointer: &[u8],
        name: &str,
        length: Option<u64>,
        read: bool,
    ) {
        let p = match decode_location(pointer) {
            Ok(p) => p,
            Err(e) => {
                report.problem(PAYLOAD_AT, name, e.to_string());
                return;
            }
        };
        let place = self
            .db
            .segments()
            .segment_file(p.at.segment)
            .display()
            .to_string();
        if let Some(length) = length.filter(|l| *l != p.len as u64) {
            report.problem(
                &place,
                name,
                format!("{} bytes kept, the record says {length}", p.len),
            );
        }
        match self.db.segments().segment_len(p.at.segment) {
            Ok(Some(len)) if p.at.offset.saturating_add(p.len as u64) <= len => {}
            Ok(Some(len)) => {
                report.problem(
                    &place,
                    name,
                    format!(
                        "the payload (offset {}, {} bytes) ends past the segment's {len} bytes",
                        p.at.offset, p.len
                    ),
                );
                return;
            }
            Ok(None) => {
                report.problem(&place, name, "the segment file is missing");
                return;
            }
            Err(e) => {
                report.problem(&place, name, e.to_string());
                return;
            }
        }
        if p.checksums.is_empty() {
            report.payloads.unchecked += 1;
            return;
        }
        if !read {
            return;
        }
        match self.db.segments().read(p.at, 0, p.len, &p.checksums) {
            Ok(_) => {
                report.payloads.checked += 1;
                report.payloads.segment_bytes += p.len as u64;
            }
            Err(e) => report.problem(&place, name, e.to_string()),
        }
    }

    /// An inbox entry decodes and its payload is where its record says.
    fn check_inbox_entry(&self, report: &mut Report, key: &[u8], value: &[u8], read: bool) {
        let name = inbox_name(key);
        let record: InboxRecord = match decode(value, INBOX.name()) {
            Ok(r) => r,
            Err(e) => {
                report.problem(INBOX, &name, e.to_string());
                return;
            }
        };
        if inbox_key(record.message_id, record.sender) != key {
            report.problem(INBOX, &name, "kept under another document's key");
        }
        match self.db.get(PAYLOAD_AT, key) {
            Ok(Some(pointer)) => {
                self.check_placed(report, &pointer, &name, Some(record.payload_length), read)
            }
            Ok(None) => match self.db.get(PAYLOADS, key) {
                Ok(Some(payload)) if payload.len() as u64 == record.payload_length => {
                    report.payloads.in_engine += 1
                }
                Ok(Some(payload)) => report.problem(
                    PAYLOADS,
                    &name,
                    format!(
                        "{} bytes kept, the record says {}",
                        payload.len(),
                        record.payload_length
                    ),
                ),
                Ok(None) => report.problem(PAYLOAD_AT, &name, "its payload is missing"),
                Err(e) => report.problem(PAYLOADS, &name, e.to_string()),
            },
            Err(e) => report.problem(PAYLOAD_AT, &name, e.to_string()),
        }
    }

    /// An outbox payload (`outbox_payloads`) is kept inline or where its location says.
    fn check_outbox_payload(&self, report: &mut Report, key: &[u8], value: &[u8], read: bool) {
        let name = format!("outbox entry {}", hex_key(key));
        match value.split_first() {
            Some((0, _)) => report.payloads.in_engine += 1,
            Some((1, pointer)) => self.check_placed(report, pointer, &name, None, read),
            _ => report.problem(OUTBOX_PAYLOADS, &name, "neither a payload nor a location"),
        }
    }

    /// The meta records decode.
    fn check_meta(&self, report: &mut Report) {
        for key in U64_META {
            match read(report, META, self.db.get(META, key)) {
                Some(Some(v)) if v.len() == 8 => {}
                Some(Some(_)) => report.problem(META, String::from_utf8_lossy(key), "not 8 bytes"),
                _ => {}
            }
        }
        match self
            .db
            .get(META, FORMAT_KEY)
            .ok()
            .flatten()
            .as_deref()
            .and_then(u64_of)
        {
            Some(v) if v <= FORMAT_VERSION => {}
            other => report.problem(
                META,
                "format_version",
                format!("{other:?}: not a version this binary reads"),
            ),
        }
        if let Some(Some(v)) = read(report, META, self.db.get(META, LOG_HEAD))
            && let Err(e) = decode::<LogHeadRecord>(&v, "log head")
        {
            report.problem(META, "log_head", e.to_string());
        }
        if let Some(Some(v)) = read(report, META, self.db.get(META, LOG_ALARMS))
            && let Err(e) = decode::<Vec<LogAlarm>>(&v, "log alarms")
        {
            report.problem(META, "log_alarms", e.to_string());
        }
        if let Some(Some(v)) = read(report, TRUST, self.db.get(TRUST, CURRENT_TRUST_LIST))
            && let Err(e) = v1::SignedTrustList::decode(v.as_slice())
        {
            report.problem(TRUST, "current", e.to_string());
        }
    }

    /// Walk the whole store: every record of every table decodes, every reference lands (an
    /// arrival's inbox entry, an entry's payload inside its segment, a queued envelope's
    /// payload and record), every payload with checksums matches them. For a stopped spoke or
    /// a backup.
    pub fn check(&self) -> Report {
        let mut report = self.report();
        self.check_meta(&mut report);
        let walked = scan(
            self.db.engine(),
            INBOX,
            &mut report,
            |report, key, value| self.check_inbox_entry(report, key, value, true),
        );
        read(&mut report, INBOX, walked);
        for table in [PAYLOAD_AT, PAYLOADS, ACKS] {
            let walked = scan(
                self.db.engine(),
                table,
                &mut report,
                |report, key, _| match self.db.get(INBOX, key) {
                    Ok(Some(_)) => {}
                    Ok(None) => report.problem(table, inbox_name(key), "no inbox entry names it"),
                    Err(e) => report.problem(table, inbox_name(key), e.to_string()),
                },
            );
            read(&mut report, table, walked);
        }
        let walked = scan(
            self.db.engine(),
            ARRIVALS,
            &mut report,
            |report, key, value| {
                let arrival = u64_of(key).map_or_else(|| hex_key(key), |a| format!("arrival {a}"));
                if key.len() != 8 {
                    report.problem(ARRIVALS, &arrival, "key is not an arrival number");
                }
                match self.db.get(INBOX, value) {
                    Ok(Some(_)) => {}
                    Ok(None) => report.problem(
                        ARRIVALS,
                        &arrival,
                        format!("names {}, which is not in the inbox", inbox_name(value)),
                    ),
                    Err(e) => report.problem(ARRIVALS, &arrival, e.to_string()),
                }
            },
        );
        read(&mut report, ARRIVALS, walked);
        let walked = scan(self.db.engine(), SENT, &mut report, |report, key, value| {
            if let Err(e) = decode::<SentRecord>(value, SENT.name()) {
                report.problem(SENT, hex_key(key), e.to_string());
            }
        });
        read(&mut report, SENT, walked);
        for table in [QUEUED, OUTBOX] {
            let walked = scan(
                self.db.engine(),
                table,
                &mut report,
                |report, key, value| {
                    let name = format!("outbox entry {}", hex_key(key));
                    if key.len() != 24 {
                        report.problem(table, &name, "key is not number + message id");
                    }
                    if let Err(e) = v1::Envelope::decode(value) {
                        report.problem(table, &name, format!("the envelope: {e}"));
                    }
                    if let Some(id) = key.get(8..24) {
                        match self.db.get(SENT, id) {
                            Ok(Some(_)) => {}
                            Ok(None) => report.problem(SENT, &name, "its sent record is missing"),
                            Err(e) => report.problem(SENT, &name, e.to_string()),
                        }
                    }
                    if table == QUEUED {
                        match self.db.get(OUTBOX_PAYLOADS, key) {
                            Ok(Some(_)) => {}
                            Ok(None) => {
                                report.problem(OUTBOX_PAYLOADS, &name, "its payload is missing")
                            }
                            Err(e) => report.problem(OUTBOX_PAYLOADS, &name, e.to_string()),
                        }
                    }
                },
            );
            read(&mut report, table, walked);
        }
        let walked = scan(
            self.db.engine(),
            OUTBOX_PAYLOADS,
            &mut report,
            |report, key, value| self.check_outbox_payload(report, key, value, true),
        );
        read(&mut report, OUTBOX_PAYLOADS, walked);
        for table in [TRUST, META] {
            let walked = scan(self.db.engine(), table, &mut report, |_, _, _| {});
            read(&mut report, table, walked);
        }
        self.check_certificates(&mut report);
        report
    }

    /// Every certificate decodes under its own id and is found by its token; every token
    /// names a certificate that carries it; every template decodes.
    fn check_certificates(&self, report: &mut Report) {
        let walked = scan(
            self.db.engine(),
            CERTIFICATES,
            report,
            |report, key, value| {
                let name = format!("certificate {}", hex_key(key));
                match decode::<CertificateRecord>(value, CERTIFICATES.name()) {
                    Err(e) => report.problem(CERTIFICATES, &name, e.to_string()),
                    Ok(c) if c.id.as_bytes() != key => {
                        report.problem(CERTIFICATES, &name, "kept under another id than its own")
                    }
                    Ok(c) => match self.db.get(CERTIFICATE_TOKENS, c.public_token.as_bytes()) {
                        Ok(Some(id)) if id == key => {}
                        Ok(_) => report.problem(
                            CERTIFICATE_TOKENS,
                            &name,
                            "its public token does not lead to it",
                        ),
                        Err(e) => report.problem(CERTIFICATE_TOKENS, &name, e.to_string()),
                    },
                }
            },
        );
        read(report, CERTIFICATES, walked);
        let walked = scan(
            self.db.engine(),
            CERTIFICATE_TOKENS,
            report,
            |report, key, value| {
                let name = format!("token {}", String::from_utf8_lossy(key));
                match self.db.get(CERTIFICATES, value) {
                    Ok(Some(_)) => {}
                    Ok(None) => report.problem(
                        CERTIFICATE_TOKENS,
                        &name,
                        "names a certificate the store does not hold",
                    ),
                    Err(e) => report.problem(CERTIFICATES, &name, e.to_string()),
                }
            },
        );
        read(report, CERTIFICATE_TOKENS, walked);
        let walked = scan(self.db.engine(), TEMPLATES, report, |report, key, value| {
            if let Err(e) = decode::<TemplateRecord>(value, TEMPLATES.name()) {
                report.problem(TEMPLATES, hex_key(key), e.to_string());
            }
        });
        read(report, TEMPLATES, walked);
    }

    /// The counters that only grow: arrivals into the inbox, documents into the outbox.
    fn counters(&self) -> Result<[(&'static str, u64); 2], StoreError> {
        Ok([
            (
                "next_arrival",
                self.meta_u64(NEXT_ARRIVAL.key())?.unwrap_or(0),
            ),
            (
                "next_queued",
                self.meta_u64(NEXT_QUEUED.key())?.unwrap_or(0),
            ),
        ])
    }

    /// Note the growing counters beside the store (at start, once checked, and after the final
    /// flush), for [`Self::check_at_start`] to compare with next time
    /// (`caravan_common::check::note_floors`).
    pub fn note_floors(&self) -> Result<(), StoreError> {
        note_floors(&self.path, &self.counters()?).map_err(StoreError::io(&self.path))
    }

    /// The bounded check before the spoke starts: every table reads at both ends, the format,
    /// counter, trust-list and log-head records decode, and the newest inbox entries and
    /// outbox payloads hold (decoded, their payloads inside their segments). Not the whole
    /// walk: that is `store check`.
    pub fn check_at_start(&self) -> Report {
        let mut report = self.report();
        self.check_meta(&mut report);
        match self.counters() {
            Ok(counters) => check_floors(&self.path, &counters, &mut report),
            Err(e) => report.problem(META, "counters", e.to_string()),
        }
        let engine = self.db.engine();
        read_both_ends(engine, TABLES, &mut report);
        for (_, key) in newest(engine, ARRIVALS, NEWEST, &mut report) {
            match self.db.get(INBOX, &key) {
                Ok(Some(value)) => self.check_inbox_entry(&mut report, &key, &value, false),
                Ok(None) => report.problem(ARRIVALS, inbox_name(&key), "not in the inbox"),
                Err(e) => report.problem(INBOX, inbox_name(&key), e.to_string()),
            }
        }
        for (key, value) in newest(engine, OUTBOX_PAYLOADS, NEWEST, &mut report) {
            self.check_outbox_payload(&mut report, &key, &value, false);
        }
        report
    }
}

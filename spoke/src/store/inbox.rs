//! The inbox: each document received once (`inbox`, keyed by message id and sender), in
//! arrival order (`arrivals`), with its payload (`payloads` or `payload_at`); read in arrival
//! order, newest first filtered, or as the console's counted pages ([`InboxPage`]).

use caravan_common::{
    MessageId, ParticipantId,
    store::{
        StoreError, Tx,
        keys::{message_range_end, u64_of},
    },
};

use super::{
    SpokeStore,
    paging::{CHUNK, Page, PageAt, counted_page},
    records::{InboxRecord, decode, encode},
    tables::{
        ACKS, ARRIVALS, INBOX, NEXT_ARRIVAL, NUMBERS, PAYLOAD_AT, PAYLOADS, REPLACEMENTS,
        inbox_key, number_key, number_prefix, uuid_message_id,
    },
};

/// Inbox entries with their arrival cursors.
pub type Arrivals = Vec<(u64, InboxRecord)>;

/// One page of a filtered inbox list, newest first, by arrival cursor ([`super::paging`]).
pub type InboxPage = Page<u64, InboxRecord>;

/// Enter an inbox document in the indexes: its number (`numbers`) and the document it
/// replaces (`replacements`).
fn index(tx: &mut dyn Tx, record: &InboxRecord) -> Result<(), StoreError> {
    if let Some(number) = record.number() {
        tx.insert(
            NUMBERS,
            &number_key(record.sender, number, record.message_id),
            &[],
        )?;
    }
    if let Some(original) = record.supersedes {
        tx.insert(
            REPLACEMENTS,
            &inbox_key(original, record.sender),
            record.message_id.as_bytes(),
        )?;
    }
    Ok(())
}

/// The inbox key named by a `numbers` key (its message id, the last 16 bytes) and the sender.
fn inbox_key_of_number(key: &[u8], sender: ParticipantId) -> Result<[u8; 18], StoreError> {
    let id: [u8; 16] = key
        .len()
        .checked_sub(16)
        .filter(|start| *start >= 3)
        .and_then(|start| key[start..].try_into().ok())
        .ok_or_else(|| StoreError::corrupt("numbers key", "too short to name a document"))?;
    Ok(inbox_key(super::tables::uuid_message_id(id)?, sender))
}

impl SpokeStore {
    /// The inbox entry for (sender, message id).
    pub fn inbox_entry(
        &self,
        sender: ParticipantId,
        id: MessageId,
    ) -> Result<Option<InboxRecord>, StoreError> {
        self.watched(self.inbox_at(&inbox_key(id, sender)))
    }

    /// The inbox entry at `key`, with the acknowledgement sent for it.
    fn inbox_at(&self, key: &[u8]) -> Result<Option<InboxRecord>, StoreError> {
        self.db
            .get(INBOX, key)?
            .map(|bytes| self.with_ack(key, &bytes))
            .transpose()
    }

    /// An inbox entry's stored bytes decoded, with the latest acknowledgement sent for it:
    /// from `acks` (format 5), else the one a record from before holds itself.
    fn with_ack(&self, key: &[u8], bytes: &[u8]) -> Result<InboxRecord, StoreError> {
        let mut record: InboxRecord = decode(bytes, INBOX.name())?;
        if let Some(ack) = self.db.get(ACKS, key)? {
            let ack = String::from_utf8(ack).map_err(|e| StoreError::corrupt("acks entry", e))?;
            record.evidence.ack = Some(ack);
        }
        Ok(record)
    }

    /// Inbox entries with this message id (from any sender; normally one).
    pub fn inbox_find(&self, id: MessageId) -> Result<Vec<InboxRecord>, StoreError> {
        // Keys are the id and a two-letter sender: this range holds every sender's.
        let end = message_range_end(id);
        self.watched((|| {
            self.db
                .range(INBOX, id.as_bytes(), Some(&end), usize::MAX, false)?
                .into_iter()
                .map(|(k, v)| self.with_ack(&k, &v))
                .collect::<Result<_, _>>()
        })())
    }

    /// Store a received document unless (sender, message id) is there already. Returns
    /// whether it was new. Not durable until [`Self::flush`].
    pub fn inbox_insert(&self, record: &InboxRecord, payload: &[u8]) -> Result<bool, StoreError> {
        let key = inbox_key(record.message_id, record.sender);
        if self.db.get(INBOX, &key)?.is_some() {
            return Ok(false);
        }
        let pointer = self.place_payload(payload)?;
        let value = encode(record);
        self.db.update(|tx| {
            if tx.get(INBOX, &key)?.is_some() {
                return Ok(false);
            }
            let arrival = NEXT_ARRIVAL.take(tx)?;
            tx.insert(INBOX, &key, &value)?;
            match &pointer {
                Some(pointer) => tx.insert(PAYLOAD_AT, &key, pointer)?,
                None => tx.insert(PAYLOADS, &key, payload)?,
            }
            tx.insert(ARRIVALS, &arrival.to_be_bytes(), &key)?;
            index(tx, record)?;
            Ok(true)
        })
    }

    /// The document from `sender` that replaces `id`, if one arrived (before or after it).
    pub fn inbox_replacement_of(
        &self,
        sender: ParticipantId,
        id: MessageId,
    ) -> Result<Option<MessageId>, StoreError> {
        self.watched((|| {
            let Some(value) = self.db.get(REPLACEMENTS, &inbox_key(id, sender))? else {
                return Ok(None);
            };
            let bytes: [u8; 16] = value
                .try_into()
                .map_err(|_| StoreError::corrupt("replacements entry", "not 16 bytes"))?;
            uuid_message_id(bytes).map(Some)
        })())
    }

    /// Drop every `numbers` entry (a page per transaction), for the index to be built again
    /// by [`Self::index_inbox`]: a store from before format 5 keyed it by the numbers' hashes.
    pub(super) fn clear_numbers(&self) -> Result<(), StoreError> {
        const PAGE: usize = 1000;
        loop {
            let page = self.db.range(NUMBERS, &[], None, PAGE, false)?;
            if page.is_empty() {
                return Ok(());
            }
            self.db.update(|tx| {
                for (key, _) in &page {
                    tx.remove(NUMBERS, key)?;
                }
                Ok(())
            })?;
        }
    }

    /// Index every inbox document (`numbers`, `replacements`): for a store from before the
    /// indexes held them all. Idempotent; a page of the inbox per transaction.
    pub(super) fn index_inbox(&self) -> Result<u64, StoreError> {
        const PAGE: usize = 1000;
        let mut from = Vec::new();
        let mut indexed = 0;
        loop {
            let page = self.db.range(INBOX, &from, None, PAGE, false)?;
            let Some((last, _)) = page.last() else {
                return Ok(indexed);
            };
            from = last.clone();
            from.push(0);
            let records = page
                .iter()
                .map(|(_, v)| decode::<InboxRecord>(v, INBOX.name()))
                .collect::<Result<Vec<_>, _>>()?;
            self.db.update(|tx| {
                for record in &records {
                    index(tx, record)?;
                }
                Ok(())
            })?;
            indexed += records.len() as u64;
        }
    }

    /// Inbox entries from `sender` whose document states `number`, oldest message id first.
    pub fn inbox_same_number(
        &self,
        sender: ParticipantId,
        number: &str,
    ) -> Result<Vec<InboxRecord>, StoreError> {
        let prefix = number_prefix(sender, number);
        let from = [&prefix[..], &[0; 16]].concat();
        let to = [&prefix[..], &[0xff; 16]].concat();
        self.watched((|| {
            let mut out = Vec::new();
            for (key, _) in self
                .db
                .range(NUMBERS, &from, Some(&to), usize::MAX, false)?
            {
                let Some(record) = self.inbox_at(&inbox_key_of_number(&key, sender)?)? else {
                    continue;
                };
                // A hash collision of two long numbers is told apart here.
                if record.number() == Some(number) {
                    out.push(record);
                }
            }
            Ok(out)
        })())
    }

    /// Record that `by` replaced the document (`original`, `sender`): its `replacement`, and,
    /// when its content was checked, its `replaced` check line becomes REPLACED naming `by` (a
    /// document never checked gets no line: no verdict on what was not judged). Returns
    /// whether the document is in the inbox. Not durable until [`Self::flush`].
    pub fn inbox_mark_replaced(
        &self,
        original: MessageId,
        sender: ParticipantId,
        by: MessageId,
    ) -> Result<bool, StoreError> {
        let key = inbox_key(original, sender);
        self.db.update(|tx| {
            let Some(bytes) = tx.get(INBOX, &key)? else {
                return Ok(false);
            };
            let mut record: InboxRecord = decode(&bytes, "inbox entry")?;
            record.replacement = Some(by);
            if !record.checks.is_empty() {
                record
                    .checks
                    .retain(|c| c.check != crate::checks::CheckName::Replaced);
                record.checks.push(crate::checks::replaced_by(by));
            }
            tx.insert(INBOX, &key, &encode(&record))?;
            Ok(true)
        })
    }

    /// Record the acknowledgement sent for an inbox entry (`ack`, the signed acknowledgement
    /// encoded), in `acks`: the record itself is not written again. Not durable until
    /// [`Self::flush`].
    pub fn inbox_set_ack(
        &self,
        sender: ParticipantId,
        id: MessageId,
        ack: String,
    ) -> Result<(), StoreError> {
        let key = inbox_key(id, sender);
        self.db.update(|tx| {
            if tx.get(INBOX, &key)?.is_some() {
                tx.insert(ACKS, &key, ack.as_bytes())?;
            }
            Ok(())
        })
    }

    /// How many documents the inbox holds.
    pub fn inbox_len(&self) -> Result<u64, StoreError> {
        self.db.len(ARRIVALS)
    }

    /// At most `limit` inbox entries that arrived after cursor `since` (from the first with
    /// `None`), in arrival order, with their cursors.
    pub fn inbox_since(&self, since: Option<u64>, limit: usize) -> Result<Arrivals, StoreError> {
        let start = since.map_or(0, |s| s.saturating_add(1));
        self.arrivals(&start.to_be_bytes(), None, limit, false)
    }

    /// Inbox entries newest first, from before cursor `before` (from the newest with
    /// `None`), for which `keep` holds, until `want` are found: read a page at a time, so
    /// that memory holds one page and the matches, never the whole inbox. Returns them and,
    /// if more may follow, the cursor to go on before.
    pub fn inbox_matching(
        &self,
        mut before: Option<u64>,
        want: usize,
        keep: impl Fn(&InboxRecord) -> bool,
    ) -> Result<(Arrivals, Option<u64>), StoreError> {
        const PAGE: usize = 256;
        let mut found = Vec::new();
        loop {
            let end = before.map(u64::to_be_bytes);
            let page = self.arrivals(&[], end.as_ref().map(|e| &e[..]), PAGE, true)?;
            let full = page.len() == PAGE;
            for (cursor, record) in page {
                before = Some(cursor);
                if keep(&record) {
                    found.push((cursor, record));
                    if found.len() == want {
                        return Ok((found, before.filter(|c| *c > 0)));
                    }
                }
            }
            if !full {
                return Ok((found, None));
            }
        }
    }

    /// A page of at most `want` entries for which `keep` holds, newest first, starting `at`,
    /// with the count of all matches and the cursors of the pages on either side. Reads the
    /// whole arrival index a chunk at a time to count: memory holds one chunk and the page.
    pub fn inbox_page(
        &self,
        at: PageAt,
        want: usize,
        keep: impl Fn(&InboxRecord) -> bool,
    ) -> Result<InboxPage, StoreError> {
        counted_page(
            at,
            want,
            &mut |before: Option<u64>| {
                let end = before.map(u64::to_be_bytes);
                self.arrivals(&[], end.as_ref().map(|e| &e[..]), CHUNK, true)
            },
            &keep,
        )
    }

    /// Inbox entries by arrival cursor in `[from, to)`, at most `limit`, with their cursors.
    fn arrivals(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Arrivals, StoreError> {
        // Every inbox listing reads here: damage found makes health say so.
        self.watched((|| {
            let mut out = Vec::new();
            for (arrival, key) in self.db.range(ARRIVALS, from, to, limit, reverse)? {
                let cursor = u64_of(&arrival)
                    .ok_or_else(|| StoreError::corrupt("arrival key", "not a number"))?;
                if let Some(record) = self.inbox_at(&key)? {
                    out.push((cursor, record));
                }
            }
            Ok(out)
        })())
    }

    pub fn payload(
        &self,
        sender: ParticipantId,
        id: MessageId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = inbox_key(id, sender);
        self.watched((|| {
            let Some(pointer) = self.db.get(PAYLOAD_AT, &key)? else {
                // Kept in the engine: small, or stored before segments.
                return self.db.get(PAYLOADS, &key);
            };
            let document = format!("message {id} from {sender}");
            self.read_placed(&pointer, &key, &document).map(Some)
        })())
    }
}

//! What the spoke keeps in `meta` and `trust` besides its layout: the trust list held, the
//! last verified head of the hub's log and the log alarms, and the webhook's cursor.

use caravan_common::store::{StoreError, keys::u64_of};

use super::{
    SpokeStore,
    records::{LogAlarm, LogHeadRecord, decode, encode},
    tables::{
        CURRENT_TRUST_LIST, LOG_ALARMS, LOG_ALARMS_KEPT, LOG_ALARMS_TOTAL, LOG_HEAD, META, TRUST,
        WEBHOOK_CURSOR,
    },
};

impl SpokeStore {
    /// The last inbox arrival the NSW webhook acknowledged (`None`: none yet).
    pub fn webhook_cursor(&self) -> Result<Option<u64>, StoreError> {
        self.meta_u64(WEBHOOK_CURSOR)
    }

    pub fn set_webhook_cursor(&self, cursor: u64) -> Result<(), StoreError> {
        self.put(META, WEBHOOK_CURSOR, &cursor.to_be_bytes())?;
        self.flush()
    }

    /// The last good signed trust list (encoded `caravan.v1.SignedTrustList`).
    pub fn trust_list(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(TRUST, CURRENT_TRUST_LIST)
    }

    /// Keep a new good trust list; durable after [`Self::flush`].
    pub fn set_trust_list(&self, signed: &[u8]) -> Result<(), StoreError> {
        self.put(TRUST, CURRENT_TRUST_LIST, signed)
    }

    /// The last tree head of the hub's log this spoke verified consistent with every earlier one.
    pub fn log_head(&self) -> Result<Option<LogHeadRecord>, StoreError> {
        self.get(META, LOG_HEAD)
    }

    /// Keep a newer verified head, durably.
    pub fn set_log_head(&self, head: &LogHeadRecord) -> Result<(), StoreError> {
        self.put(META, LOG_HEAD, &encode(head))?;
        self.flush()
    }

    /// The newest log alarms (at most 100), oldest first, and how many were raised in all.
    pub fn log_alarms(&self) -> Result<(Vec<LogAlarm>, u64), StoreError> {
        let alarms = self.get(META, LOG_ALARMS)?.unwrap_or_default();
        let total = self.meta_u64(LOG_ALARMS_TOTAL)?.unwrap_or(0);
        Ok((alarms, total))
    }

    /// Record an alarm, durably.
    pub fn add_log_alarm(&self, alarm: &LogAlarm) -> Result<(), StoreError> {
        self.db.update(|tx| {
            let mut alarms: Vec<LogAlarm> = match tx.get(META, LOG_ALARMS)? {
                Some(v) => decode(&v, "log alarms")?,
                None => Vec::new(),
            };
            alarms.push(alarm.clone());
            let excess = alarms.len().saturating_sub(LOG_ALARMS_KEPT);
            alarms.drain(..excess);
            let total = tx
                .get(META, LOG_ALARMS_TOTAL)?
                .as_deref()
                .and_then(u64_of)
                .unwrap_or(0);
            tx.insert(META, LOG_ALARMS, &encode(&alarms))?;
            tx.insert(META, LOG_ALARMS_TOTAL, &(total + 1).to_be_bytes())
        })?;
        self.flush()
    }
}

//! Restoring the hub's store from a backup, with the hub stopped.
//!
//! A backup is a whole store: one taken online (`caravan-hub admin backup`, a state between two
//! writes) or a copy of a stopped hub's `data_dir/store`. Restoring never destroys anything:
//! the backup is copied next to the live store, upgraded to this binary's format, checked whole
//! (`caravan-hub store check`: records, payload checksums, references) and audited (every
//! signed tree head against the entries, with the hub keys of its own trust list, which the
//! configured anchor key must have signed); only if all of that holds does it replace the live
//! store, which is kept aside under a dated name.
//!
//! What the hub accepted after the backup is not in it. So that the network picks up again, the
//! restored store gets a new epoch (spokes' status cursors from before are recognised and
//! replayed from the start), continues the replaced store's sequence and event numbers, and
//! makes the hub re-issue the trust list beyond the replaced store's version at start (spokes
//! refuse a list older than theirs). Spokes that saw tree heads of the lost entries raise
//! `LOG_INCONSISTENT`: a restore that loses entries is visible, as it should be.

use std::path::{Path, PathBuf};

use serde::Serialize;

use caravan_common::{Timestamp, signing::PublicKey};

use crate::{
    log::{self, Audit, AuditError},
    store::{Embedded, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0} is not a store backup (neither a sled nor a redb store is in it)")]
    NotABackup(String),
    #[error("the live store {path} is in use: stop the hub first (its store has one owner)")]
    InUse {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("the backup does not pass its audit, nothing was changed: {}", .0.join("; "))]
    AuditFailed(Vec<String>),
    /// The backup fails `store check`.
    #[error("the backup is damaged, nothing was changed: {0}")]
    Damaged(String),
    #[error("{0}")]
    Io(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct Restored {
    /// The live store, now the backup's content.
    pub store: PathBuf,
    /// Where the store it replaced was kept, if there was one.
    pub set_aside: Option<PathBuf>,
    pub audit: Audit,
    pub trust_list_version: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError + '_ {
    move |e| RestoreError::Io(path.display().to_string(), e)
}

/// Replace `data_dir/store` with the backup in `from`, after checking it; see the module docs.
pub fn restore(
    data_dir: &Path,
    from: &Path,
    cache_bytes: u64,
    anchor: &PublicKey,
) -> Result<Restored, RestoreError> {
    if caravan_common::store::EngineKind::detect(from).is_none() {
        return Err(RestoreError::NotABackup(from.display().to_string()));
    }
    let live = data_dir.join("store");
    // Opening takes the engine's lock on its files: it fails while a hub holds the store.
    let replaced =
        Embedded::open_found(&live, cache_bytes).map_err(|source| RestoreError::InUse {
            path: live.display().to_string(),
            source,
        })?;
    let stamp = Timestamp::now().as_millis();
    let staging = data_dir.join(format!("store.restoring-{stamp}"));
    caravan_common::store::copy_dir(from, &staging).map_err(io(&staging))?;
    let checked = (|| {
        let store = Embedded::open_found(&staging, cache_bytes)?
            .ok_or_else(|| StoreError::NoStore(staging.clone()))?;
        let report = store.check();
        if !report.is_sound() {
            return Ok(Err(report.summary()));
        }
        let (audit, version) = log::audit_stored(&store, anchor)?;
        if audit.problems.is_empty() {
            store.prepare_restored(replaced.as_ref())?;
        }
        Ok::<_, AuditError>(Ok((audit, version)))
    })();
    drop(replaced);
    let (audit, trust_list_version) = match checked {
        Ok(Err(damage)) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(RestoreError::Damaged(damage));
        }
        Ok(Ok((audit, version))) if audit.problems.is_empty() => (audit, version),
        Ok(Ok((audit, _))) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(RestoreError::AuditFailed(audit.problems));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(match e {
                AuditError::Store(e) => e.into(),
                // The backup's list does not verify with this hub's anchor: an audit failure.
                e @ AuditError::TrustList { .. } => RestoreError::AuditFailed(vec![e.to_string()]),
            });
        }
    };
    let set_aside = if live.exists() {
        let aside = data_dir.join(format!("store.before-restore-{stamp}"));
        std::fs::rename(&live, &aside).map_err(io(&live))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staging, &live).map_err(io(&staging))?;
    Ok(Restored {
        store: live,
        set_aside,
        audit,
        trust_list_version,
    })
}

//! A PostgreSQL cluster of a test's own (`caravan_sandbox::postgres::Cluster`): a test that
//! needs one skips, saying so, where PostgreSQL is not installed, except under CI, which must
//! have it (`.ci/run` installs it).

use std::ops::Deref;

use caravan_sandbox::postgres::{Cluster, installed};

/// A running cluster; stopped (immediate mode) and its folder removed on drop.
pub struct Postgres(Cluster);

impl Postgres {
    /// Start a cluster; `None` (with a message naming `test`) where PostgreSQL is not
    /// installed.
    pub fn start(test: &str) -> Option<Self> {
        if !installed() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have PostgreSQL's server programs: .ci/run installs Debian's postgresql"
            );
            eprintln!("SKIPPED {test}: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        }
        Some(Self(
            Cluster::start().unwrap_or_else(|e| panic!("{test}: {e:#}")),
        ))
    }
}

impl Deref for Postgres {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.0
    }
}

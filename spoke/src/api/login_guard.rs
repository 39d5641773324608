//! Who may try a console login now: the per-account lockout and the per-address throttle,
//! in memory and bounded; and who may look up a printed certificate's token on the public
//! verification page ([`LookupGuard`]).
//!
//! An account is locked after repeated failures **from one client address** (per (account,
//! address) pair), not for everyone: otherwise anyone who can reach the login form locks any
//! officer out with five requests. Guessing from many addresses is slowed by the per-address
//! throttle (failures from one address against any account) and by the cost of argon2; a
//! single address is stopped by both. IPv6 clients are counted per /64, the block one
//! customer usually holds, so changing the last bits of an address does not reset anything.
//!
//! Both maps are bounded: when one is full, entries whose time has passed go first, then the
//! unlocked one idle longest (a locked one only when every entry is locked). Flooding the maps with names or addresses evicts old entries, never grows
//! the spoke. Times are `Instant`s passed in, so the rules are tested without waiting.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    time::{Duration, Instant},
};

/// Failed logins from one address against one account before that pair is locked.
pub const ACCOUNT_FAILURES: u32 = 5;
/// How long a locked (account, address) pair stays locked.
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failed logins from one address (any accounts) within [`WINDOW`] before it is throttled.
pub const ADDRESS_FAILURES: u32 = 20;
/// How long failures are remembered, and how long a throttled address waits.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Public lookups of unknown certificate tokens from one address within [`WINDOW`] before it
/// is throttled. A printed code is a 128-bit token, so misses come from mistyped or damaged
/// codes (a few) or from someone walking the token space (many): the throttle bounds the store
/// reads such a walk costs. Lookups of a real token never count, so a border post behind one
/// address checks as many papers as it holds.
pub const LOOKUP_MISSES: u32 = 30;
/// Entries each map holds at most.
pub const MAX_ENTRIES: usize = 10_000;
/// The longest user name the console looks up (longer ones are refused before any lookup).
pub const MAX_USER_BYTES: usize = 64;

/// Why a login is not tried now, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This account, from this address, after [`ACCOUNT_FAILURES`] failures.
    AccountLocked { until: Instant },
    /// This address, after [`ADDRESS_FAILURES`] failures against any accounts.
    AddressThrottled { until: Instant },
}

impl Refusal {
    /// When logins are tried again.
    pub fn until(&self) -> Instant {
        match self {
            Refusal::AccountLocked { until } | Refusal::AddressThrottled { until } => *until,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    /// When the first failure still counted happened (failures older than [`WINDOW`] are
    /// forgotten).
    first: Instant,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Strikes {
    fn new(now: Instant) -> Self {
        Strikes {
            count: 0,
            first: now,
            last: now,
            locked_until: None,
        }
    }

    fn locked(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|t| *t > now)
    }

    /// Nothing to remember any more: not locked, and its failures are older than the window.
    fn spent(&self, now: Instant) -> bool {
        self.locked(now).is_none() && now.duration_since(self.last) >= WINDOW
    }

    /// Count one failure; lock for `lock` when `limit` is reached. Returns the lock's end
    /// when this failure set it.
    fn fail(&mut self, now: Instant, limit: u32, lock: Duration) -> Option<Instant> {
        if now.duration_since(self.first) >= WINDOW {
            self.count = 0;
            self.first = now;
        }
        self.count += 1;
        self.last = now;
        if self.count >= limit {
            self.count = 0;
            self.first = now;
            self.locked_until = Some(now + lock);
            return self.locked_until;
        }
        None
    }
}

/// A map of strikes that never holds more than [`MAX_ENTRIES`].
#[derive(Debug)]
struct Bounded<K> {
    entries: HashMap<K, Strikes>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(cap: usize) -> Self {
        Bounded {
            entries: HashMap::new(),
            cap,
        }
    }

    fn get(&self, key: &K) -> Option<&Strikes> {
        self.entries.get(key)
    }

    /// The entry for `key`, made room for if new.
    fn entry(&mut self, key: K, now: Instant) -> &mut Strikes {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.entries.retain(|_, s| !s.spent(now));
            if self.entries.len() >= self.cap {
                let idle = self
                    .entries
                    .iter()
                    .min_by_key(|(_, s)| (s.locked(now).is_some(), s.last))
                    .map(|(k, _)| k.clone());
                if let Some(idle) = idle {
                    self.entries.remove(&idle);
                }
            }
        }
        self.entries.entry(key).or_insert_with(|| Strikes::new(now))
    }

    fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The failures remembered: per (account, address) and per address.
#[derive(Debug)]
pub struct LoginGuard {
    accounts: Bounded<(String, IpAddr)>,
    addresses: Bounded<IpAddr>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

/// The address as counted: IPv4 as it is (an IPv4-mapped IPv6 address as IPv4), IPv6 by /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginGuard {
    /// A guard whose maps hold at most `cap` entries each.
    pub fn with_capacity(cap: usize) -> Self {
        LoginGuard {
            accounts: Bounded::new(cap),
            addresses: Bounded::new(cap),
        }
    }

    /// Whether `user` may try to log in from `client` now.
    pub fn check(&self, user: &str, client: IpAddr, now: Instant) -> Result<(), Refusal> {
        let client = client_key(client);
        if let Some(until) = self.addresses.get(&client).and_then(|s| s.locked(now)) {
            return Err(Refusal::AddressThrottled { until });
        }
        let key = (user.to_owned(), client);
        if let Some(until) = self.accounts.get(&key).and_then(|s| s.locked(now)) {
            return Err(Refusal::AccountLocked { until });
        }
        Ok(())
    }

    /// Count a failed login (`user` may be a name no officer has); returns the refusal this
    /// failure started, if it reached a limit.
    pub fn failed(&mut self, user: &str, client: IpAddr, now: Instant) -> Option<Refusal> {
        let client = client_key(client);
        let throttled = self
            .addresses
            .entry(client, now)
            .fail(now, ADDRESS_FAILURES, WINDOW)
            .map(|until| Refusal::AddressThrottled { until });
        let locked = self
            .accounts
            .entry((user.to_owned(), client), now)
            .fail(now, ACCOUNT_FAILURES, LOCKOUT)
            .map(|until| Refusal::AccountLocked { until });
        locked.or(throttled)
    }

    /// A login succeeded: this account's failures from this address are forgotten (the
    /// address's failures against other accounts still count).
    pub fn succeeded(&mut self, user: &str, client: IpAddr) {
        self.accounts.remove(&(user.to_owned(), client_key(client)));
    }

    /// How many entries the maps hold (accounts, addresses).
    pub fn len(&self) -> (usize, usize) {
        (self.accounts.len(), self.addresses.len())
    }
}

/// The public verification page's misses (unknown or malformed tokens), per address.
#[derive(Debug)]
pub struct LookupGuard {
    addresses: Bounded<IpAddr>,
}

impl Default for LookupGuard {
    fn default() -> Self {
        LookupGuard {
            addresses: Bounded::new(MAX_ENTRIES),
        }
    }
}

impl LookupGuard {
    /// Whether `client` may look a token up now; otherwise, until when it waits.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Instant> {
        match self
            .addresses
            .get(&client_key(client))
            .and_then(|s| s.locked(now))
        {
            Some(until) => Err(until),
            None => Ok(()),
        }
    }

    /// Count a lookup that found nothing; returns the throttle's end when this miss started it.
    pub fn missed(&mut self, client: IpAddr, now: Instant) -> Option<Instant> {
        self.addresses
            .entry(client_key(client), now)
            .fail(now, LOOKUP_MISSES, WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_account_locks_for_the_address_that_failed_not_for_others() {
        let mut guard = LoginGuard::default();
        let now = Instant::now();
        let (attacker, officer) = (ip("203.0.113.9"), ip("198.51.100.20"));
        for i in 1..ACCOUNT_FAILURES {
            assert_eq!(guard.failed("ana", attacker, now), None, "failure {i}");
        }
        assert_eq!(
            guard.failed("ana", attacker, now),
            Some(Refusal::AccountLocked {
                until: now + LOCKOUT
            })
        );
        assert_eq!(
            guard.check("ana", attacker, now),
            Err(Refusal::AccountLocked {
                until: now + LOCKOUT
            })
        );
        // The officer at the border post is not locked out by someone else's five requests.
        assert_eq!(guard.check("ana", officer, now), Ok(()));
        // The lock ends.
        assert_eq!(guard.check("ana", attacker, now + LOCKOUT), Ok(()));
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let mut guard = LoginGuard::default();
        let now = Instant::now();
        let client = ip("203.0.113.9");
        let mut started = None;
        for i in 0..ADDRESS_FAILURES {
            // A different name each time: no account reaches its own limit.
            started = guard.failed(&format!("user{i}"), client, now);
        }
        assert_eq!(
            started,
            Some(Refusal::AddressThrottled {
                until: now + WINDOW
            })
        );
        assert_eq!(
            guard.check("someone-else", client, now),
            Err(Refusal::AddressThrottled {
                until: now + WINDOW
            })
        );
        assert_eq!(guard.check("someone-else", ip("203.0.113.10"), now), Ok(()));
        assert_eq!(guard.check("someone-else", client, now + WINDOW), Ok(()));
    }

    #[test]
    fn old_failures_are_forgotten_and_success_clears_the_account() {
        let mut guard = LoginGuard::default();
        let now = Instant::now();
        let client = ip("192.0.2.1");
        for _ in 1..ACCOUNT_FAILURES {
            guard.failed("ana", client, now);
        }
        // The window passed: the next failure is the first again.
        assert_eq!(guard.failed("ana", client, now + WINDOW), None);
        for _ in 2..ACCOUNT_FAILURES {
            guard.failed("ana", client, now + WINDOW);
        }
        guard.succeeded("ana", client);
        assert_eq!(guard.failed("ana", client, now + WINDOW), None);
        assert_eq!(guard.check("ana", client, now + WINDOW), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let mut guard = LoginGuard::default();
        let now = Instant::now();
        for i in 0..ACCOUNT_FAILURES {
            guard.failed("ana", ip(&format!("2001:db8:1:2::{i}")), now);
        }
        assert!(guard.check("ana", ip("2001:db8:1:2::ffff"), now).is_err());
        assert_eq!(guard.check("ana", ip("2001:db8:1:3::1"), now), Ok(()));
    }

    #[test]
    fn the_maps_stay_bounded_under_a_flood() {
        let mut guard = LoginGuard::with_capacity(100);
        let now = Instant::now();
        // A locked pair, then a flood of names and addresses.
        for _ in 0..ACCOUNT_FAILURES {
            guard.failed("ana", ip("192.0.2.1"), now);
        }
        for i in 0..5000u32 {
            let client = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            guard.failed(
                &format!("flood{i}"),
                client,
                now + Duration::from_millis(i.into()),
            );
        }
        let (accounts, addresses) = guard.len();
        assert!(
            accounts <= 100 && addresses <= 100,
            "{accounts} {addresses}"
        );
        assert!(
            guard.check("ana", ip("192.0.2.1"), now).is_err(),
            "a locked pair outlives the flood"
        );
        // Spent entries go first: after the window, the flood's are dropped before anything
        // still locked.
        let mut guard = LoginGuard::with_capacity(10);
        for i in 0..9u32 {
            guard.failed(&format!("old{i}"), ip("192.0.2.2"), now);
        }
        for _ in 0..ACCOUNT_FAILURES {
            guard.failed("ana", ip("192.0.2.1"), now + WINDOW);
        }
        let later = now + WINDOW + Duration::from_secs(1);
        guard.failed("new", ip("192.0.2.3"), later);
        assert!(guard.check("ana", ip("192.0.2.1"), later).is_err());
        assert_eq!(guard.len().0, 2, "the spent entries were dropped");
    }

    #[test]
    fn public_lookups_are_throttled_per_address_after_misses() {
        let mut guard = LookupGuard::default();
        let now = Instant::now();
        let (walker, post) = (ip("2001:db8:1:2::9"), ip("198.51.100.20"));
        for i in 1..LOOKUP_MISSES {
            assert_eq!(guard.missed(walker, now), None, "miss {i}");
            assert_eq!(guard.check(walker, now), Ok(()));
        }
        // The last miss starts the throttle, for the whole /64, not for another address.
        assert_eq!(guard.missed(walker, now), Some(now + WINDOW));
        assert_eq!(guard.check(ip("2001:db8:1:2::77"), now), Err(now + WINDOW));
        assert_eq!(guard.check(post, now), Ok(()));
        assert_eq!(guard.check(walker, now + WINDOW), Ok(()));
        // Misses spread over more than the window are forgotten.
        let mut guard = LookupGuard::default();
        for i in 0..3 * LOOKUP_MISSES {
            let at = now + WINDOW / LOOKUP_MISSES * i * 2;
            assert_eq!(guard.missed(post, at), None, "miss {i}");
        }
    }
}

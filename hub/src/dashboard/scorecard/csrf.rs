//! Why the scorecard's form needs more than the client certificate: a browser presents its
//! certificate to any site that asks, including on a form another site makes it post here.
//! So a post is taken only when the browser says it came from this origin
//! (`Sec-Fetch-Site: same-origin`, when the browser sends the header at all) and it carries
//! the token the page gave this operator: HMAC-SHA256 of the operator's name under a secret
//! drawn when the process starts, compared in constant time. Another site can read neither the
//! page nor the secret. A restart draws a new secret, so a form left open across it is refused
//! once and works again when the page is reloaded.

use axum::http::HeaderMap;
use rand_core::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What the token is bound to, besides the operator.
const PURPOSE: &[u8] = b"caravan-dashboard-scorecard-form-v1\0";

/// The process's secret for form tokens.
pub struct Csrf {
    secret: [u8; 32],
}

impl Csrf {
    /// A new secret from the operating system's generator.
    pub fn new() -> Self {
        let mut secret = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut secret);
        Self { secret }
    }

    #[cfg(test)]
    pub fn with_secret(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// The token the form carries for `operator`, in hex.
    pub fn token(&self, operator: &str) -> String {
        let mut message = PURPOSE.to_vec();
        message.extend_from_slice(operator.as_bytes());
        hex::encode(hmac_sha256(&self.secret, &message))
    }

    /// Whether `token` is `operator`'s, compared in constant time.
    pub fn verify(&self, operator: &str, token: &str) -> bool {
        let expected = self.token(operator);
        expected.len() == token.len() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Why a post is not taken from the browser that sent it.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    let site = headers.get("sec-fetch-site")?;
    (site.as_bytes() != b"same-origin").then(|| {
        format!(
            "the form was sent from another site (Sec-Fetch-Site: {}); record entries from this dashboard's own pages",
            String::from_utf8_lossy(site.as_bytes())
        )
    })
}

/// HMAC-SHA256 (RFC 2104) with a key of at most one block.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    padded[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| padded.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2 has a short key; test case 1's 20-byte key padded with zeros
        // to 32 gives the same HMAC (keys are zero-padded to the block).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            hex::encode(hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn a_token_is_the_operators_own() {
        let csrf = Csrf::with_secret([7; 32]);
        let token = csrf.token("ops");
        assert!(csrf.verify("ops", &token));
        assert!(!csrf.verify("other", &token));
        assert!(!csrf.verify("ops", ""));
        assert!(!csrf.verify("ops", &token[..10]));
        assert!(!Csrf::with_secret([8; 32]).verify("ops", &token));
    }

    #[test]
    fn only_same_origin_posts_when_the_browser_says() {
        let mut headers = HeaderMap::new();
        assert_eq!(cross_site(&headers), None);
        headers.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert_eq!(cross_site(&headers), None);
        for site in ["cross-site", "same-site", "none"] {
            headers.insert("sec-fetch-site", site.parse().unwrap());
            assert!(cross_site(&headers).is_some_and(|why| why.contains(site)));
        }
    }
}

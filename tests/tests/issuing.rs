//! Issuing from the console end to end (issue 18), with the real binaries and no browser: KZ's
//! issuing officer fills an e-Phyto as form fields, a missing required field is refused with
//! the field named, the officer who prepared it cannot approve it (four eyes), nor can an
//! officer without the approving role; a second officer approves, and the document arrives at
//! CN genuine and consistent under the certificate's id; the printed QR code's public page
//! answers without login, says the certificate is current and shows none of its content, and
//! after an approved correction says it was replaced.

use caravan_spoke::{api::login_guard::LOOKUP_MISSES, config::Role};
use caravan_tests::{
    Net,
    issuing::{APPROVER, CONTENT, EPHYTO, EPHYTO_MORE, ISSUER, PASSWORD},
};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value of the first `name="{name}" value="…"` of a page.
fn value_of(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

/// A logged-in officer: the session cookie and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(net: &Net, spoke: &str, user: &str) -> Session {
    let (_, headers, form) = net
        .console_call(spoke, "GET", "/console/login", None, None)
        .await;
    let login_cookie = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = serde_urlencoded::to_string([
        ("user", user),
        ("password", PASSWORD),
        ("csrf", &value_of(&form, "csrf")),
    ])
    .unwrap();
    let (status, headers, _) = net
        .console_call(
            spoke,
            "POST",
            "/console/login",
            Some(&login_cookie),
            Some(&body),
        )
        .await;
    assert_eq!(status, 303, "{user} logs in");
    let cookie = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The session's token, as every form of the console carries it (the logout form's).
    let (_, _, page) = net
        .console_call(spoke, "GET", "/console/certificates", Some(&cookie), None)
        .await;
    Session {
        csrf: value_of(&page, "csrf"),
        cookie,
    }
}

async fn get(net: &Net, s: &Session, path: &str) -> (u16, String) {
    let (status, _, page) = net
        .console_call("KZ", "GET", path, Some(&s.cookie), None)
        .await;
    (status, page)
}

/// Post `fields` with the session's CSRF token; the status, the redirect and the page.
async fn post(
    net: &Net,
    s: &Session,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let mut all = vec![("csrf", s.csrf.as_str())];
    all.extend_from_slice(fields);
    let body = serde_urlencoded::to_string(&all).unwrap();
    let (status, headers, page) = net
        .console_call("KZ", "POST", path, Some(&s.cookie), Some(&body))
        .await;
    (
        status,
        header(&headers, "location").map(str::to_owned),
        page,
    )
}

/// The e-Phyto with both goods lines and declarations, and the blank line the certificate page
/// always offers, as the page's inputs post it.
fn full_ephyto() -> Vec<(&'static str, &'static str)> {
    let mut all = EPHYTO.to_vec();
    all.extend_from_slice(EPHYTO_MORE);
    all.extend([("lines.2.description", ""), ("lines.2.hs_code", "")]);
    all
}

fn with<'a>(action: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("action", action), ("edited", "1")];
    all.extend_from_slice(fields);
    all
}

/// The certificate id of a redirect to its page.
fn certificate_of(location: Option<String>) -> String {
    location
        .expect("a redirect")
        .strip_prefix("/console/certificates/")
        .expect("to a certificate's page")
        .trim_end_matches("#lines")
        .to_owned()
}

/// The QR code's address on a printout: the token of `/verify/{token}`.
fn token_of(print: &str) -> String {
    print
        .split("/verify/")
        .nth(1)
        .unwrap_or_else(|| panic!("no verification address in {print}"))
        .split('<')
        .next()
        .unwrap()
        .to_owned()
}

async fn verify(net: &Net, token: &str) -> (u16, Vec<(String, String)>, String) {
    net.console_call("KZ", "GET", &format!("/verify/{token}"), None, None)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_e_phyto_is_filled_approved_by_a_second_officer_sent_and_verifiable() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    // The issuer may approve too (a senior officer), so that four eyes, not a role, stops them
    // approving what they prepared.
    net.console_officers = vec![
        (
            ISSUER.into(),
            PASSWORD.into(),
            vec![Role::Issuing, Role::Approving],
        ),
        (APPROVER.into(), PASSWORD.into(), vec![Role::Approving]),
    ];
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;

    let issuer = login(&net, "KZ", ISSUER).await;
    let approver = login(&net, "KZ", APPROVER).await;
    let viewer = login(&net, "KZ", "officer").await;

    // The list offers new certificates to the issuing officer only.
    let (status, list) = get(&net, &issuer, "/console/certificates").await;
    assert_eq!(status, 200);
    assert!(
        list.contains("New e-Phyto") && list.contains("New e-CO"),
        "{list}"
    );
    let (_, list) = get(&net, &viewer, "/console/certificates").await;
    assert!(!list.contains("New e-Phyto"), "{list}");
    assert!(list.contains("<a href=\"/console/certificates\">Certificates</a>"));
    let (status, choice) = get(&net, &issuer, "/console/certificates/new?kind=e-phyto").await;
    assert_eq!(status, 200);
    assert!(
        choice.contains("action=\"/console/certificates\""),
        "{choice}"
    );

    // A draft, created by a POST with the session's token (a forged token is refused).
    let forged = Session {
        cookie: issuer.cookie.clone(),
        csrf: "forged".into(),
    };
    let (status, _, _) = post(
        &net,
        &forged,
        "/console/certificates",
        &[("kind", "e-phyto"), ("to", "CN")],
    )
    .await;
    assert_eq!(status, 403);
    let (status, location, _) = post(
        &net,
        &issuer,
        "/console/certificates",
        &[("kind", "e-phyto"), ("to", "CN")],
    )
    .await;
    assert_eq!(status, 303);
    let id = certificate_of(location);
    let page_path = format!("/console/certificates/{id}");

    // A viewing officer cannot save it: the role is named.
    let (status, _, page) = post(&net, &viewer, &page_path, &with("save", &full_ephyto())).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("needs the issuing role"), "{page}");

    // Submitted without the consignor's name: refused with the field named, typed values kept.
    let without_name: Vec<_> = full_ephyto()
        .into_iter()
        .filter(|(k, _)| *k != "consignor.name")
        .collect();
    let (status, _, page) = post(&net, &issuer, &page_path, &with("submit", &without_name)).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("<li><b>Consignor · Name</b>: this field is required"),
        "{page}"
    );
    assert!(
        page.contains("name=\"consignor.name\" value=\"\" aria-invalid=\"true\"><span class=\"problem\" role=\"alert\">"),
        "{page}"
    );
    assert!(page.contains("value=\"Malus sieversii\""), "{page}");

    // Filled in whole, it is submitted.
    let (status, location, page) =
        post(&net, &issuer, &page_path, &with("submit", &full_ephyto())).await;
    assert_eq!(status, 303, "{page}");
    assert_eq!(certificate_of(location), id);
    let (_, page) = get(&net, &issuer, &page_path).await;
    assert!(page.contains("<b>Awaiting approval</b>"), "{page}");

    // Four eyes: the officer who prepared it cannot approve it; nor can a viewing officer.
    let (status, _, page) = post(&net, &issuer, &page_path, &[("action", "approve")]).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("four eyes"), "{page}");
    let (status, _, page) = post(&net, &viewer, &page_path, &[("action", "approve")]).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("needs the approving role"), "{page}");

    // The second officer approves: numbered, signed, queued under the certificate's id.
    let (status, _, page) = post(&net, &approver, &page_path, &[("action", "approve")]).await;
    assert_eq!(status, 303, "{page}");
    let (_, page) = get(&net, &approver, &page_path).await;
    assert!(page.contains("<b>Issued</b>"), "{page}");
    let number = page
        .split("KZ-PHY-")
        .nth(1)
        .map(|rest| format!("KZ-PHY-{}", &rest[..11]))
        .unwrap_or_else(|| panic!("no number in {page}"));
    assert!(
        page.contains(&format!("href=\"/console/sent/{id}\"")),
        "{page}"
    );
    for step in ["Created", "Submitted for approval", "Approved and sent"] {
        assert!(page.contains(step), "{step} not in the history: {page}");
    }

    // It arrives at CN genuine and consistent.
    let arrived = net.wait_inbox("CN", &id).await;
    assert_eq!(
        arrived["verdict"]["status"], "GENUINE_AND_CONSISTENT",
        "{arrived:#}"
    );
    assert_eq!(arrived["document_id"], number.as_str(), "{arrived:#}");

    // The printout's QR code leads to the public page, which answers without login.
    let (status, print) = get(&net, &approver, &format!("{page_path}/print")).await;
    assert_eq!(status, 200);
    assert!(
        print.contains("https://console-kz.caravan.test/verify/"),
        "{print}"
    );
    assert!(print.contains("<svg"), "{print}");
    let token = token_of(&print);
    let (status, headers, public) = verify(&net, &token).await;
    assert_eq!(status, 200, "{public}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert!(public.contains(&number), "{public}");
    assert!(public.contains("It is current."), "{public}");
    for secret in CONTENT {
        assert!(!public.contains(secret), "{secret} shown: {public}");
    }
    // Unknown and malformed tokens alike: a neutral 404.
    for other in [
        "0123456789abcdef0123456789abcdef",
        "not-a-token",
        &token.to_uppercase(),
    ] {
        let (status, _, page) = verify(&net, other).await;
        assert_eq!(status, 404, "{other}");
        assert!(page.contains("No certificate is known for this code."));
    }

    // A correction, approved, replaces it; the public page says so.
    let (status, location, page) = post(&net, &issuer, &page_path, &[("action", "correct")]).await;
    assert_eq!(status, 303, "{page}");
    let fix = certificate_of(location);
    assert_ne!(fix, id);
    let fix_path = format!("/console/certificates/{fix}");
    let (status, _, page) = post(&net, &issuer, &fix_path, &[("action", "submit")]).await;
    assert_eq!(status, 303, "{page}");
    let (status, _, page) = post(&net, &approver, &fix_path, &[("action", "approve")]).await;
    assert_eq!(status, 303, "{page}");
    net.wait_inbox("CN", &fix).await;
    let (status, _, public) = verify(&net, &token).await;
    assert_eq!(status, 200);
    assert!(
        public.contains("It was replaced by certificate KZ-PHY-"),
        "{public}"
    );
    for secret in CONTENT {
        assert!(!public.contains(secret), "{secret} shown: {public}");
    }

    // Someone walking the token space from one address is made to wait after LOOKUP_MISSES
    // codes of nothing (three were looked up above), and then learns nothing, not even of a
    // real code.
    for i in 4..LOOKUP_MISSES {
        let (status, _, _) = verify(&net, &format!("{i:032x}")).await;
        assert_eq!(status, 404, "miss {i}");
    }
    let (status, headers, page) = verify(&net, &format!("{LOOKUP_MISSES:032x}")).await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Try again after"), "{page}");
    let (status, headers_after, page) = verify(&net, &token).await;
    assert_eq!(status, 429, "{page}");
    for h in [&headers, &headers_after] {
        let wait: u64 = header(h, "retry-after").unwrap().parse().unwrap();
        assert!((800..=901).contains(&wait), "{wait}");
    }
}

//! Issuing from the console in a real headless Chromium (issue 18): KZ's issuing officer logs
//! in through the login page, fills an e-Phyto and an e-CO for CN field by field (a goods line
//! added with the page's own button), is refused with the field named when a required field is
//! left empty, submits both and cannot approve them (four eyes); a second officer approves
//! both; they arrive at CN genuine and consistent; the e-Phyto's printout carries the address
//! of its QR code, which a browser without a session opens to read that the certificate is
//! current and nothing of what it says.

use std::path::PathBuf;

use caravan_spoke::config::Role;
use caravan_tests::{
    Net, browser,
    issuing::{APPROVER, CONTENT, ECO, ECO_MORE, EPHYTO, EPHYTO_MORE, ISSUER, PASSWORD},
};
use serde_json::json;

/// Set the inputs, textareas and selects named in `fields` as typing and picking would; fails
/// naming every field the page lacks or would not take (a select without that option).
async fn fill(b: &mut browser::Browser, fields: &[(&str, &str)]) {
    let map: serde_json::Map<_, _> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let script = format!(
        "(() => {{ const refused = [];\
           for (const [name, value] of Object.entries({map})) {{\
             const el = document.querySelector(`form.certificate [name=\"${{name}}\"]`);\
             if (!el) {{ refused.push(name + ' (missing)'); continue; }}\
             el.value = value;\
             if (el.value !== value) refused.push(name + ' = ' + el.value);\
           }}\
           return refused; }})()",
        map = serde_json::Value::Object(map)
    );
    let refused = b.eval(&script).await;
    assert_eq!(refused, json!([]), "fields the page would not take");
}

/// Click what `selector` finds and wait for the page it leads to (a new document, loaded).
async fn click(b: &mut browser::Browser, selector: &str, what: &str) {
    let script = format!(
        "(() => {{ const el = document.querySelector({selector:?});\
           if (!el) return false; window.__caravan_before = true; el.click(); return true; }})()"
    );
    assert_eq!(
        b.eval(&script).await,
        json!(true),
        "no {selector} on the page: {}",
        b.text().await
    );
    b.wait_for(
        what,
        "window.__caravan_before === undefined && document.readyState === 'complete'",
    )
    .await;
}

async fn login(b: &mut browser::Browser, base: &str, user: &str) {
    b.goto(&format!("{base}/console/login")).await;
    let fill = format!(
        "document.querySelector('input[name=user]').value = '{user}';\
         document.querySelector('input[name=password]').value = '{PASSWORD}';\
         document.querySelector('input[name=password]').form.submit(); true"
    );
    b.eval(&fill).await;
    b.wait_for(
        "the inbox after logging in",
        "location.pathname === '/console' && document.readyState === 'complete'",
    )
    .await;
}

/// The certificates, opened without a session, lead to the login page.
async fn asks_for_login(b: &mut browser::Browser, base: &str) {
    b.eval(&format!(
        "window.__caravan_before = true; location.href = '{base}/console/certificates'; true"
    ))
    .await;
    b.wait_for(
        "the login page",
        "window.__caravan_before === undefined && document.readyState === 'complete' \
         && location.pathname === '/console/login' && !!document.querySelector('input[name=password]')",
    )
    .await;
}

/// Start a new certificate of `kind` (`e-phyto`, `e-co`) for CN from the certificates list;
/// its id.
async fn start(b: &mut browser::Browser, kind: &str) -> String {
    click(
        b,
        "nav a[href='/console/certificates'], a[href='/console/certificates']",
        "the certificates",
    )
    .await;
    click(
        b,
        &format!("a[href='/console/certificates/new?kind={kind}']"),
        "the new certificate's page",
    )
    .await;
    let picked = b
        .eval("(() => { const s = document.querySelector('select[name=to]'); s.value = 'CN'; return s.value; })()")
        .await;
    assert_eq!(picked, json!("CN"));
    click(b, "form.panel button", "the draft").await;
    let path = b.eval("location.pathname").await;
    let id = path
        .as_str()
        .and_then(|p| p.strip_prefix("/console/certificates/"))
        .unwrap_or_else(|| panic!("not a certificate's page: {path}"))
        .to_owned();
    assert!(!id.contains('/') && id != "new", "{id}");
    assert!(b.text().await.contains("Draft"));
    id
}

/// Fill a new draft in two rounds (the second after "Add a line"), submit it once with
/// `required` emptied and see the refusal name it, then submit it whole.
async fn fill_and_submit(
    b: &mut browser::Browser,
    first: &[(&str, &str)],
    more: &[(&str, &str)],
    required: &str,
) -> Vec<u8> {
    fill(b, first).await;
    click(
        b,
        "form.certificate button[value=add_line]",
        "the form with a blank line",
    )
    .await;
    // What was typed was saved: the page comes back with it and a second line to fill.
    let kept = b
        .eval("document.querySelector('form.certificate [name=\"lines.0.description\"]').value")
        .await;
    assert_eq!(
        kept,
        json!(
            first
                .iter()
                .find(|(k, _)| *k == "lines.0.description")
                .unwrap()
                .1
        )
    );
    fill(b, more).await;

    // A required field emptied: refused, the field named in the list and marked beside it.
    let value = first.iter().find(|(k, _)| *k == required).unwrap().1;
    fill(b, &[(required, "")]).await;
    click(b, "form.certificate button[value=submit]", "the refusal").await;
    let page = b.text().await;
    assert!(page.contains("The form has problems"), "{page}");
    // Named by its labels, as the officer reads the form.
    let named = match required {
        "consignor.name" => "Consignor · Name",
        "exporter.name" => "Exporter · Name",
        other => panic!("no label known for {other}"),
    };
    assert!(
        page.contains(&format!("{named}: this field is required")),
        "{page}"
    );
    assert!(!page.contains("Awaiting approval"), "{page}");
    let marked = b
        .eval(&format!(
            "(() => {{ const el = document.querySelector('form.certificate [name=\"{required}\"]');\
               return el.getAttribute('aria-invalid') === 'true'\
                 && !!el.parentElement.querySelector('span.problem'); }})()"
        ))
        .await;
    assert_eq!(marked, json!(true), "{required} not marked: {page}");
    // What was typed is kept, the second line too.
    let (last, typed) = more[0];
    let kept = b
        .eval(&format!(
            "document.querySelector('form.certificate [name=\"{last}\"]').value"
        ))
        .await;
    assert_eq!(kept, json!(typed));
    let shot = b.screenshot().await;

    // Filled in, submitted.
    fill(b, &[(required, value)]).await;
    click(
        b,
        "form.certificate button[value=submit]",
        "the submitted certificate",
    )
    .await;
    let page = b.text().await;
    assert!(page.contains("State: Awaiting approval"), "{page}");
    // Four eyes: the officer who prepared it, though an approving officer, is told why and
    // offered no Approve button.
    assert!(
        page.contains("You prepared this certificate, so another approving officer must approve it (four eyes)."),
        "{page}"
    );
    assert_eq!(
        b.eval("!!document.querySelector('button[value=approve]')")
            .await,
        json!(false)
    );
    shot
}

/// Approve the certificate `id` as the logged-in approver; its number.
async fn approve(b: &mut browser::Browser, base: &str, id: &str) -> String {
    b.goto(&format!("{base}/console/certificates/{id}")).await;
    let page = b.text().await;
    assert!(
        page.contains("Awaiting approval") && !page.contains("four eyes"),
        "{page}"
    );
    click(b, "button[value=approve]", "the approved certificate").await;
    let page = b.text().await;
    assert!(page.contains("State: Issued"), "{page}");
    for step in [
        "Created",
        "Submitted for approval",
        "Approved and sent",
        ISSUER,
        APPROVER,
    ] {
        assert!(page.contains(step), "{step} not in the history: {page}");
    }
    let number = b
        .eval("(document.querySelector('h1').innerText.match(/KZ-[A-Z]+-[0-9-]+/) || [''])[0]")
        .await;
    let number = number.as_str().unwrap_or_default().to_owned();
    assert!(!number.is_empty(), "no number: {page}");
    number
}

#[tokio::test(flavor = "multi_thread")]
async fn officers_issue_an_e_phyto_and_an_e_co_in_a_real_browser() {
    let Some(chromium) = browser::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!(
            "SKIPPED officers_issue_an_e_phyto_and_an_e_co_in_a_real_browser: no Chromium here (apt-get install chromium)"
        );
        return;
    };
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    // The issuer may approve too, so that four eyes, not a role, stops them approving what
    // they prepared.
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
    let base = format!("http://{}", net.console_addr("KZ").await);

    let mut b = browser::Browser::launch(&chromium).await;
    b.viewport(1280, 1400).await;

    // The issuing officer prepares both.
    login(&mut b, &base, ISSUER).await;
    let phyto = start(&mut b, "e-phyto").await;
    let form_shot = fill_and_submit(&mut b, EPHYTO, EPHYTO_MORE, "consignor.name").await;
    let eco = start(&mut b, "e-co").await;
    fill_and_submit(&mut b, ECO, ECO_MORE, "exporter.name").await;
    click(
        &mut b,
        "form[action='/console/logout'] button",
        "the logged-out page",
    )
    .await;
    asks_for_login(&mut b, &base).await;

    // The approving officer approves both.
    login(&mut b, &base, APPROVER).await;
    let phyto_number = approve(&mut b, &base, &phyto).await;
    let eco_number = approve(&mut b, &base, &eco).await;
    assert!(phyto_number.starts_with("KZ-PHY-"), "{phyto_number}");

    // Both arrive at CN genuine and consistent, under the certificates' ids and numbers.
    for (id, number) in [(&phyto, &phyto_number), (&eco, &eco_number)] {
        let arrived = net.wait_inbox("CN", id).await;
        assert_eq!(
            arrived["verdict"]["status"], "GENUINE_AND_CONSISTENT",
            "{arrived:#}"
        );
        assert_eq!(arrived["document_id"], number.as_str(), "{arrived:#}");
    }

    // The e-Phyto's printout: its QR code's address, as printed under it.
    b.goto(&format!("{base}/console/certificates/{phyto}/print"))
        .await;
    let print = b.text().await;
    assert!(
        print.contains(&phyto_number) && print.contains("Fresh apples"),
        "{print}"
    );
    assert_eq!(b.eval("!!document.querySelector('svg')").await, json!(true));
    let url = b
        .eval("document.querySelector('small.verify').innerText.trim()")
        .await;
    let url = url.as_str().unwrap_or_default().to_owned();
    let token = url
        .strip_prefix("https://console-kz.caravan.test/verify/")
        .unwrap_or_else(|| panic!("no verification address: {url}"))
        .to_owned();
    let print_shot = b.screenshot().await;

    // Opened by someone holding the paper: another browser, no session.
    let mut public = browser::Browser::launch(&chromium).await;
    public.viewport(1280, 800).await;
    public.goto(&format!("{base}/verify/{token}")).await;
    let page = public.text().await;
    assert!(page.contains("Certificate verification"), "{page}");
    assert!(page.contains(&phyto_number), "{page}");
    assert!(page.contains("It is current."), "{page}");
    for secret in CONTENT {
        assert!(!page.contains(secret), "{secret} shown: {page}");
    }
    let html = public.eval("document.documentElement.outerHTML").await;
    for secret in CONTENT {
        assert!(
            !html.as_str().unwrap_or_default().contains(secret),
            "{secret} in the page's HTML"
        );
    }
    let verify_shot = public.screenshot().await;
    // Nor is that browser logged in: the certificates ask for a login.
    asks_for_login(&mut public, &base).await;

    if let Some(dir) = std::env::var_os("CARAVAN_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        for (name, png) in [
            ("issuing-ephyto-form.png", form_shot),
            ("issuing-print.png", print_shot),
            ("issuing-verify.png", verify_shot),
        ] {
            std::fs::write(dir.join(name), png).unwrap();
        }
    }
}

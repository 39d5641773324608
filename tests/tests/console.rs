//! The officers' web console over HTTP, as a browser uses it: login with a CSRF-protected form,
//! session cookie, inbox with filters, a document's verification panel, the printable view,
//! a tampered document flagged, and lockout after repeated failures; the security headers, the
//! return to the page asked for, the printout's QR code from the configured address only, the
//! lockout per (account, address), and Back after logout in a real browser; the console in the
//! officer's language (Accept-Language before login, the login page's choice after), times in
//! the configured zone, code-list values and units decoded; the sender's officer seeing what
//! the spoke sent, and a recipient's rejection with its business code and reason.

use std::{net::Ipv4Addr, path::PathBuf};

use caravan_common::{DocumentType, MessageId, RefusalCode};
use caravan_spoke::store::{SpokeStore, Verification};
use caravan_tests::{Net, browser, sample};

const PASSWORD: &str = "border-post-7";

/// The verdict on a document whose signature and every content check passed.
const CONSISTENT: &str = "✔ Genuine and consistent: signed, current, unaltered, and what it says fits its sender and recipient.";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Log in as `officer` with `password`; returns the status and the session cookie.
async fn login(net: &Net, password: &str) -> (u16, Option<String>) {
    let (_, headers, form) = net
        .console_call("CN", "GET", "/console/login", None, None)
        .await;
    let login_cookie = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let body = format!("user=officer&password={password}&csrf={csrf}");
    let (status, headers, _) = net
        .console_call(
            "CN",
            "POST",
            "/console/login",
            Some(&login_cookie),
            Some(&body),
        )
        .await;
    let session = header(&headers, "set-cookie").map(|c| c.to_owned());
    (status, session)
}

/// Log in with the login form shown for `accept_language` and posted with the language it was
/// shown in; returns the login page and the session cookie (`name=value`).
async fn login_in(net: &Net, accept_language: &str, query: &str) -> (String, String) {
    let (_, headers, form) = net
        .console_call_with(
            "CN",
            "GET",
            &format!("/console/login{query}"),
            None,
            None,
            &[("accept-language", accept_language)],
        )
        .await;
    let login_cookie = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let value = |name: &str| {
        form.split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    let body = format!(
        "user=officer&password={PASSWORD}&csrf={}&lang={}",
        value("csrf"),
        value("lang")
    );
    let (status, headers, _) = net
        .console_call(
            "CN",
            "POST",
            "/console/login",
            Some(&login_cookie),
            Some(&body),
        )
        .await;
    assert_eq!(status, 303);
    let session = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (form, session)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_speaks_the_officers_language_and_decodes_codes() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    net.console_time_zone = Some("Asia/Almaty".into());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let phyto = net
        .send(
            "KZ",
            "CN",
            "e-phyto",
            &net.sample_issued_now("ephyto/carec-KZ-CN-phytosanitary.xml"),
        )
        .await;
    let phyto = phyto["message_id"].as_str().unwrap().to_owned();
    let co = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let co = co["message_id"].as_str().unwrap().to_owned();
    net.wait_inbox("CN", &phyto).await;
    net.wait_inbox("CN", &co).await;

    // Before login the browser's Accept-Language decides, by quality.
    let (form, ru) = login_in(&net, "de;q=0.9, ru;q=0.8, en;q=0.1", "").await;
    assert!(form.contains("<html lang=\"ru\">"), "{form}");
    assert!(form.contains("Пароль") && form.contains("Войти"), "{form}");
    // The other languages are offered by their own names.
    assert!(form.contains("href=\"/console/login?lang=zh\""), "{form}");
    assert!(
        form.contains("中文（简体）") && form.contains("English"),
        "{form}"
    );

    let (_, _, inbox) = net
        .console_call("CN", "GET", "/console", Some(&ru), None)
        .await;
    assert!(inbox.contains("Полученные документы"), "{inbox}");
    assert!(inbox.contains("Документов во входящих: 2."), "{inbox}");
    assert!(inbox.contains("Получен (Asia/Almaty)"), "{inbox}");
    assert!(inbox.contains("✔ проверен"), "{inbox}");
    assert!(inbox.contains("Фитосанитарный сертификат"), "{inbox}");

    let (_, _, page) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{phyto}"),
            Some(&ru),
            None,
        )
        .await;
    // Codes by their names, in Russian, the code kept beside; a code not in its list is shown
    // as written and said to be so.
    // The issue date the document states in UTC (sample_issued_now), shown in Almaty:
    // "2026-12-07 00:51:28 +05:00".
    let issued = page
        .split("<th>Дата выдачи</th><td>")
        .nth(1)
        .and_then(|rest| rest.split("</td>").next())
        .unwrap_or_default();
    assert!(
        issued.len() == 26 && issued.ends_with(" +05:00") && !issued.contains(['T', 'Z']),
        "issue date shown as {issued:?}"
    );
    for expected in [
        "✔ Подлинный и непротиворечивый: подписан, действующий, без изменений, и его содержание соответствует отправителю и получателю.",
        "<th>Вид сертификата</th><td>Фитосанитарный сертификат <small>(851)</small>",
        "<th>Статус</th><td>70 <small class=\"warn\">(нет в справочнике)</small>",
        "<th>Страна экспорта</th><td>Казахстан <small>(KZ)</small>",
        "<th>Страна импорта</th><td>Китай <small>(CN)</small>",
        "<th>Вид транспорта</th><td>Автомобильный транспорт <small>(3)</small>",
        "<th>Вид транспорта</th><td>Морской транспорт <small>(1)</small>",
        "ПРОЙДЕНА</span></td><th>Подпись</th>",
        // Each content check, in Russian.
        "ПРОЙДЕНА</span></td><th>Выдавший орган</th>",
        "ПРОЙДЕНА</span></td><th>Заголовок</th>",
        "ПРОЙДЕНА</span></td><th>Даты</th>",
        "ПРОЙДЕНА</span></td><th>Повтор</th>",
        "<th>Номер</th><td>KZ-PHY-2026-004512</td>",
        "Время указано по часовому поясу Asia/Almaty.",
        "<summary>Хеши и идентификаторы ключей</summary>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    // Times in Almaty, with the offset.
    assert!(page.contains("+05:00"), "{page}");
    // The summary at the top: weights with their units, the attached file offered.
    let summary = page.split("<h2>Сводка</h2>").nth(1).unwrap_or_default();
    let summary = summary
        .split("<h2>Проверка</h2>")
        .next()
        .unwrap_or_default();
    for expected in [
        "<th>Вид документа</th><td>Фитосанитарный сертификат <small>(851)</small></td>",
        "<th>Страна назначения</th><td>Китай <small>(CN)</small></td>",
        "Zhetysu Agro LLP",
        "Xinjiang Tianshan Fruit Trading Co., Ltd.",
        "<td>10 кг</td>",
        "<td>60 кг</td>",
        // The HS code with its HS 2022 heading, in English; the chapter in its title.
        "<td>06029048 · <small lang=\"en\" title=\"Группа 06: Trees and other plants, live; bulbs, roots and the like; cut flowers and ornamental foliage\">0602 Plants, live; n.e.c. in heading no. 0601, (including their roots) cuttings and slips; mushroom spawn</small></td>",
        "/attachments/0\" download>TestPdf.pdf</a>",
    ] {
        assert!(
            summary.contains(expected),
            "{expected} not in the summary: {summary}"
        );
    }
    // The attachment, downloaded: as a file, never sniffed, never kept.
    let (status, headers, pdf) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{phyto}/attachments/0"),
            Some(&ru),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(pdf.starts_with("%PDF"), "{}", &pdf[..pdf.len().min(40)]);
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("attachment; filename=\"TestPdf.pdf\"; filename*=UTF-8''TestPdf%2Epdf")
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    // No other attachment; none without a session.
    let (status, _, missing) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{phyto}/attachments/7"),
            Some(&ru),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        missing.contains("В документе нет такого вложения."),
        "{missing}"
    );
    let (status, _, _) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{phyto}/attachments/0"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 303);

    // Chosen on the login page, whatever the browser prefers.
    let (form, zh) = login_in(&net, "ru", "?lang=zh").await;
    assert!(form.contains("<html lang=\"zh\">"), "{form}");
    let (_, _, page) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{co}"),
            Some(&zh),
            None,
        )
        .await;
    for expected in [
        "✔ 真实且一致：已签名、现行有效、未被篡改，且内容与发送方和接收方相符。",
        "<th>出口国</th><td>哈萨克斯坦 <small>(KZ)</small>",
        "<th>运输方式</th><td>铁路运输 <small>(2)</small>",
        "<th>原产地</th><td>哈萨克斯坦 <small>(KZ)</small>",
        "通过</span></td><th>签名</th>",
        // The summary's goods lines, with units.
        "<h2>摘要</h2>",
        "<td>110100 · <small lang=\"en\" title=\"第 11 章：Products of the milling industry; malt, starches, inulin, wheat gluten\">1101 Wheat or meslin flour</small></td>",
        "<td>50,150 千克</td>",
        "<td>1,000 XBG (袋)</td>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    // Unknown or absent: English.
    let (form, en) = login_in(&net, "tlh, *;q=0.1", "").await;
    assert!(form.contains("<html lang=\"en\">"), "{form}");
    let (_, _, inbox) = net
        .console_call("CN", "GET", "/console", Some(&en), None)
        .await;
    assert!(inbox.contains("Documents in the inbox: 2."), "{inbox}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_officer_logs_in_finds_a_document_and_sees_it_verified() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.wait_inbox("CN", &id).await;

    // Without a session, the console sends the browser to the login form.
    let (status, headers, _) = net.console_call("CN", "GET", "/console", None, None).await;
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/console/login"));
    // A login form posted without the token this browser was given is refused.
    let (status, _, _) = net
        .console_call(
            "CN",
            "POST",
            "/console/login",
            None,
            Some("user=officer&password=x&csrf=forged"),
        )
        .await;
    assert_eq!(status, 403);

    let (status, session) = login(&net, PASSWORD).await;
    assert_eq!(status, 303);
    let session = session.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(session.contains(attribute), "{session}");
    }
    let cookie = session.split(';').next().unwrap().to_owned();

    let (status, _, page) = net
        .console_call("CN", "GET", "/console", Some(&cookie), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("KZ-CO-2026-000123") && page.contains("✔ verified"),
        "{page}"
    );
    // The listing says how many there are; one page holds them all, so no link to older ones.
    assert!(page.contains("Documents in the inbox: 1."), "{page}");
    assert!(!page.contains("Older documents"), "{page}");
    let (_, _, page) = net
        .console_call("CN", "GET", "/console?type=e-phyto", Some(&cookie), None)
        .await;
    assert!(page.contains("No document matches"));
    let (_, _, page) = net
        .console_call("CN", "GET", "/console?q=000123", Some(&cookie), None)
        .await;
    assert!(page.contains("KZ-CO-2026-000123"));
    // Search by party name, in the script the document uses.
    let (_, _, page) = net
        .console_call("CN", "GET", "/console?q=dala+un", Some(&cookie), None)
        .await;
    assert!(page.contains("KZ-CO-2026-000123"), "{page}");

    let (status, _, page) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{id}"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(page.contains(CONSISTENT), "{page}");
    for check in [
        "Signature",
        "Signing key",
        "Issuer allowed",
        "Hub receipt",
        "Trust list",
        "Issuer",
        "Header",
        "Dates",
        "Duplicate",
        "Current",
    ] {
        assert!(
            page.contains(&format!("PASS</span></td><th>{check}</th>")),
            "{check} not passed"
        );
    }
    // The key fields, in every script the document uses.
    assert!(page.contains("新疆丝路粮油贸易有限公司") && page.contains("110100"));
    let (_, _, print) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{id}/print"),
            Some(&cookie),
            None,
        )
        .await;
    assert!(
        print.contains("<svg"),
        "the printable view carries a QR code"
    );
    assert!(print.contains(&format!("/console/documents/{id}")));
    assert!(print.contains(CONSISTENT), "{print}");

    // A document that failed verification is flagged, never hidden. (The spoke stores such a
    // delivery as rejected; here one is written into its store directly while it is stopped.)
    let forged = plant_a_tampered_document(&mut net, &id).await;
    let (status, session) = login(&net, PASSWORD).await;
    assert_eq!(status, 303);
    let cookie = session.unwrap().split(';').next().unwrap().to_owned();
    let (_, _, list) = net
        .console_call("CN", "GET", "/console?status=rejected", Some(&cookie), None)
        .await;
    assert!(
        list.contains("NOT GENUINE: BAD_SIGNATURE") && !list.contains("KZ-CO-2026-000123"),
        "{list}"
    );
    let (_, _, page) = net
        .console_call(
            "CN",
            "GET",
            &format!("/console/documents/{forged}"),
            Some(&cookie),
            None,
        )
        .await;
    assert!(
        page.contains("A CHECK FAILED") && page.contains("BAD_SIGNATURE"),
        "{page}"
    );
    assert!(
        !page.contains("KZ-CO-FORGED</td>"),
        "the content of a document that is not genuine is not interpreted"
    );

    // Five wrong passwords lock the account, even against the right one.
    for _ in 0..5 {
        assert_eq!(login(&net, "wrong-password").await.0, 401);
    }
    let (status, _) = login(&net, PASSWORD).await;
    assert_eq!(status, 401, "the account is locked");
}

/// An HTTP/1.1 exchange with `id`'s console written by hand, from loopback address `from`
/// (127.0.0.0/8 are all this machine's), with exactly the headers given (`Host` included):
/// status, headers (names lower-case) and body.
async fn raw(
    net: &Net,
    id: &str,
    from: Ipv4Addr,
    request: &str,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let stream = socket.connect(net.console_addr(id).await).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The console may answer an oversized request and close before reading all of it: the
    // answer is read beside the writing, and a failed write or a reset after the answer
    // loses nothing already read.
    let request = request.to_owned();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(request.as_bytes()).await;
        std::future::pending::<()>().await;
    });
    let mut answer = Vec::new();
    let _ = reader.read_to_end(&mut answer).await;
    writing.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// A GET from `from` with `Host: host` and the session `cookie`, if any.
async fn get_as(
    net: &Net,
    from: Ipv4Addr,
    host: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n");
    raw(net, "CN", from, &request).await
}

/// Log in to CN from `from` as `user` with `password`, asking to return to `next`: status,
/// `Location`, the session cookie (name=value) and the page.
async fn login_as(
    net: &Net,
    from: Ipv4Addr,
    user: &str,
    password: &str,
    next: &str,
) -> (u16, Option<String>, Option<String>, String) {
    let (_, headers, form) = get_as(net, from, "console", "/console/login", None).await;
    let login_cookie = header(&headers, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let body = serde_urlencoded::to_string([
        ("user", user),
        ("password", password),
        ("csrf", &csrf),
        ("next", next),
    ])
    .unwrap();
    let request = format!(
        "POST /console/login HTTP/1.1\r\nHost: console\r\nCookie: {login_cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, headers, page) = raw(net, "CN", from, &request).await;
    let location = header(&headers, "location").map(str::to_owned);
    let session = header(&headers, "set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    (status, location, session, page)
}

/// The headers every console answer carries.
fn assert_hardened(headers: &[(String, String)], what: &str) {
    let csp = header(headers, "content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("default-src 'none'")
            && !csp.contains("unsafe-inline"),
        "{what}: {csp:?}"
    );
    assert_eq!(header(headers, "x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        header(headers, "referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_hardened_and_prints_only_its_configured_address() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.wait_inbox("CN", &id).await;
    let here = Ipv4Addr::LOCALHOST;
    let document = format!("/console/documents/{id}");

    // Every answer is hardened: the login form, a redirect, the stylesheet, a refusal.
    let (status, headers, form) = get_as(&net, here, "console", "/console/login", None).await;
    assert_eq!(status, 200);
    assert_hardened(&headers, "login form");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert!(
        !form.contains("<style") && form.contains("href=\"/console/style.css\""),
        "{form}"
    );
    let (status, headers, css) = get_as(&net, here, "console", "/console/style.css", None).await;
    assert_eq!(status, 200);
    assert_hardened(&headers, "stylesheet");
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.contains("@media print"));

    // Asked for a document without a session: the login form, which brings the officer back.
    let (status, headers, _) = get_as(&net, here, "console", &document, None).await;
    assert_eq!(status, 303);
    assert_hardened(&headers, "redirect");
    let to = format!("/console/login?next=%2Fconsole%2Fdocuments%2F{id}");
    assert_eq!(header(&headers, "location"), Some(to.as_str()));
    let (_, _, form) = get_as(&net, here, "console", &to, None).await;
    assert!(
        form.contains(&format!("name=\"next\" value=\"{document}\"")),
        "{form}"
    );
    let (status, location, session, _) = login_as(&net, here, "officer", PASSWORD, &document).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some(document.as_str()));
    let cookie = session.unwrap();
    // Anywhere else is refused: the officer lands on the inbox.
    for elsewhere in [
        "https://evil.example/console",
        "//evil.example/console",
        "/console//evil.example",
        "/\\evil.example",
    ] {
        let (status, location, _, _) = login_as(&net, here, "officer", PASSWORD, elsewhere).await;
        assert_eq!(status, 303);
        assert_eq!(location.as_deref(), Some("/console"), "{elsewhere}");
    }
    let (_, _, form) = get_as(
        &net,
        here,
        "console",
        "/console/login?next=https%3A%2F%2Fevil.example",
        None,
    )
    .await;
    assert!(form.contains("name=\"next\" value=\"\""), "{form}");

    // A document's page is never stored by the browser.
    let (status, headers, page) = get_as(&net, here, "console", &document, Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(page.contains("KZ-CO-2026-000123"));
    assert_hardened(&headers, "document page");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));

    // The printout: the verdict, who printed it when, and a QR code leading to the configured
    // public address, whatever Host the request names.
    let (status, headers, print) = get_as(
        &net,
        here,
        "attacker.example",
        &format!("{document}/print"),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert!(!print.contains("attacker.example"), "{print}");
    assert!(print.contains("<svg"), "{print}");
    assert!(
        print.contains(&format!(
            "<small>https://console-cn.caravan.test/console/documents/{id}</small>"
        )),
        "{print}"
    );
    assert!(print.contains(CONSISTENT), "{print}");
    assert!(
        print.contains("UTC by officer officer at the Caravan spoke of <b>CN</b>."),
        "{print}"
    );

    // Inbox: a count, and filters whatever the case typed.
    for query in ["country=kz", "country=Kz&type=E-CO", "type=e-co"] {
        let (_, _, list) = get_as(
            &net,
            here,
            "console",
            &format!("/console?{query}"),
            Some(&cookie),
        )
        .await;
        assert!(
            list.contains("KZ-CO-2026-000123")
                && list.contains("Showing 1–1 of 1 matching (100 a page)."),
            "{query}: {list}"
        );
    }
    let (_, _, list) = get_as(&net, here, "console", "/console?country=uz", Some(&cookie)).await;
    assert!(list.contains("No document matches."), "{list}");
    // Search by goods description and HS code (the store's inbox search).
    for q in ["wheat+FLOUR", "1101", "110100"] {
        let (_, _, list) = get_as(
            &net,
            here,
            "console",
            &format!("/console?q={q}"),
            Some(&cookie),
        )
        .await;
        assert!(list.contains("KZ-CO-2026-000123"), "{q}: {list}");
    }
    let (_, _, list) = get_as(&net, here, "console", "/console?q=0101", Some(&cookie)).await;
    assert!(list.contains("No document matches."), "{list}");

    // A user name over 64 bytes is refused before any lookup, and logged cut, with the
    // client's address; a body over the console's limit is refused whole.
    let long = "x".repeat(1000);
    let (status, _, _, page) = login_as(&net, here, &long, "whatever", "").await;
    assert_eq!(status, 400);
    assert!(page.contains("A user name is at most 64 bytes."), "{page}");
    let huge = "x".repeat(1 << 20);
    let (status, _, _, _) = login_as(&net, here, &huge, "whatever", "").await;
    assert_eq!(status, 413);

    // Five failures from one address lock the account for that address, saying until when;
    // the officer at another address still logs in.
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    for _ in 0..4 {
        let (status, _, _, page) = login_as(&net, attacker, "officer", "guess", "").await;
        assert_eq!(status, 401);
        assert!(page.contains("Wrong user name or password."), "{page}");
    }
    let (status, _, _, page) = login_as(&net, attacker, "officer", "guess", "").await;
    assert_eq!(status, 401);
    assert!(
        page.contains(
            "This account is locked for logins from your address after 5 failed attempts, until "
        ) && page.contains(" UTC."),
        "{page}"
    );
    let (status, _, _, _) = login_as(&net, attacker, "officer", PASSWORD, "").await;
    assert_eq!(
        status, 401,
        "locked for the address that failed, even with the password"
    );
    let (status, location, _, _) =
        login_as(&net, Ipv4Addr::new(127, 0, 0, 3), "officer", PASSWORD, "").await;
    assert_eq!(status, 303, "another address is not locked out");
    assert_eq!(location.as_deref(), Some("/console"));
    // Guessing across accounts from one address is throttled.
    let sprayer = Ipv4Addr::new(127, 0, 0, 4);
    let mut last = String::new();
    for i in 0..20 {
        last = login_as(&net, sprayer, &format!("user{i}"), "guess", "")
            .await
            .3;
    }
    assert!(
        last.contains("Too many failed logins from your address: logins from it are paused until "),
        "{last}"
    );
    let (status, _, _, _) = login_as(&net, sprayer, "officer", PASSWORD, "").await;
    assert_eq!(status, 401, "throttled, whatever the account");
    let log = std::fs::read_dir(net.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("spoke-CN-"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        log.contains("client=127.0.0.2"),
        "the login log names the client"
    );
    assert!(log.contains("user name too long") && !log.contains(&"x".repeat(65)));
    assert!(
        !log.contains(PASSWORD) && !log.contains("guess"),
        "never a password"
    );

    // Without a public address, the printout has no QR code and says why.
    net.kill_spoke("CN");
    net.console_without_public_url = true;
    net.start_spoke("CN").await;
    let (status, location, session, _) = login_as(
        &net,
        Ipv4Addr::new(127, 0, 0, 5),
        "officer",
        PASSWORD,
        &format!("{document}/print"),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(location, Some(format!("{document}/print")));
    let (status, _, print) = get_as(
        &net,
        here,
        "attacker.example",
        &format!("{document}/print"),
        session.as_deref(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !print.contains("<svg") && !print.contains("attacker.example"),
        "{print}"
    );
    assert!(
        print.contains("No QR code: this console has no public address configured"),
        "{print}"
    );
}

/// Stop CN, write a delivery that failed verification into its store (as the spoke stores a
/// tampered document), start CN again; returns the forged message id. `sent` (KZ to CN) is
/// awaited as ACKNOWLEDGED first: CN acknowledges only what it flushed, so killing it then
/// loses nothing.
async fn plant_a_tampered_document(net: &mut Net, sent: &str) -> MessageId {
    net.wait_state("KZ", sent, "ACKNOWLEDGED").await;
    net.kill_spoke("CN");
    let store = SpokeStore::open(
        &net.path().join("spoke-CN-data").join("store"),
        Default::default(),
        4 << 20,
    )
    .unwrap();
    let mut forged = store.inbox_since(None, 1).unwrap().remove(0).1;
    forged.message_id = MessageId::generate();
    forged.document_id = Some("KZ-CO-FORGED".into());
    // A delivery that fails verification is stored without a summary (its content is not
    // read): the copy must not keep the genuine one's.
    forged.summary = None;
    forged.checks = Vec::new();
    forged.verification = Verification::Rejected {
        code: RefusalCode::BadSignature,
        reason: "header signature does not verify with key x".into(),
    };
    // The record says what was received (the spoke's check at start compares).
    let payload = b"<forged/>";
    forged.payload_length = payload.len() as u64;
    store.inbox_insert(&forged, payload).unwrap();
    store.flush().unwrap();
    drop(store);
    net.start_spoke("CN").await;
    forged.message_id
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_what_the_content_checks_found() {
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let eco = net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml");
    let eco = eco.to_str().unwrap();
    let send = |args: Vec<String>| {
        let net = &net;
        async move {
            let mut all = vec!["send", "--wait", "--to", "CN", "--type", "e-co"];
            all.extend(args.iter().map(String::as_str));
            let sent = net.spoke_json("KZ", &all).await;
            let id = sent["message_id"].as_str().unwrap().to_owned();
            net.wait_inbox("CN", &id).await;
            id
        }
    };
    // A consistent certificate, the same number again, and a replacement of the first.
    let first = send(vec![eco.into()]).await;
    let again = send(vec![eco.into()]).await;
    let replacement =
        net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin-replacement.xml");
    let replacement = send(vec![
        "--supersedes".into(),
        first.clone(),
        replacement.to_str().unwrap().into(),
    ])
    .await;
    // A KZ-signed e-Phyto naming Argentina and Ecuador, from a sender that skips the checks.
    let phyto = net
        .submit_unchecked(
            "KZ",
            "CN",
            DocumentType::Phytosanitary,
            "123ABC",
            "application/xml",
            &sample("ephyto/mattilsynet-SPSCertificateContent.xml"),
        )
        .await;
    let (status, session) = login(&net, PASSWORD).await;
    assert_eq!(status, 303);
    let en = session.unwrap().split(';').next().unwrap().to_owned();
    let get = |path: String, cookie: String| {
        let net = &net;
        async move {
            let (status, _, body) = net
                .console_call("CN", "GET", &path, Some(&cookie), None)
                .await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };

    // The replacement: every check passed, each one a line of the panel.
    let page = get(format!("/console/documents/{replacement}"), en.clone()).await;
    assert!(page.contains(CONSISTENT), "{page}");
    for check in ["Issuer", "Header", "Dates", "Duplicate", "Current"] {
        assert!(
            page.contains(&format!("PASS</span></td><th>{check}</th>")),
            "{check} not passed: {page}"
        );
    }
    assert!(
        page.contains("The countries fit the sender KZ and the recipient"),
        "{page}"
    );
    assert!(
        page.contains(&format!("This document replaces message {first}.")),
        "{page}"
    );

    // The second copy: the duplicate is the headline, in words, and links the first.
    let page = get(format!("/console/documents/{again}"), en.clone()).await;
    let said = format!(
        "Number KZ-CO-2026-000123 was received from this sender before, as message {first}."
    );
    assert!(
        page.contains(&format!("✘ Genuine signature, but inconsistent: {said}")),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "FAIL</span></td><th>Duplicate</th><td><a href=\"/console/documents/{first}\">{said}</a>"
        )),
        "{page}"
    );

    // The first, superseded: a warning, and its replacement one click away.
    let page = get(format!("/console/documents/{first}"), en.clone()).await;
    assert!(
        page.contains(&format!(
            "⚠ Genuine, with warnings: REPLACED by message {replacement}."
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "WARN</span></td><th>Current</th><td><a href=\"/console/documents/{replacement}\">REPLACED by "
        )),
        "{page}"
    );
    let print = get(format!("/console/documents/{first}/print"), en.clone()).await;
    assert!(
        print.contains(&format!(
            "⚠ Genuine, with warnings: REPLACED by message {replacement}."
        )),
        "{print}"
    );

    // The list flags each, the replaced one linking its replacement.
    let list = get("/console".into(), en.clone()).await;
    assert!(
        list.contains(&format!(
            "<a class=\"flag warn\" href=\"/console/documents/{replacement}\" title=\"Replaced by message {replacement}: open the replacement\">REPLACED</a>"
        )),
        "{list}"
    );
    assert!(
        list.contains(&format!(
            "<span class=\"flag fail\" title=\"{said}\">DUPLICATE</span>"
        )),
        "{list}"
    );
    assert!(
        list.contains(
            "<span class=\"flag fail\" title=\"The export country is AR, but the document was signed by KZ.\">✘ FAIL</span>"
        ),
        "{list}"
    );
    // Issued in 2016: old for an e-Phyto.
    assert!(list.contains(">⚠ WARN</span>"), "{list}");
    // Filtered by what the checks found, in any case.
    for (query, shown, matching) in [
        ("Inconsistent", "123ABC", 2),
        ("warnings", "KZ-CO-2026-000123", 1),
        ("CONSISTENT", "KZ-CO-2026-000124", 1),
    ] {
        let list = get(format!("/console?status={query}"), en.clone()).await;
        let option = format!("value=\"{}\" selected", query.to_ascii_lowercase());
        assert!(list.contains(&option), "{query}: {list}");
        assert!(
            list.contains(shown)
                && list.contains(&format!("Showing 1–{matching} of {matching} matching")),
            "{query}: {list}"
        );
    }

    // A document whose content was not understood gets no content checks, nor a verdict on
    // them; when its replacement came first, it is still shown REPLACED and linked.
    let unread = MessageId::generate();
    let later = net
        .submit_unchecked_with("KZ", "CN", DocumentType::CertificateOfOrigin, b"new", |h| {
            h.document_id = "KZ-NOTE-2".into();
            h.content_type = "text/plain".into();
            h.supersedes = Some(unread);
        })
        .await;
    net.submit_unchecked_with("KZ", "CN", DocumentType::CertificateOfOrigin, b"old", |h| {
        h.message_id = unread;
        h.document_id = "KZ-NOTE-1".into();
        h.content_type = "text/plain".into();
    })
    .await;
    let it = net.wait_inbox("CN", &unread.to_string()).await;
    assert_eq!(it["verified"], true, "{it:#}");
    assert_eq!(it["replaced_by"], later.as_str(), "{it:#}");
    assert!(it["checks"].is_null() && it["verdict"].is_null(), "{it:#}");
    let page = get(format!("/console/documents/{unread}"), en.clone()).await;
    assert!(
        page.contains("<p class=\"warn\">⚠ Genuine, with warnings: REPLACED by KZ-NOTE-2 (message"),
        "{page}"
    );
    let list = get("/console?q=KZ-NOTE".into(), en.clone()).await;
    assert!(
        list.contains(&format!("href=\"/console/documents/{later}\" title=\"Replaced by message {later}: open the replacement\">REPLACED</a>")),
        "{list}"
    );

    // In Russian: the failing check is the headline, in words, and FAIL in the list.
    let (_, ru) = login_in(&net, "ru", "").await;
    let page = get(format!("/console/documents/{phyto}"), ru.clone()).await;
    assert!(
        page.contains(
            "<p class=\"fail\">✘ Подпись подлинная, но содержание противоречиво: Страна экспорта AR, а документ подписан KZ.</p>"
        ),
        "{page}"
    );
    for expected in [
        "НЕ ПРОЙДЕНА</span></td><th>Выдавший орган</th><td>Страна импорта EC, а документ отправлен в CN.",
        "ВНИМАНИЕ</span></td><th>Даты</th>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    let print = get(format!("/console/documents/{phyto}/print"), ru.clone()).await;
    assert!(
        print.contains("✘ Подпись подлинная, но содержание противоречиво: Страна экспорта AR"),
        "{print}"
    );
    let list = get("/console".into(), ru).await;
    for expected in [
        "title=\"Страна экспорта AR, а документ подписан KZ.\">✘ НЕ ПРОЙДЕНА</span>",
        ">ПОВТОР</span>",
        ">ЗАМЕНЁН</a>",
    ] {
        assert!(list.contains(expected), "{expected} not in {list}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_real_headless_browser() {
    let Some(chromium) = browser::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!(
            "SKIPPED in_a_real_headless_browser: no Chromium here (apt-get install chromium)"
        );
        return;
    };
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    net.console_time_zone = Some("Asia/Almaty".into());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    net.start_spoke("CN").await;
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let id = sent["message_id"].as_str().unwrap();
    net.wait_inbox("CN", id).await;
    let phyto = net
        .send(
            "KZ",
            "CN",
            "e-phyto",
            &net.sample_issued_now("ephyto/carec-KZ-CN-phytosanitary.xml"),
        )
        .await;
    let phyto = phyto["message_id"].as_str().unwrap();
    net.wait_inbox("CN", phyto).await;
    net.wait_state("KZ", phyto, "ACKNOWLEDGED").await;
    let forged = plant_a_tampered_document(&mut net, id).await;
    let base = format!("http://{}", net.console_addr("CN").await);

    let mut b = browser::Browser::launch(&chromium).await;
    // Log in.
    b.goto(&format!("{base}/console/login")).await;
    let fill = format!(
        "document.querySelector('input[name=user]').value = 'officer';\
         document.querySelector('input[name=password]').value = '{PASSWORD}';\
         document.forms[0].submit(); true"
    );
    b.eval(&fill).await;
    b.wait_for(
        "the inbox",
        "location.pathname === '/console' && document.readyState === 'complete'",
    )
    .await;
    // Find the certificate by its number, open it, see it verified.
    b.eval("document.querySelector('input[name=q]').value = '000123'; document.querySelector('form.filters').submit(); true").await;
    b.wait_for(
        "the search result",
        "location.search.includes('q=000123') && document.readyState === 'complete'",
    )
    .await;
    let list = b.text().await;
    assert!(
        list.contains("KZ-CO-2026-000123") && !list.contains("KZ-CO-FORGED"),
        "{list}"
    );
    b.eval("document.querySelector('a[href^=\"/console/documents/\"]').click(); true")
        .await;
    b.wait_for(
        "the document page",
        "location.pathname.startsWith('/console/documents/') && document.readyState === 'complete'",
    )
    .await;
    let page = b.text().await;
    assert!(page.contains("Genuine and consistent"), "{page}");
    assert!(page.contains("新疆丝路粮油贸易有限公司"));
    let verified = b.screenshot().await;
    // The tampered one is flagged, with the reason.
    b.goto(&format!("{base}/console/documents/{forged}")).await;
    let page = b.text().await;
    assert!(
        page.contains("A CHECK FAILED") && page.contains("BAD_SIGNATURE"),
        "{page}"
    );
    let tampered = b.screenshot().await;

    // In Russian, chosen on the login page: the e-Phyto's codes by their names.
    b.goto(&format!("{base}/console/login?lang=ru")).await;
    assert!(b.text().await.contains("Пароль"));
    b.eval(&fill).await;
    b.wait_for(
        "the inbox in Russian",
        "location.pathname === '/console' && document.readyState === 'complete' \
         && document.documentElement.lang === 'ru'",
    )
    .await;
    assert!(b.text().await.contains("Полученные документы"));
    b.goto(&format!("{base}/console/documents/{phyto}")).await;
    let page = b.text().await;
    for expected in [
        "Подлинный и непротиворечивый",
        "Фитосанитарный сертификат (851)",
        "70 (нет в справочнике)",
        "Казахстан (KZ)",
        "Китай (CN)",
        "Zhetysu Agro LLP",
        "Автомобильный транспорт (3)",
        "Морской транспорт (1)",
        "Сводка",
        "10 кг",
        "60 кг",
        "TestPdf.pdf",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    let russian = b.screenshot().await;

    // In Chinese: the e-CO's countries and transport mode.
    b.goto(&format!("{base}/console/login?lang=zh")).await;
    b.eval(&fill).await;
    b.wait_for(
        "the inbox in Chinese",
        "location.pathname === '/console' && document.readyState === 'complete' \
         && document.documentElement.lang === 'zh'",
    )
    .await;
    assert!(b.text().await.contains("已接收文件"));
    b.goto(&format!("{base}/console/documents/{id}")).await;
    let page = b.text().await;
    for expected in [
        "真实且一致",
        "摘要",
        "哈萨克斯坦 (KZ)",
        "铁路运输 (2)",
        "50,150 千克",
        "300 XBG (袋)",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    let chinese = b.screenshot().await;

    if let Some(dir) = std::env::var_os("CARAVAN_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        for (name, png) in [
            ("console-verified.png", verified),
            ("console-tampered.png", tampered),
            ("console-ru-ephyto.png", russian),
            ("console-zh-eco.png", chinese),
        ] {
            std::fs::write(dir.join(name), png).unwrap();
        }
    }
    // The stylesheet applies under the Content-Security-Policy (served as a file).
    let styled = b
        .eval("getComputedStyle(document.querySelector('header')).backgroundColor")
        .await;
    assert_eq!(styled.as_str(), Some("rgb(18, 60, 105)"), "{styled}");

    // Log out from a document's page, then Back: the browser kept nothing to show.
    b.goto(&format!("{base}/console/documents/{id}")).await;
    assert!(b.text().await.contains("KZ-CO-2026-000123"));
    b.eval("document.querySelector('header form').submit(); true")
        .await;
    b.wait_for(
        "the login form after logout",
        "location.pathname === '/console/login' && document.readyState === 'complete'",
    )
    .await;
    b.eval("history.back(); true").await;
    b.wait_for(
        "the page Back leads to",
        "location.pathname === '/console/login' && location.search.startsWith('?next=') && document.readyState === 'complete'",
    )
    .await;
    let back = b.text().await;
    assert!(
        !back.contains("KZ-CO-2026-000123") && !back.contains("Genuine") && back.contains("Log in"),
        "{back}"
    );
    // Logging in there leads back to the document asked for.
    b.eval(&fill).await;
    b.wait_for(
        "the document after login",
        "location.pathname.startsWith('/console/documents/') && document.readyState === 'complete'",
    )
    .await;
    assert!(b.text().await.contains("KZ-CO-2026-000123"));
}

/// KZ sends CN a certificate of origin; CN's own system (not a Caravan spoke) takes the
/// delivery and rejects it in its signed acknowledgement with a business code of its own.
/// Returns the message id.
async fn rejected_by_cn_with_a_business_code(net: &Net) -> String {
    let sent = net
        .send(
            "KZ",
            "CN",
            "e-co",
            &net.sample_issued_now("eco/carec-KZ-CN-certificate-of-origin.xml"),
        )
        .await;
    let id = sent["message_id"].as_str().unwrap().to_owned();
    net.reject_as_business(
        "CN",
        "KZ",
        &id,
        "cn.customs:QUOTA_EXCEEDED",
        "The import quota for HS 0808 is exhausted.",
    )
    .await;
    let status = net.wait_state("KZ", &id, "REJECTED").await;
    assert_eq!(status["acknowledgement"]["verified"], true, "{status:#}");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn the_senders_officer_sees_the_recipients_rejection_with_its_code() {
    let Some(chromium) = browser::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium: .ci/run installs it"
        );
        eprintln!("SKIPPED: no Chromium here (apt-get install chromium)");
        return;
    };
    let mut net = Net::new(&["KZ", "CN"]).await;
    net.console_password = Some(PASSWORD.into());
    net.console_time_zone = Some("Asia/Almaty".into());
    net.start_hub().await;
    net.start_spoke("KZ").await;
    let id = rejected_by_cn_with_a_business_code(&net).await;
    let base = format!("http://{}", net.console_addr("KZ").await);

    let mut b = browser::Browser::launch(&chromium).await;
    // The list of sent documents asks for a login first, and comes back to it after.
    b.eval(&format!("location.href = '{base}/console/sent'; true"))
        .await;
    b.wait_for(
        "the login form",
        "location.pathname === '/console/login' && document.readyState === 'complete'",
    )
    .await;
    let fill = format!(
        "document.querySelector('input[name=user]').value = 'officer';\
         document.querySelector('input[name=password]').value = '{PASSWORD}';\
         document.forms[0].submit(); true"
    );
    b.eval(&fill).await;
    b.wait_for(
        "the sent documents after login",
        "location.pathname === '/console/sent' && document.readyState === 'complete'",
    )
    .await;
    let list = b.text().await;
    for expected in [
        "Sent documents",
        "KZ-CO-2026-000123",
        "Certificate of origin",
        "CN — China (CN)",
        "REJECTED",
        "cn.customs:QUOTA_EXCEEDED",
        "(business code of the recipient's system)",
        "The import quota for HS 0808 is exhausted.",
    ] {
        assert!(list.contains(expected), "{expected} not in {list}");
    }
    // Filtered: among the failed ones, not among those on their way.
    b.goto(&format!("{base}/console/sent?state=waiting")).await;
    let waiting = b.text().await;
    assert!(
        waiting.contains("No document matches.") && !waiting.contains("KZ-CO-2026-000123"),
        "{waiting}"
    );
    b.goto(&format!("{base}/console/sent?state=failed")).await;
    assert!(b.text().await.contains("cn.customs:QUOTA_EXCEEDED"));
    // The document's page: the code exactly, its parts, the reason, the signature verified,
    // the hub's receipt and the history in the configured zone.
    b.eval("document.querySelector('a[href^=\"/console/sent/\"]').click(); true")
        .await;
    b.wait_for(
        "the sent document's page",
        "location.pathname.startsWith('/console/sent/') && document.readyState === 'complete'",
    )
    .await;
    let page = b.text().await;
    for expected in [
        "REJECTED: the recipient refused it; its reason is below.",
        "The recipient's answer",
        "cn.customs:QUOTA_EXCEEDED",
        "Namespace cn.customs, code QUOTA_EXCEEDED: shown as the recipient wrote it; Caravan does not interpret it.",
        "The import quota for HS 0808 is exhausted.",
        "✔ The recipient's signature over its acknowledgement verifies with its registered key",
        "The hub's signed receipt: accepted at ",
        ", sequence ",
        "+05:00",
        "Accepted by the hub",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    let path = b.eval("location.pathname").await;
    assert_eq!(path.as_str(), Some(format!("/console/sent/{id}").as_str()));
    // Namespace and code are set apart.
    let parts = b
        .eval("[...document.querySelectorAll('code.business span')].map(s => s.textContent).join('|')")
        .await;
    assert_eq!(
        parts.as_str(),
        Some("cn.customs|:|QUOTA_EXCEEDED"),
        "{parts}"
    );
    let english = b.screenshot().await;

    // In Russian.
    b.goto(&format!("{base}/console/login?lang=ru")).await;
    b.eval(&fill).await;
    b.wait_for(
        "the inbox in Russian",
        "location.pathname === '/console' && document.readyState === 'complete' \
         && document.documentElement.lang === 'ru'",
    )
    .await;
    b.eval("document.querySelector('header nav a[href=\"/console/sent\"]').click(); true")
        .await;
    b.wait_for(
        "the sent documents in Russian",
        "location.pathname === '/console/sent' && document.readyState === 'complete'",
    )
    .await;
    let list = b.text().await;
    for expected in [
        "Отправленные документы",
        "ОТКЛОНЁН",
        "Сертификат происхождения",
        "Китай (CN)",
        "cn.customs:QUOTA_EXCEEDED",
        "(бизнес-код системы получателя)",
        "The import quota for HS 0808 is exhausted.",
    ] {
        assert!(list.contains(expected), "{expected} not in {list}");
    }
    b.goto(&format!("{base}/console/sent/{id}")).await;
    let page = b.text().await;
    for expected in [
        "ОТКЛОНЁН: получатель отклонил документ; причина указана ниже.",
        "Ответ получателя",
        "Код причины",
        "Пространство имён cn.customs, код QUOTA_EXCEEDED",
        "The import quota for HS 0808 is exhausted.",
        "✔ Подпись получателя под подтверждением проверена",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
    let russian = b.screenshot().await;
    // A message id this spoke never sent, and one that is no message id: a page saying so.
    b.goto(&format!("{base}/console/sent/{}", MessageId::generate()))
        .await;
    assert!(
        b.text()
            .await
            .contains("Этот узел не отправлял документа с таким идентификатором сообщения.")
    );
    b.goto(&format!("{base}/console/sent/not-an-id%3Cb%3E"))
        .await;
    assert!(
        b.text()
            .await
            .contains("Этот узел не отправлял документа с таким идентификатором сообщения.")
    );
    // Without a session: the login, never the document.
    let (status, headers, body) = net
        .console_call("KZ", "GET", &format!("/console/sent/{id}"), None, None)
        .await;
    assert_eq!(status, 303, "{body}");
    assert!(
        header(&headers, "location").is_some_and(|l| l.starts_with("/console/login?next=")),
        "{headers:?}"
    );
    assert!(!body.contains("QUOTA_EXCEEDED"), "{body}");

    if let Some(dir) = std::env::var_os("CARAVAN_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::write(dir.join("console-sent-rejected.png"), english).unwrap();
        std::fs::write(dir.join("console-ru-sent-rejected.png"), russian).unwrap();
    }
}

//! The console's unit tests: rendering, escaping, filters, cookies, the verdict and the flags.

use crate::checks::{self, CheckName, Outcome};

use super::{documents::*, inbox::*, *};

#[test]
fn passwords_hash_and_verify() {
    let hash = hash_password("correct horse");
    let parsed = PasswordHash::new(&hash).unwrap();
    assert!(
        Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok()
    );
    assert!(
        Argon2::default()
            .verify_password(b"wrong", &parsed)
            .is_err()
    );
    assert!(
        PasswordHash::new(DUMMY_HASH).is_ok(),
        "the dummy hash parses, so unknown users cost the same"
    );
}

pub(super) const HOSTILE: &str = "\"><script>alert('x')</script>";
pub(super) const ESCAPED: &str = "&quot;&gt;&lt;script&gt;alert('x')&lt;/script&gt;";

#[test]
fn hostile_text_is_escaped_on_every_page() {
    // A query typed into the filters, echoed back into the form's attributes.
    let filters = Filters {
        q: HOSTILE.into(),
        country: HOSTILE.into(),
        from: HOSTILE.into(),
        ..Filters::default()
    };
    let inbox = page(
        Lang::default(),
        HOSTILE,
        Some((HOSTILE, "token")),
        inbox_body(
            Lang::default(),
            &Clock::default(),
            &filters,
            7,
            &InboxPage {
                older_from: Some(42),
                ..InboxPage::default()
            },
        ),
    )
    .0;
    // A document's fields and a check's detail (a rejection reason comes from the sender).
    let fields = field_rows(
        Lang::default(),
        None,
        &[document::Field {
            label: "Exporter".into(),
            value: HOSTILE.into(),
            language: Some(HOSTILE.into()),
        }],
    );
    let checks = check_rows(
        Lang::default(),
        &[CheckLine {
            name: "Signature",
            mark: Mark::Fail,
            link: None,
            content: false,
            detail: HOSTILE.into(),
        }],
    );
    let document = page(
        Lang::default(),
        "KZ-1",
        None,
        html! { (fields) table { (checks) } },
    )
    .0;
    for rendered in [&inbox, &document] {
        assert!(!rendered.contains("<script>"), "{rendered}");
        assert!(rendered.contains(ESCAPED), "{rendered}");
    }
    assert!(
        inbox.contains(&format!(
            "name=\"q\" placeholder=\"Number, party or country\" value=\"{ESCAPED}\""
        )),
        "{inbox}"
    );
    assert!(inbox.contains(&format!("<title>{ESCAPED} · Caravan</title>")));
    assert!(inbox.contains(&format!("<span>{ESCAPED}</span>")));
    // The link to older documents keeps the filters, URL-encoded, and the cursor.
    assert!(
        inbox.contains("href=\"/console?q=%22%3E%3Cscript%3E"),
        "{inbox}"
    );
    assert!(inbox.contains("before=42"), "{inbox}");
    assert!(inbox.contains("Documents in the inbox: 7."));
    assert!(inbox.contains("No document matches."));
    assert!(document.contains(&format!("<td>{ESCAPED} <small>[{ESCAPED}]</small></td>")));
    assert!(document.contains("<td><span class=\"fail\">✘ FAIL</span></td><th>Signature</th>"));
}

#[test]
fn field_codes_are_decoded_in_the_officers_language_and_unknown_ones_marked() {
    let field = |label: &str, value: &str| document::Field {
        label: label.into(),
        value: value.into(),
        language: None,
    };
    let fields = [
        field("Certificate type", "851"),
        field("Status", "70"),
        field("Export country", "KZ"),
        field("Transport mode", "2"),
        field("Import country", HOSTILE),
        field("Consignor", "ТОО «Дала Ун»"),
    ];
    let sps = Some(document::Format::SpsCertificate);
    let ru = field_rows(Lang::from_tag("ru").unwrap(), sps, &fields).into_string();
    for expected in [
        "<th>Вид сертификата</th><td>Фитосанитарный сертификат <small>(851)</small></td>",
        "<th>Статус</th><td>70 <small class=\"warn\">(нет в справочнике)</small></td>",
        "<th>Страна экспорта</th><td>Казахстан <small>(KZ)</small></td>",
        "<th>Вид транспорта</th><td>Железнодорожный транспорт <small>(2)</small></td>",
        "<th>Грузоотправитель</th><td>ТОО «Дала Ун»</td>",
    ] {
        assert!(ru.contains(expected), "{expected} not in {ru}");
    }
    // A value that is not a code stays escaped, and is marked as not in the list.
    assert!(
        ru.contains(&format!("<td>{ESCAPED} <small class=\"warn\">")),
        "{ru}"
    );
    let zh = field_rows(Lang::from_tag("zh").unwrap(), sps, &fields).into_string();
    assert!(
        zh.contains("<th>证书类型</th><td>植物检疫证书 <small>(851)</small></td>"),
        "{zh}"
    );
    // An e-CO's certificate type and status are words, not codes: shown as written.
    let co = field_rows(
        Lang::default(),
        Some(document::Format::UblCertificateOfOrigin),
        &[
            field("Certificate type", "Non-preferential"),
            field("Status", "ORIGINAL"),
        ],
    )
    .into_string();
    assert!(
        co.contains("<td>Non-preferential</td>") && co.contains("<td>ORIGINAL</td>"),
        "{co}"
    );
    // An HS code field is read with its heading; one whose heading HS 2022 lacks is marked.
    let hs = field_rows(
        Lang::from_tag("zh").unwrap(),
        Some(document::Format::UblCertificateOfOrigin),
        &[field("HS code", "0808.10"), field("HS code", "9999.99")],
    )
    .into_string();
    for expected in [
        "<td>0808.10 · <small lang=\"en\" title=\"第 08 章：Fruit and nuts, edible; peel of citrus fruit or melons\">0808 Apples, pears and quinces; fresh</small></td>",
        "<td>9999.99 <small class=\"warn\">(品目不在 HS 2022 中)</small></td>",
    ] {
        assert!(hs.contains(expected), "{expected} not in {hs}");
    }
    // A label the catalogue does not know is shown as the spoke read it.
    assert_eq!(field_key("Container / seal"), "field.container_seal");
    let odd = field_rows(Lang::default(), None, &[field("Odd label", "x")]).into_string();
    assert!(odd.contains("<th>Odd label</th>"), "{odd}");
}

#[test]
fn the_summary_groups_goods_with_units_and_decodes_codes() {
    let eco = include_bytes!("../../../../samples/eco/carec-KZ-CN-certificate-of-origin.xml");
    let content = document::content(eco).unwrap();
    let id = MessageId::generate();
    let ru = summary_block(
        Lang::from_tag("ru").unwrap(),
        &Clock::default(),
        id,
        &content,
    )
    .into_string();
    // The e-CO's kind and status are words of its own, shown as written.
    assert!(
        ru.contains("<th>Вид документа</th><td>Non-preferential</td>")
            && ru.contains("<th>Статус</th><td>ORIGINAL</td>"),
        "{ru}"
    );
    for expected in [
        "<h2>Сводка</h2>",
        "<th>Номер</th><td>KZ-CO-2026-000123</td>",
        "Казахстан <small>(KZ)</small>",
        "Китай <small>(CN)</small>",
        "Железнодорожный транспорт <small>(2)</small>",
        "<th>Код ГС (HS)</th>",
        // HS codes with their HS 2022 heading (in English), the chapter in its title.
        "<td>110100 · <small lang=\"en\" title=\"Группа 11: Products of the milling industry; malt, starches, inulin, wheat gluten\">1101 Wheat or meslin flour</small></td>",
        "<td>110311 · <small lang=\"en\" title=\"Группа 11: Products of the milling industry; malt, starches, inulin, wheat gluten\">1103 Cereal groats; meal and pellets</small></td>",
        "<td>50\u{a0}000 кг</td>",
        "<td>50\u{a0}150 кг</td>",
        "<td>1\u{a0}000 XBG (мешок)</td>",
        "<td>300 XBG (мешок)</td>",
    ] {
        assert!(ru.contains(expected), "{expected} not in {ru}");
    }
    let zh = summary_block(
        Lang::from_tag("zh").unwrap(),
        &Clock::default(),
        id,
        &content,
    )
    .into_string();
    for expected in [
        "<h2>摘要</h2>",
        "哈萨克斯坦 <small>(KZ)</small>",
        "<td>15,045 千克</td>",
        "铁路运输 <small>(2)</small>",
    ] {
        assert!(zh.contains(expected), "{expected} not in {zh}");
    }
    // The e-Phyto: kind decoded, status 70 marked as not in the list, its attachment linked.
    let phyto = include_bytes!("../../../../samples/ephyto/mattilsynet-SPSCertificateContent.xml");
    let content = document::content(phyto).unwrap();
    let en = summary_block(Lang::default(), &Clock::default(), id, &content).into_string();
    for expected in [
        "<th>Kind of document</th><td>Phytosanitary certificate <small>(851)</small></td>",
        "<th>Status</th><td>70 <small class=\"warn\">(not in the code list)</small></td>",
        "<th>Destination country</th><td>Ecuador <small>(EC)</small></td>",
        "<td>10 kg</td>",
        "<td>60 kg</td>",
        &format!("href=\"/console/documents/{id}/attachments/0\" download>TestPdf.pdf</a>"),
    ] {
        assert!(en.contains(expected), "{expected} not in {en}");
    }
}

#[test]
fn attachments_download_with_a_safe_type_and_name() {
    assert_eq!(safe_media_type(Some("application/pdf")), "application/pdf");
    assert_eq!(safe_media_type(Some(" image/png ")), "image/png");
    for unsafe_type in [
        None,
        Some(""),
        Some("text/html; charset=utf-8"),
        Some("text/html\r\nSet-Cookie: x=1"),
        Some("pdf"),
        Some("a/b/c"),
    ] {
        assert_eq!(
            safe_media_type(unsafe_type),
            "application/octet-stream",
            "{unsafe_type:?}"
        );
    }
    assert_eq!(
        disposition(Some("TestPdf.pdf"), 0),
        "attachment; filename=\"TestPdf.pdf\"; filename*=UTF-8''TestPdf%2Epdf"
    );
    // Paths and quotes cannot escape the header value; other scripts keep their name.
    let d = disposition(Some("../../etc/\"x\"\r\n.pdf"), 1);
    assert!(
        d.starts_with("attachment; filename=\"_x___.pdf\"; filename*=UTF-8''"),
        "{d}"
    );
    assert!(!d.contains('\r') && !d.contains('\n'), "{d}");
    let d = disposition(Some("сертификат.pdf"), 2);
    assert!(d.contains("filename*=UTF-8''%D1%81"), "{d}");
    assert_eq!(
        disposition(None, 2),
        "attachment; filename=\"attachment-3\"; filename*=UTF-8''attachment%2D3"
    );
}

#[test]
fn filters_keep_what_the_officer_chose() {
    let filters = Filters {
        document_type: "e-phyto".into(),
        status: "rejected".into(),
        ..Filters::default()
    };
    let form = inbox_body(
        Lang::default(),
        &Clock::default(),
        &filters,
        0,
        &InboxPage::default(),
    )
    .into_string();
    assert!(form.contains("<option value=\"e-phyto\" selected>Phytosanitary</option>"));
    assert!(form.contains("<option value=\"rejected\" selected>Not genuine</option>"));
    assert!(form.contains("<option value=\"\">Any type</option>"));
    assert!(!form.contains("Older documents"));
}

#[test]
fn session_cookies_keep_their_attributes() {
    let set = console_cookie(SESSION_COOKIE, "abc".into(), SESSION_LIFE).to_string();
    assert!(set.starts_with("caravan_session=abc;"), "{set}");
    for attribute in [
        "; HttpOnly",
        "; SameSite=Strict",
        "; Secure",
        "; Path=/console",
        "; Max-Age=28800",
    ] {
        assert!(set.contains(attribute), "{attribute} missing: {set}");
    }
    // Logging out empties the cookie and tells the browser to drop it at once.
    let dropped = console_cookie(SESSION_COOKIE, String::new(), Duration::ZERO).to_string();
    assert!(dropped.starts_with("caravan_session=;"), "{dropped}");
    assert!(dropped.contains("; Max-Age=0"), "{dropped}");
    let response = with_cookie(
        console_cookie(LOGIN_COOKIE, "t".into(), Duration::from_secs(900)),
        Redirect::to("/console"),
    );
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/console");
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("caravan_login=t;")
    );
}

#[test]
fn the_session_cookie_is_found_among_others() {
    let mut headers = HeaderMap::new();
    headers.append(
        header::COOKIE,
        "theme=dark; caravan_login=x".parse().unwrap(),
    );
    headers.append(
        header::COOKIE,
        " other=1 ;caravan_session=0123abcd; caravan_session_old=no"
            .parse()
            .unwrap(),
    );
    assert_eq!(
        cookie_value(&headers, SESSION_COOKIE).as_deref(),
        Some("0123abcd")
    );
    assert_eq!(cookie_value(&headers, LOGIN_COOKIE).as_deref(), Some("x"));
    assert_eq!(cookie_value(&headers, "missing"), None);
    // Malformed pairs are skipped, not fatal.
    let mut headers = HeaderMap::new();
    headers.append(
        header::COOKIE,
        "=nameless; ;garbage; caravan_session=s".parse().unwrap(),
    );
    assert_eq!(cookie_value(&headers, SESSION_COOKIE).as_deref(), Some("s"));
    assert_eq!(cookie_value(&HeaderMap::new(), SESSION_COOKIE), None);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    for response in [
        page(Lang::default(), "Inbox", None, html! { "x" }).into_response(),
        Redirect::to("/console/login").into_response(),
        (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response(),
    ] {
        let hardened = harden(response).await;
        let headers = hardened.headers();
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
    // The stylesheet keeps its own caching rule (revalidated, not stored blindly).
    let css = harden(stylesheet().await).await;
    assert_eq!(css.headers()[header::CACHE_CONTROL], "no-cache");
    assert_eq!(css.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    // No page carries inline style or script: the policy would block them.
    let page = page(Lang::default(), "Inbox", Some(("ana", "t")), html! { "x" }).0;
    assert!(page.contains("<link rel=\"stylesheet\" href=\"/console/style.css\">"));
    assert!(!page.contains("<style") && !page.contains("<script") && !page.contains("style=\""));
}

#[test]
fn only_a_local_console_path_is_returned_to_after_login() {
    for good in [
        "/console",
        "/console/documents/0123abcd",
        "/console/documents/0123abcd/print",
        "/console?q=kz&type=e-phyto",
    ] {
        assert_eq!(local_next(good), Some(good));
    }
    for bad in [
        "https://evil.example/console",
        "//evil.example/console",
        "/console//evil.example",
        "/\\evil.example",
        "/console/\\evil.example",
        "/console/../metrics",
        "/console/./documents",
        "/consolex",
        "/other",
        "/console/login",
        "/console/logout",
        "javascript:alert(1)",
        "/console/documents/a b",
        "/console/\u{0}",
        "",
    ] {
        assert_eq!(local_next(bad), None, "{bad:?}");
    }
    assert_eq!(local_next(&format!("/console/{}", "a".repeat(3000))), None);
    // A request without a session goes to the login form, which carries it back.
    let to = |uri: &str| {
        let response = to_login(&uri.parse().unwrap());
        response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(to("/console"), "/console/login");
    assert_eq!(
        to("/console/documents/0123/print"),
        "/console/login?next=%2Fconsole%2Fdocuments%2F0123%2Fprint"
    );
    assert_eq!(
        to("/console?q=kz&before=4"),
        "/console/login?next=%2Fconsole%3Fq%3Dkz%26before%3D4"
    );
}

#[test]
fn plain_http_off_loopback_is_named_at_start() {
    let at = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(cookie_problem(at("127.0.0.1:8081"), None), None);
    assert_eq!(cookie_problem(at("[::1]:8081"), None), None);
    assert_eq!(
        cookie_problem(at("0.0.0.0:8081"), Some("https://console.kz.example")),
        None,
        "behind a TLS proxy"
    );
    for public_url in [None, Some("http://127.0.0.1:8081")] {
        let problem = cookie_problem(at("0.0.0.0:8081"), public_url).unwrap();
        assert!(
            problem.contains("console.listen 0.0.0.0:8081 is not a loopback address")
                && problem.contains("Secure")
                && problem.contains("console.public_url"),
            "{problem}"
        );
    }
}

#[test]
fn user_names_in_the_log_are_cut_and_refusals_say_until_when() {
    assert_eq!(shown_user("ana"), "ana");
    let long = "é".repeat(100);
    let shown = shown_user(&long);
    assert!(shown.len() <= MAX_USER_BYTES && shown.len() >= MAX_USER_BYTES - 1);
    assert!(long.starts_with(shown));
    let in_ten = Instant::now() + Duration::from_secs(600);
    let locked = refused_message(
        Lang::default(),
        &Clock::default(),
        Refusal::AccountLocked { until: in_ten },
    );
    let until = clock_minute(
        &Clock::default(),
        SystemTime::now() + Duration::from_secs(600 + 59),
    );
    assert!(locked.contains(&format!("until {until}")), "{locked}");
    assert!(locked.ends_with("Logins from other addresses are not affected."));
    assert!(until.ends_with(" UTC") && until.len() == "2026-12-06 04:12 UTC".len());
    let throttled = refused_message(
        Lang::default(),
        &Clock::default(),
        Refusal::AddressThrottled { until: in_ten },
    );
    assert!(
        throttled.contains("from your address") && throttled.contains(&until),
        "{throttled}"
    );
}

#[test]
fn the_list_says_where_it_stands_and_links_both_ways() {
    let filters = Filters {
        country: "kz".into(),
        ..Filters::default()
    };
    let body = inbox_body(
        Lang::default(),
        &Clock::default(),
        &filters,
        500,
        &InboxPage {
            records: Vec::new(),
            matching: 250,
            newer: 100,
            older_from: Some(17),
            newer_from: Some(90),
        },
    )
    .into_string();
    assert!(body.contains("Documents in the inbox: 500."), "{body}");
    assert!(body.contains("href=\"/console?q=&amp;type=&amp;country=kz&amp;status=&amp;from=&amp;to=&amp;before=17\""), "{body}");
    assert!(body.contains("&amp;after=90\">← Newer documents"), "{body}");
    // Filters match whatever the case typed.
    let mut record = crate::store::fixtures::inbox_record("KZ");
    record.document_type = Some(caravan_common::document::DocumentType::Phytosanitary);
    for (country, kind) in [("kz", "E-PHYTO"), ("KZ", "e-phyto"), (" Kz ", "")] {
        let f = Filters {
            country: country.into(),
            document_type: kind.into(),
            ..Filters::default()
        };
        assert!(f.keep(&record), "{country} {kind}");
    }
    let other = Filters {
        country: "uz".into(),
        ..Filters::default()
    };
    assert!(!other.keep(&record));
}

#[test]
fn the_printout_carries_the_verdict_who_when_and_the_configured_url_only() {
    let record = crate::store::fixtures::inbox_record("KZ");
    let lines = [CheckLine {
        name: "Signature",
        mark: Mark::Pass,
        link: None,
        content: false,
        detail: "verifies".into(),
    }];
    let printed = Printed {
        at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        spoke: "CN",
        officer: "ana",
        public_url: Some("https://console.cn.example"),
    };
    let body = print_body(
        Lang::default(),
        &Clock::default(),
        &record,
        &lines,
        b"",
        &printed,
    )
    .into_string();
    assert!(body.contains("✔ Genuine, current and unaltered."), "{body}");
    assert!(body.contains("Printed 2026-11-30 "), "{body}");
    assert!(
        body.contains(" UTC by officer ana at the Caravan spoke of <b>CN</b>."),
        "{body}"
    );
    assert!(body.contains("<svg"), "{body}");
    assert!(body.contains(&format!(
        "<small>https://console.cn.example/console/documents/{}</small>",
        record.message_id
    )));
    // A failed check is the printout's headline too.
    let failed = [CheckLine {
        name: "Signature",
        mark: Mark::Fail,
        link: None,
        content: false,
        detail: "BAD_SIGNATURE".into(),
    }];
    let body = print_body(
        Lang::default(),
        &Clock::default(),
        &record,
        &failed,
        b"",
        &printed,
    )
    .into_string();
    assert!(body.contains("✘ A CHECK FAILED"), "{body}");
    // Without a public URL: no QR code, and the page says why.
    let body = print_body(
        Lang::default(),
        &Clock::default(),
        &record,
        &lines,
        b"",
        &Printed {
            public_url: None,
            ..printed
        },
    )
    .into_string();
    assert!(!body.contains("<svg") && !body.contains("http"), "{body}");
    assert!(body.contains("No QR code: this console has no public address configured"));
}

/// A verified record with these content checks.
fn checked(checks: Vec<checks::Check>) -> InboxRecord {
    InboxRecord {
        verification: Verification::Verified { notes: Vec::new() },
        checks,
        ..crate::store::fixtures::inbox_record("KZ")
    }
}

fn line(check: CheckName, outcome: Outcome, rule: &str, params: &[(&str, &str)]) -> checks::Check {
    checks::Check {
        check,
        outcome,
        rule: rule.into(),
        message_key: checks::message_key(rule),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[test]
fn the_verdict_heads_with_the_failing_content_check_in_words() {
    let passed = |mark| CheckLine {
        name: "Signature",
        mark,
        detail: "verifies".into(),
        link: None,
        content: false,
    };
    let pass = line(CheckName::Header, Outcome::Pass, "HEADER_CONSISTENT", &[]);
    let old = line(
        CheckName::Dates,
        Outcome::Warn,
        "ISSUE_DATE_OLD",
        &[
            ("found", "2016-04-22"),
            ("age_days", "3870"),
            ("max_days", "90"),
        ],
    );
    let mismatch = line(
        CheckName::Issuer,
        Outcome::Fail,
        "EXPORT_COUNTRY_MISMATCH",
        &[("found", "AR"), ("expected", "KZ")],
    );
    let en = Lang::default();
    let ru = Lang::from_tag("ru").unwrap();
    // The panel as `checks` makes it: the signature's line, then one per content check.
    let render = |lang, r: &InboxRecord, print| {
        let mut lines = vec![passed(Mark::Pass)];
        lines.extend(r.checks.iter().map(|c| CheckLine {
            name: "Content",
            mark: c.outcome.into(),
            detail: String::new(),
            link: None,
            content: true,
        }));
        verdict_line(lang, r, &lines, print).into_string()
    };
    assert!(
        render(en, &checked(vec![pass.clone()]), false).contains(
            "✔ Genuine and consistent: signed, current, unaltered, and what it says fits its sender and recipient."
        )
    );
    let warned = render(en, &checked(vec![pass.clone(), old.clone()]), true);
    assert!(
        warned.contains(
            "⚠ Genuine, with warnings: Issued 2016-04-22: 3870 days ago, older than 90 days."
        ),
        "{warned}"
    );
    let failed = render(
        ru,
        &checked(vec![old, pass.clone(), mismatch.clone()]),
        false,
    );
    assert!(
        failed.contains(
            "✘ Подпись подлинная, но содержание противоречиво: Страна экспорта AR, а документ подписан KZ."
        ),
        "{failed}"
    );
    // A failed signature-panel check comes first; a record never checked keeps the old words.
    let body = verdict_line(en, &checked(vec![pass]), &[passed(Mark::Fail)], true).into_string();
    assert!(body.contains("✘ A CHECK FAILED"), "{body}");
    assert!(render(en, &checked(Vec::new()), false).contains("✔ Genuine, current and unaltered."));
    // Each content check is a line of the panel, WARN shown as such and translated.
    let rows = check_rows(
        ru,
        &[CheckLine {
            name: ru.t("check.current"),
            mark: Mark::Warn,
            detail: "x".into(),
            link: Some(MessageId::generate()),
            content: false,
        }],
    )
    .into_string();
    assert!(
        rows.contains("⚠ ВНИМАНИЕ") && rows.contains("href=\"/console/documents/"),
        "{rows}"
    );
}

#[test]
fn the_inbox_flags_what_the_content_checks_found_and_filters_by_it() {
    let by = MessageId::generate();
    let earlier = MessageId::generate();
    let duplicate = line(
        CheckName::Duplicate,
        Outcome::Fail,
        "DUPLICATE_NUMBER",
        &[("number", "KZ-1"), ("earlier", &earlier.to_string())],
    );
    let replaced = checks::replaced_by(by);
    let record = checked(vec![duplicate, replaced]);
    let flags = content_flags(Lang::default(), &record).into_string();
    assert!(
        flags.contains(">DUPLICATE<") && flags.contains(">REPLACED<"),
        "{flags}"
    );
    assert!(
        flags.contains(&format!("href=\"/console/documents/{by}\"")),
        "{flags}"
    );
    // The duplicate and the replacement are named, not repeated as FAIL and WARN.
    assert!(
        !flags.contains("FAIL") && !flags.contains("WARN"),
        "{flags}"
    );
    let zh = content_flags(Lang::from_tag("zh").unwrap(), &record).into_string();
    assert!(zh.contains(">重复<") && zh.contains(">已替换<"), "{zh}");
    let mismatch = checked(vec![line(
        CheckName::Issuer,
        Outcome::Fail,
        "IMPORT_COUNTRY_MISMATCH",
        &[("found", "EC"), ("expected", "CN")],
    )]);
    let flags = content_flags(Lang::default(), &mismatch).into_string();
    assert!(
        flags.contains("title=\"The import country is EC, but the document was sent to CN.\"")
            && flags.contains("✘ FAIL"),
        "{flags}"
    );
    // Nothing checked, nothing flagged.
    assert_eq!(
        content_flags(Lang::default(), &checked(Vec::new())).into_string(),
        ""
    );
    let filter = |status: &str| Filters {
        status: status.into(),
        ..Filters::default()
    };
    assert!(filter("Inconsistent").keep(&mismatch) && filter("inconsistent").keep(&record));
    assert!(!filter("consistent").keep(&mismatch) && !filter("warnings").keep(&mismatch));
    assert!(!filter("consistent").keep(&checked(Vec::new())));
    assert!(filter(" VERIFIED ").keep(&mismatch) && filter("").keep(&mismatch));
}

#[test]
fn the_client_is_the_peer_unless_a_trusted_proxy_forwards_it() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let request = |peer: &str, forwarded: &[&str]| {
        let mut headers = HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().unwrap());
        }
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo(SocketAddr::new(ip(peer), 40000)));
        (headers, extensions)
    };
    let proxies = [ip("10.0.0.5"), ip("10.0.0.6")];
    let client = |peer, forwarded: &[&str], trusted: &[IpAddr]| {
        let (h, e) = request(peer, forwarded);
        client_ip(&h, &e, trusted)
    };
    // No trusted proxy: the header is anyone's word.
    assert_eq!(
        client("203.0.113.9", &["198.51.100.1"], &[]),
        ip("203.0.113.9")
    );
    // A client that is not a trusted proxy cannot name another address.
    assert_eq!(
        client("203.0.113.9", &["198.51.100.1"], &proxies),
        ip("203.0.113.9")
    );
    // Through one trusted proxy: the address it appended; what the client wrote before it is
    // not believed.
    assert_eq!(
        client("10.0.0.5", &["1.2.3.4, 203.0.113.9"], &proxies),
        ip("203.0.113.9")
    );
    // Through two trusted proxies, with the header split over two lines.
    assert_eq!(
        client("10.0.0.5", &["1.2.3.4, 203.0.113.9", "10.0.0.6"], &proxies),
        ip("203.0.113.9")
    );
    // A trusted proxy without the header, or with garbage: the proxy counts.
    assert_eq!(client("10.0.0.5", &[], &proxies), ip("10.0.0.5"));
    assert_eq!(client("10.0.0.5", &["unknown"], &proxies), ip("10.0.0.5"));
}

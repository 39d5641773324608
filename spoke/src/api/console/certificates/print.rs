//! A certificate's printout for the paper leg of a journey, and the public page its QR code
//! leads to.
//!
//! The printout is bilingual: each label in the officer's language with the English beneath
//! (a border officer abroad reads English), the values as the form has them, codes decoded and
//! quantities with their units. Its QR code leads to `{console.public_url}/verify/{token}`,
//! the certificate's unguessable public token; never to an address taken from the request, and
//! only for a certificate that was issued (a draft's token is not answered).
//!
//! The verification page (`/verify/{token}`) needs no login: whoever holds the paper learns
//! that the certificate exists, its number and kind, who issued it and when, and whether it is
//! current, replaced or withdrawn, and nothing of what it says (no party, no goods). A token of
//! no issued certificate (unknown, a draft's, or not even a token's shape) gets the same
//! neutral 404, so that drafts cannot be probed; a malformed one is refused before the store is
//! asked. An address that looked up [`LOOKUP_MISSES`] tokens of nothing within a quarter of an
//! hour waits ([`LookupGuard`](crate::api::login_guard::LookupGuard)): 429 with `Retry-After`, the store not asked.

use crate::{api::login_guard::LOOKUP_MISSES, issuance::PublicStatus};

use super::{fields::Input, *};

/// A label in the officer's language with its English beneath (English once for English).
fn bi(lang: Lang, key: &str) -> Markup {
    let own = lang.lookup(key).unwrap_or("?");
    let english = Lang::default();
    html! {
        (own)
        @if lang != english {
            br; small lang="en" { (english.lookup(key).unwrap_or("?")) }
        }
    }
}

/// The QR code's address for `c`, if the console has a public address and `c` was issued.
pub(crate) fn verify_url(public_url: Option<&str>, c: &CertificateRecord) -> Option<String> {
    let base = public_url?.trim_end_matches('/');
    c.document_number
        .as_ref()
        .map(|_| format!("{base}/verify/{}", c.public_token))
}

/// The printable certificate, in `lang` and English.
pub(crate) fn print_body(
    lang: Lang,
    clock: &Clock,
    c: &CertificateRecord,
    public_url: Option<&str>,
) -> Markup {
    let spec = fields::spec(c.document_type);
    let form = &c.form;
    let url = verify_url(public_url, c);
    let qr = url.as_ref().and_then(|url| {
        qrcode::QrCode::new(url.as_bytes()).ok().map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(160, 160)
                .build()
        })
    });
    let issued = c.steps.iter().find(|s| s.action == Action::Approved);
    let title = match c.document_type {
        DocumentType::CertificateOfOrigin => "print_cert.eco",
        _ => "print_cert.ephyto",
    };
    html! {
        div.qr {
            @match (&qr, &url) {
                (Some(svg), Some(url)) => {
                    // The qrcode crate's own drawing: the URL is in it as modules, not text.
                    (PreEscaped(svg))
                    br;
                    small.verify { (url) }
                }
                _ if c.document_number.is_none() => {
                    small.warn { (lang.t("print_cert.no_qr_draft")) }
                }
                _ => {
                    small.warn { (lang.t("print.no_qr")) }
                }
            }
        }
        h1 { (bi(lang, title)) }
        table.facts {
            tr {
                th { (bi(lang, "print_cert.number")) }
                td {
                    @match &c.document_number {
                        Some(n) => b { (n) },
                        None => b.fail { (lang.t("print_cert.not_issued")) },
                    }
                }
            }
            @if c.state != CertificateState::Issued {
                tr { th { (bi(lang, "certificates.state")) } td.warn { (state_name(lang, c.state)) } }
            }
            @if let Some(s) = issued {
                tr { th { (bi(lang, "print_cert.issued_at")) } td { (clock.format(s.at)) } }
            }
        }
        @for g in spec.groups {
            h3 { (bi(lang, g.legend)) }
            table.facts {
                @for (path, kind) in g.fields {
                    tr {
                        th { (bi(lang, &fields::label_key(None, path))) }
                        td { (fields::shown(lang, *kind, fields::value_at(form, path))) }
                    }
                }
            }
        }
        @for list in spec.lists {
            @let n = fields::entries(form, list.name);
            @if n > 0 {
                h3 { (bi(lang, list.legend)) }
                @if list.fields.is_empty() {
                    ol {
                        @for i in 0..n {
                            li { (fields::shown(lang, Input::Long, fields::value_at(form, &format!("{}.{i}", list.name)))) }
                        }
                    }
                } @else {
                    table.lines {
                        tr {
                            th { "#" }
                            @for (field, _) in list.fields.iter().filter(|(f, _)| *f != "unit") {
                                th { (bi(lang, &fields::label_key(Some(list.name), field))) }
                            }
                        }
                        @for i in 0..n {
                            tr {
                                td { (i + 1) }
                                @for (field, kind) in list.fields.iter().filter(|(f, _)| *f != "unit") {
                                    @let at = |f: &str| fields::value_at(form, &format!("{}.{i}.{f}", list.name));
                                    td {
                                        @if *field == "quantity" {
                                            (codes::quantity(at("quantity"), Some(at("unit")), lang))
                                        } @else {
                                            (fields::shown(lang, *kind, at(field)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(in super::super) async fn print_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(me) = c.me(&headers) else {
        return to_login(&uri);
    };
    let found = match id.parse::<MessageId>() {
        Ok(id) => c.issuance.certificate(id).await,
        Err(_) => return not_found(&c, &me),
    };
    match found {
        Ok(rec) => page(
            me.lang,
            me.lang.t("certificates.printable"),
            Some((&me.officer.user, &me.csrf)),
            print_body(me.lang, &c.clock, &rec, c.public_url.as_deref()),
        )
        .into_response(),
        Err(e) => refused_page(&c, &me, status_of(&e), &refusal_text(me.lang, &e)),
    }
}

/// Whether `token` has the shape of a public token: 32 lowercase hex digits.
pub(crate) fn token_shaped(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The public page: what `status` allows anyone to know, or that nothing is known.
pub(crate) fn verify_body(lang: Lang, clock: &Clock, status: Option<&PublicStatus>) -> Markup {
    html! {
        h1 { (lang.t("verify.title")) }
        @match status {
            None => p.headline { (lang.t("verify.unknown")) },
            Some(s) => {
                @let date = clock.format_short(s.issued_at);
                p.headline {
                    (lang.f("verify.issued", &[
                        ("number", &s.document_number),
                        ("kind", &kind_name(lang, s.document_type)),
                        ("authority", &s.authority),
                        ("country", &codes::name(List::Country, s.issuer.as_str(), lang).unwrap_or(s.issuer.as_str())),
                        ("date", &date.get(..10).unwrap_or(&date)),
                    ]))
                }
                @match s.state {
                    CertificateState::Withdrawn => p.fail { (lang.t("verify.withdrawn")) },
                    CertificateState::Replaced => p.warn {
                        (lang.f("verify.replaced", &[("number", &s.replaced_by.as_deref().unwrap_or("?"))]))
                    },
                    _ => p.ok { (lang.t("verify.current")) },
                }
                p { small { (lang.t("verify.no_content")) } }
            }
        }
    }
}

pub(in super::super) async fn verify(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    extensions: Extensions,
    UrlPath(token): UrlPath<String>,
) -> Response {
    let lang = negotiate(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let client = client_ip(&headers, &extensions, &c.trusted_proxies);
    let answer = |status: StatusCode, body: Markup| {
        (status, page(lang, lang.t("verify.title"), None, body)).into_response()
    };
    let throttled = |until: Instant| {
        let wait = until.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        // Rounded up to the minute shown, so "after 04:12" is never early.
        let after = clock_minute(&c.clock, SystemTime::now() + wait + Duration::from_secs(59));
        let body = html! {
            h1 { (lang.t("verify.title")) }
            p.fail { (lang.f("verify.throttled", &[("after", &after)])) }
        };
        let mut response = answer(StatusCode::TOO_MANY_REQUESTS, body);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
        response
    };
    if let Err(until) = c.lookups().check(client, Instant::now()) {
        return throttled(until);
    }
    let found = if token_shaped(&token) {
        c.issuance.public_status(&token).await
    } else {
        Ok(None)
    };
    match found {
        Ok(Some(s)) => answer(StatusCode::OK, verify_body(lang, &c.clock, Some(&s))),
        Ok(None) => {
            if let Some(until) = c.lookups().missed(client, Instant::now()) {
                warn!(%client, misses = LOOKUP_MISSES, "public certificate lookups refused for a while: too many codes of no certificate from one address");
                return throttled(until);
            }
            answer(StatusCode::NOT_FOUND, verify_body(lang, &c.clock, None))
        }
        Err(e) => {
            warn!(cause = %e, "the public verification page could not read the store");
            let body = html! {
                h1 { (lang.t("verify.title")) }
                p.fail { (lang.t("verify.unavailable")) }
            };
            answer(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

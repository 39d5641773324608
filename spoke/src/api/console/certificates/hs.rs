//! The HS heading finder (`/console/hs`): the picker of the forms' HS code fields. An officer
//! searches HS 2022's headings by code or by words and reads each with its chapter, in a tab of
//! its own beside the form (the console runs no script).
//!
//! Why a page and not a `<datalist>` in the form: the 1,228 headings with their descriptions
//! are 170 KB of markup, which every save of a form would carry again; a search here is a few
//! KB, once, when the officer needs it.

use super::*;
use crate::i18n::codes::hs_search;

/// Most headings one search shows.
pub(crate) const MAX_FOUND: usize = 100;

#[derive(Deserialize, Default)]
pub(in super::super) struct HsQuery {
    #[serde(default)]
    q: String,
}

/// The finder's body: the search box with `query`, and what it found.
pub(crate) fn hs_body(lang: Lang, query: &str) -> Markup {
    // One more than shown, to know whether there were more.
    let found = hs_search(query, lang, MAX_FOUND + 1);
    let shown = &found[..found.len().min(MAX_FOUND)];
    html! {
        h1 { (lang.t("hs.title")) }
        form.filters method="get" action="/console/hs" {
            label for="hs-q" { (lang.t("hs.search")) }
            input id="hs-q" name="q" value=(query) maxlength="100" autofocus;
            button type="submit" { (lang.t("hs.find")) }
        }
        p { small { (lang.t("hs.english")) } }
        @if !query.trim().is_empty() {
            @if shown.is_empty() {
                p { (lang.t("hs.none")) }
            } @else {
                table {
                    @for (code, heading) in shown {
                        tr {
                            td { code { (code) } }
                            td lang="en" {
                                (heading)
                                @if let Some(chapter) = codes::name(List::HsChapter, code, lang) {
                                    br; small { (lang.f("code.hs_chapter", &[("chapter", &&code[..2]), ("name", &chapter)])) }
                                }
                            }
                        }
                    }
                }
                @if found.len() > MAX_FOUND {
                    p { small { (lang.f("hs.more", &[("shown", &MAX_FOUND)])) } }
                }
            }
        }
    }
}

pub(in super::super) async fn hs_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HsQuery>,
) -> Response {
    let Some(me) = c.me(&headers) else {
        return to_login(&uri);
    };
    let query: String = q.q.chars().take(100).collect();
    page(
        me.lang,
        me.lang.t("hs.title"),
        Some((&me.officer.user, &me.csrf)),
        hs_body(me.lang, &query),
    )
    .into_response()
}

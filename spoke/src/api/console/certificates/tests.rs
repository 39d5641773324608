//! The certificate pages' unit tests: hostile values escaped in every field, the edit form only
//! for an issuing officer on a draft, the buttons per role and state, a form's problems beside
//! its fields with what was typed kept, posted fields read back into the same form, and the
//! public page showing nothing of what a certificate says.

use caravan_common::Timestamp;

use super::super::tests::{ESCAPED, HOSTILE};
use super::{fields::*, hs::hs_body, listing::list_body, print::*, *};
use crate::{
    issuance::{
        Issuance,
        tests::{Kept, officer},
    },
    issuing::{
        EcoLine, PhytoLine, Treatment,
        tests::{full_eco, full_ephyto},
    },
    store::{SpokeStore, Step},
};

fn record(form: &IssueForm, state: CertificateState) -> CertificateRecord {
    CertificateRecord {
        id: MessageId::generate(),
        document_type: form.document_type(),
        to: "CN".parse().unwrap(),
        exporter: "Zhetysu Agro LLP".into(),
        form: serde_json::to_value(form).unwrap(),
        state,
        document_number: (!matches!(
            state,
            CertificateState::Draft | CertificateState::AwaitingApproval
        ))
        .then(|| "KZ-PHY-2026-000001".into()),
        supersedes: None,
        replaced_by: None,
        public_token: "0123456789abcdef0123456789abcdef".into(),
        steps: vec![Step {
            at: Timestamp::from_millis(1_796_000_000_000),
            officer: "ana".into(),
            action: Action::Created,
            note: String::new(),
        }],
    }
}

/// Every field of `form` as the page names its inputs, with its value.
fn posted_of(form: &IssueForm) -> Vec<(String, String)> {
    let spec = spec(form.document_type());
    let json = serde_json::to_value(form).unwrap();
    let mut out = Vec::new();
    for g in spec.groups {
        for (path, _) in g.fields {
            out.push((path.to_string(), value_at(&json, path).to_owned()));
        }
    }
    for list in spec.lists {
        for i in 0..entries(&json, list.name) {
            if list.fields.is_empty() {
                let name = format!("{}.{i}", list.name);
                out.push((name.clone(), value_at(&json, &name).to_owned()));
            }
            for (field, _) in list.fields {
                let name = format!("{}.{i}.{field}", list.name);
                out.push((name.clone(), value_at(&json, &name).to_owned()));
            }
        }
    }
    out
}

fn hostile_ephyto() -> IssueForm {
    let h = || HOSTILE.to_owned();
    let party = || TradeParty {
        name: h(),
        address: h(),
        country: h(),
    };
    IssueForm::EPhyto(EPhytoForm {
        consignor: party(),
        consignee: party(),
        issuing_authority: Authority {
            name: h(),
            country: h(),
        },
        authorized_officer: h(),
        place_of_issue: h(),
        country_of_origin: h(),
        country_of_destination: h(),
        place_of_loading: crate::issuing::Place {
            name: h(),
            locode: h(),
        },
        point_of_entry: crate::issuing::Place {
            name: h(),
            locode: h(),
        },
        conveyance: crate::issuing::Conveyance {
            mode: h(),
            name: h(),
        },
        lines: vec![PhytoLine {
            description: h(),
            hs_code: h(),
            botanical_name: h(),
            quantity: h(),
            unit: h(),
            packages: h(),
            package_type: h(),
        }],
        treatments: vec![Treatment {
            kind: h(),
            chemical: h(),
            duration: h(),
            duration_unit: h(),
            temperature: h(),
            temperature_unit: h(),
            concentration: h(),
            concentration_unit: h(),
            date: h(),
        }],
        additional_declarations: vec![h()],
    })
}

#[test]
fn posted_fields_make_the_same_form_and_the_table_covers_every_field() {
    for form in [
        IssueForm::EPhyto(full_ephyto()),
        IssueForm::Eco(full_eco()),
        hostile_ephyto(),
    ] {
        let posted = Posted::new(posted_of(&form));
        let back = parse(spec(form.document_type()), &posted).unwrap();
        assert_eq!(back, form);
    }
    // Every input of a filled e-CO: each of its values comes back (no field left out).
    let eco = IssueForm::Eco(EcoForm {
        lines: vec![EcoLine {
            gross_weight_kg: "1".into(),
            ..EcoLine::default()
        }],
        remarks: "r".into(),
        ..EcoForm::default()
    });
    assert_eq!(parse(&ECO, &Posted::new(posted_of(&eco))).unwrap(), eco);
}

#[test]
fn hostile_posts_are_read_without_panic_and_blank_lines_dropped() {
    let pairs: Vec<(String, String)> = [
        ("kind", "e-co"),
        ("consignor.name", "A"),
        ("unknown", "x"),
        ("consignor.name", "second value ignored"),
        ("lines.99999999999999999999.description", "overflow"),
        ("lines.500.description", "beyond the limit"),
        ("lines.-1.description", "negative"),
        ("lines.x.description", "not a number"),
        ("lines..description", "empty"),
        ("lines.3.description", "kept"),
        ("lines.3.evil", "unknown field of a line"),
        ("lines.1.description", "   "),
        ("treatments.0.date", "2026-01-01"),
        ("additional_declarations.2", "D"),
        ("additional_declarations.0", ""),
        ("additional_declarations.0.x", "nested"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let IssueForm::EPhyto(f) = parse(&EPHYTO, &Posted::new(pairs)).unwrap() else {
        panic!("the page's kind decides, not a posted one");
    };
    assert_eq!(f.consignor.name, "A");
    assert_eq!(f.consignee.name, "", "missing fields are empty");
    assert_eq!(f.lines.len(), 1);
    assert_eq!(f.lines[0].description, "kept");
    assert_eq!(f.treatments.len(), 1);
    assert_eq!(f.additional_declarations, ["D"]);
    assert!(parse(&EPHYTO, &Posted::default()).is_ok());
}

#[test]
fn hostile_values_are_escaped_in_every_field_and_page() {
    let lang = Lang::default();
    let clock = Clock::default();
    let form = hostile_ephyto();
    let mut c = record(&form, CertificateState::Draft);
    c.exporter = HOSTILE.into();
    c.steps[0].officer = HOSTILE.into();
    c.steps[0].note = HOSTILE.into();
    let issuer = officer("ana", &[Role::Issuing]);
    let viewer = officer("vi", &[Role::Viewing]);
    let problems = [FieldProblem::new(
        "lines[0].hs_code",
        "hs-code",
        "hs_code",
        &[("value", HOSTILE)],
    )];
    let view = View {
        problems: &problems,
        message: Some(HOSTILE.into()),
        ..View::default()
    };
    let edit = certificate_body(lang, &clock, &issuer, HOSTILE, &c, &view).into_string();
    let read = certificate_body(lang, &clock, &viewer, "t", &c, &View::default()).into_string();
    let printed = print_body(lang, &clock, &c, Some("https://console.example")).into_string();
    let list = list_body(lang, &clock, &issuer, std::slice::from_ref(&c), &[]).into_string();
    for page in [&edit, &read, &printed, &list] {
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains(ESCAPED), "{page}");
    }
    // Every input carries the hostile value escaped: 19 fields, 7 of the line, 9 of the
    // treatment, 1 declaration.
    let inputs = edit.matches(&format!("value=\"{ESCAPED}\"")).count()
        + edit.matches(&format!(">{ESCAPED}</textarea>")).count();
    assert!(inputs >= 19 + 7 + 9 + 1 - 8, "{inputs} in {edit}");
    // A code not in its list is offered as written, escaped and marked.
    assert!(edit.contains(&format!(
        "<option value=\"{ESCAPED}\" selected>{ESCAPED} (not in the code list)</option>"
    )));
}

#[test]
fn the_edit_form_is_only_for_an_issuing_officer_on_a_draft() {
    let lang = Lang::default();
    let clock = Clock::default();
    let form = IssueForm::EPhyto(full_ephyto());
    let issuer = officer("ana", &[Role::Issuing]);
    let approver = officer("bo", &[Role::Approving]);
    let viewer = officer("vi", &[Role::Viewing]);
    let input = "name=\"consignor.name\"";
    for state in [
        CertificateState::Draft,
        CertificateState::AwaitingApproval,
        CertificateState::Issued,
        CertificateState::Withdrawn,
        CertificateState::Replaced,
    ] {
        let c = record(&form, state);
        for who in [&issuer, &approver, &viewer] {
            let page = certificate_body(lang, &clock, who, "t", &c, &View::default()).into_string();
            let editable = state == CertificateState::Draft && who.user == "ana";
            assert_eq!(page.contains(input), editable, "{state:?} {}", who.user);
            // Read only, every value is still shown.
            assert!(page.contains("Zhetysu Agro LLP"));
            assert!(page.contains("Malus sieversii"));
        }
    }
    // The draft's form: inputs named by path, pickers, the units' suggestions, a blank line.
    let c = record(&form, CertificateState::Draft);
    let page = certificate_body(lang, &clock, &issuer, "t", &c, &View::default()).into_string();
    for expected in [
        "name=\"lines.1.hs_code\" value=\"06022010\"",
        "<select id=\"f-consignee.country\" name=\"consignee.country\">",
        "<option value=\"CN\" selected>China (CN)</option>",
        "<option value=\"2\" selected>Rail transport (2)</option>",
        "name=\"lines.0.unit\" list=\"rec20-units\" value=\"KGM\"",
        "<datalist id=\"rec20-units\">",
        "name=\"lines.2.description\" value=\"\"",
        "name=\"treatments.1.kind\" value=\"\"",
        "name=\"additional_declarations.2\"",
        "<button name=\"action\" value=\"add_line\">Add a line</button>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
}

#[test]
fn hs_codes_are_found_on_their_own_page_and_read_with_their_heading() {
    let clock = Clock::default();
    let issuer = officer("ana", &[Role::Issuing]);
    let viewer = officer("vi", &[Role::Viewing]);
    // Each HS input links to the finder and shows the heading its code has; no list of every
    // heading weighs down the form.
    for tag in ["en", "ru", "zh"] {
        let lang = Lang::from_tag(tag).unwrap();
        for form in [IssueForm::EPhyto(full_ephyto()), IssueForm::Eco(full_eco())] {
            let c = record(&form, CertificateState::Draft);
            let page =
                certificate_body(lang, &clock, &issuer, "t", &c, &View::default()).into_string();
            let link = format!(
                "<a href=\"/console/hs\" target=\"_blank\" rel=\"noopener\">{}</a>",
                lang.t("hs.find_heading")
            );
            assert_eq!(
                page.matches(&link).count(),
                entries(&serde_json::to_value(&form).unwrap(), "lines") + 1,
                "{tag}: one per line and the blank one"
            );
            assert!(
                page.contains(
                    "<input id=\"f-lines.0.hs_code\" size=\"12\" name=\"lines.0.hs_code\""
                ),
                "{page}"
            );
            assert!(!page.contains("<datalist id=\"hs"), "{tag}");
            assert!(page.len() < 120_000, "{tag}: {} bytes", page.len());
        }
    }
    let c = record(&IssueForm::EPhyto(full_ephyto()), CertificateState::Draft);
    let page =
        certificate_body(Lang::default(), &clock, &issuer, "t", &c, &View::default()).into_string();
    assert!(
        page.contains("<small lang=\"en\">0808 Apples, pears and quinces; fresh</small>"),
        "{page}"
    );
    // The finder: by code, by words, nothing, and hostile input escaped.
    let en = Lang::default();
    let found = hs_body(en, "0808").into_string();
    assert!(
        found.contains("<code>0808</code>") && found.contains("Apples, pears and quinces; fresh"),
        "{found}"
    );
    assert!(found.contains("Chapter 08: Fruit and nuts"), "{found}");
    let found = hs_body(Lang::from_tag("ru").unwrap(), "apples fresh").into_string();
    assert!(
        found.contains("<code>0808</code>") && found.contains("Найти"),
        "{found}"
    );
    assert!(
        hs_body(en, "zzzzqq")
            .into_string()
            .contains("No heading of HS 2022 matches.")
    );
    let many = hs_body(en, "of").into_string();
    assert_eq!(many.matches("<code>").count(), hs::MAX_FOUND);
    assert!(many.contains("The first 100 headings found are shown"));
    let hostile = hs_body(en, HOSTILE).into_string();
    assert!(
        !hostile.contains(HOSTILE) && hostile.contains(ESCAPED),
        "{hostile}"
    );

    // Read, on the page and the printout: the code as typed, then its heading decoded; a code
    // whose heading HS 2022 lacks, marked.
    let mut f = full_ephyto();
    f.lines[1].hs_code = "9999.10".into();
    let c = record(&IssueForm::EPhyto(f), CertificateState::Issued);
    for tag in ["en", "ru"] {
        let lang = Lang::from_tag(tag).unwrap();
        let read = certificate_body(lang, &clock, &viewer, "t", &c, &View::default()).into_string();
        let printed = print_body(lang, &clock, &c, None).into_string();
        let chapter = if tag == "en" {
            "Chapter"
        } else {
            "Группа"
        };
        let unknown = if tag == "en" {
            "heading not in HS 2022"
        } else {
            "товарной позиции нет в ГС 2022"
        };
        for page in [&read, &printed] {
            assert!(
                !page.contains("/console/hs"),
                "no finder on a read-only page"
            );
            for expected in [
                format!(
                    "0808.10 · <small lang=\"en\" title=\"{chapter} 08: Fruit and nuts, edible; peel of citrus fruit or melons\">0808 Apples, pears and quinces; fresh</small>"
                ),
                format!("9999.10 <small class=\"warn\">({unknown})</small>"),
            ] {
                assert!(page.contains(&expected), "{tag}: {expected} not in {page}");
            }
        }
    }
}

/// The step buttons `page` offers.
fn buttons(page: &str) -> Vec<&'static str> {
    Act::ALL
        .into_iter()
        .filter(|a| page.contains(&format!("name=\"action\" value=\"{}\"", a.as_str())))
        .map(Act::as_str)
        .collect()
}

#[test]
fn each_officer_sees_the_buttons_of_their_roles_in_the_certificates_state() {
    use CertificateState::*;
    let lang = Lang::default();
    let clock = Clock::default();
    let form = IssueForm::EPhyto(full_ephyto());
    let issuer = officer("ana", &[Role::Issuing]);
    let approver = officer("bo", &[Role::Approving]);
    let both = officer("cy", &[Role::Issuing, Role::Approving]);
    let viewer = officer("vi", &[Role::Viewing]);
    let cases: [(&Officer, CertificateState, &[&str]); 12] = [
        (
            &issuer,
            Draft,
            &["save", "add_line", "submit", "template", "copy"],
        ),
        (&issuer, AwaitingApproval, &["template", "copy"]),
        (&issuer, Issued, &["correct", "template", "copy"]),
        (&issuer, Withdrawn, &["template", "copy"]),
        (&approver, Draft, &[]),
        (&approver, AwaitingApproval, &["approve", "return"]),
        (&approver, Issued, &["withdraw"]),
        (&approver, Replaced, &[]),
        (&viewer, Draft, &[]),
        (&viewer, AwaitingApproval, &[]),
        (&viewer, Issued, &[]),
        (&both, Issued, &["withdraw", "correct", "template", "copy"]),
    ];
    for (who, state, expected) in cases {
        let c = record(&form, state);
        let page = certificate_body(lang, &clock, who, "tok", &c, &View::default()).into_string();
        assert_eq!(buttons(&page), expected, "{} on {state:?}", who.user);
        if !expected.is_empty() {
            assert!(page.contains("name=\"csrf\" value=\"tok\""));
        }
    }
    // An approving officer who prepared it is told four eyes, and offered no approval.
    let mut c = record(&form, AwaitingApproval);
    c.steps[0].officer = "cy".into();
    let page = certificate_body(lang, &clock, &both, "t", &c, &View::default()).into_string();
    assert_eq!(buttons(&page), ["return", "template", "copy"]);
    assert!(page.contains("(four eyes)"));
    // Issued: the number, its Sent page and its printout; history with officer and time.
    let c = record(&form, Issued);
    let page = certificate_body(lang, &clock, &viewer, "t", &c, &View::default()).into_string();
    for expected in [
        "KZ-PHY-2026-000001",
        &format!("href=\"/console/sent/{}\"", c.id),
        &format!("href=\"/console/certificates/{}/print\"", c.id),
        "<td>2026-11-30 00:53:20 +00:00</td><td>ana</td><td>Created</td>",
    ] {
        assert!(page.contains(expected), "{expected} not in {page}");
    }
}

#[test]
fn problems_are_shown_beside_their_fields_with_what_was_typed_kept() {
    let lang = Lang::default();
    let mut typed = full_ephyto();
    typed.consignor.name = String::new();
    typed.lines[1].hs_code = "12x".into();
    let typed = IssueForm::EPhyto(typed);
    let c = record(&IssueForm::EPhyto(full_ephyto()), CertificateState::Draft);
    let problems = crate::issuing::check(&typed);
    assert!(problems.len() >= 2, "{problems:?}");
    let view = View {
        typed: Some(&typed),
        problems: &problems,
        message: Some("refused".into()),
    };
    let page = certificate_body(
        lang,
        &Clock::default(),
        &officer("ana", &[Role::Issuing]),
        "t",
        &c,
        &view,
    )
    .into_string();
    assert!(
        page.contains("name=\"lines.1.hs_code\" value=\"12x\" aria-invalid=\"true\"> <a href=\"/console/hs\" target=\"_blank\" rel=\"noopener\">Find a heading</a><span class=\"problem\" role=\"alert\">"),
        "{page}"
    );
    assert!(
        page.contains("name=\"consignor.name\" value=\"\" aria-invalid=\"true\">"),
        "{page}"
    );
    assert!(page.contains("<li><b>Consignor · Name</b>: "), "{page}");
    assert!(page.contains("<li><b>Goods 2 · HS code</b>: "), "{page}");
}

#[tokio::test]
async fn the_public_page_says_who_issued_it_and_whether_it_stands_and_nothing_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SpokeStore::open(dir.path(), None, 4 << 20).unwrap());
    let w = Issuance::new("KZ".parse().unwrap(), store.clone(), Kept::new(store));
    let (ana, bo) = (
        officer("ana", &[Role::Issuing]),
        officer("bo", &[Role::Approving]),
    );
    let form = full_ephyto();
    let c = w
        .create(
            &ana,
            "CN".parse().unwrap(),
            IssueForm::EPhyto(form.clone()),
            None,
        )
        .await
        .unwrap();
    let lang = Lang::default();
    let clock = Clock::default();
    // A draft's token is not known.
    assert!(w.public_status(&c.public_token).await.unwrap().is_none());
    w.submit(&ana, c.id).await.unwrap();
    let issued = w.approve(&bo, c.id).await.unwrap();
    let number = issued.document_number.clone().unwrap();
    let status = w.public_status(&c.public_token).await.unwrap().unwrap();
    let page = verify_body(lang, &clock, Some(&status)).into_string();
    assert!(page.contains(&format!("Certificate {number} (Phytosanitary) was issued by Committee of State Inspection in the Agro-Industrial Complex, Kazakhstan, on ")), "{page}");
    assert!(page.contains("It is current."));
    let mut secrets = vec![
        form.consignor.name.clone(),
        form.consignee.name.clone(),
        form.authorized_officer.clone(),
        form.conveyance.name.clone(),
    ];
    secrets.extend(form.lines.iter().map(|l| l.description.clone()));
    secrets.extend(form.lines.iter().map(|l| l.botanical_name.clone()));
    secrets.extend(form.additional_declarations.iter().cloned());
    for secret in &secrets {
        assert!(!page.contains(secret.as_str()), "{secret} shown: {page}");
    }
    // The printout's QR code leads to the public page of its token.
    let printed = print_body(lang, &clock, &issued, Some("https://kz.example/")).into_string();
    assert!(printed.contains(&format!(
        "<small class=\"verify\">https://kz.example/verify/{}</small>",
        c.public_token
    )));
    assert!(printed.contains("<svg"));
    assert!(printed.contains("18,500.5 kg"), "{printed}");
    let russian = print_body(Lang::from_tag("ru").unwrap(), &clock, &issued, None).into_string();
    assert!(
        russian.contains(
            "Фитосанитарный сертификат<br><small lang=\"en\">Phytosanitary certificate</small>"
        ),
        "{russian}"
    );
    assert!(
        russian.contains("console.public_url"),
        "no address, no QR code: {russian}"
    );
    // Replaced: the page names the replacement; withdrawn: not to be relied on.
    let fix = w.correct(&ana, c.id).await.unwrap();
    w.submit(&ana, fix.id).await.unwrap();
    let fixed = w.approve(&bo, fix.id).await.unwrap();
    let status = w.public_status(&c.public_token).await.unwrap().unwrap();
    let page = verify_body(lang, &clock, Some(&status)).into_string();
    assert!(page.contains(&format!(
        "It was replaced by certificate {}",
        fixed.document_number.unwrap()
    )));
    w.withdraw(&bo, fix.id, "issued in error").await.unwrap();
    let status = w.public_status(&fix.public_token).await.unwrap().unwrap();
    let page = verify_body(lang, &clock, Some(&status)).into_string();
    assert!(page.contains("It was withdrawn: do not rely on it."));
    assert!(
        verify_body(lang, &clock, None)
            .into_string()
            .contains("No certificate is known for this code.")
    );
}

#[test]
fn only_a_tokens_shape_reaches_the_store() {
    assert!(token_shaped("0123456789abcdef0123456789abcdef"));
    for bad in [
        "",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "../../../../etc/passwd0123456789",
        "0123456789abcdef0123456789abcdeg",
    ] {
        assert!(!token_shaped(bad), "{bad}");
    }
}

#[test]
fn every_label_and_legend_of_the_forms_is_in_the_catalogue() {
    let english = Lang::default();
    for spec in [&EPHYTO, &ECO] {
        for g in spec.groups {
            assert!(english.lookup(g.legend).is_some(), "{}", g.legend);
            for (path, _) in g.fields {
                assert!(english.lookup(&label_key(None, path)).is_some(), "{path}");
            }
        }
        for list in spec.lists {
            assert!(english.lookup(list.legend).is_some(), "{}", list.legend);
            if list.fields.is_empty() {
                assert!(english.lookup(&label_key(Some(list.name), "")).is_some());
            }
            for (field, _) in list.fields {
                assert!(
                    english.lookup(&label_key(Some(list.name), field)).is_some(),
                    "{}.{field}",
                    list.name
                );
            }
        }
    }
}

#[test]
fn every_refused_step_reads_in_the_officers_language() {
    use caravan_common::{Refusal, RefusalCode};
    let check: crate::checks::Check = serde_json::from_value(serde_json::json!({
        "check": "issuer",
        "outcome": "FAIL",
        "rule": "ISSUER_COUNTRY_MISMATCH",
        "message_key": "content_check.issuer_country_mismatch",
        "params": {"found": "CN", "expected": "KZ"},
    }))
    .unwrap();
    let refusals = [
        IssueError::RoleMissing {
            role: Role::Approving,
            officer: "ana".into(),
            step: "approving a certificate",
        },
        IssueError::FourEyes {
            officer: "ana".into(),
            action: Action::Submitted,
        },
        IssueError::KindChanged(DocumentType::CertificateOfOrigin),
        IssueError::NotFound(MessageId::generate()),
        IssueError::WrongState {
            state: CertificateState::Issued,
            step: "approving",
            applies: CertificateState::AwaitingApproval,
        },
        IssueError::Form(Vec::new()),
        IssueError::NoteNeeded("a return needs the reason, for the preparer"),
        IssueError::Send(SendError::Refused(Refusal::new(
            RefusalCode::CorridorClosed,
            "KZ to CN",
        ))),
        IssueError::Send(SendError::Inconsistent(vec![check])),
        IssueError::Send(SendError::Invalid(Vec::new())),
        IssueError::Store(crate::store::StoreError::corrupt("certificate", "test")),
    ];
    let russian = Lang::from_tag("ru").unwrap();
    for e in &refusals {
        let (en, ru) = (refusal_text(Lang::default(), e), refusal_text(russian, e));
        assert!(!ru.is_empty() && ru != en, "{e:?}: {ru}");
        // Russian words, not the error's English.
        assert!(ru.chars().any(|c| ('а'..='я').contains(&c)), "{e:?}: {ru}");
        assert!(
            !ru.contains(&e.to_string()) || e.to_string().is_empty(),
            "{e:?}: {ru}"
        );
    }
    let wrong_state = refusal_text(russian, &refusals[4]);
    assert!(wrong_state.contains("«Выдан»"), "{wrong_state}");
    let failed = refusal_text(russian, &refusals[8]);
    assert!(failed.contains("CN") && failed.contains("KZ"), "{failed}");
}

#[test]
fn form_problems_read_in_the_officers_language_with_their_fields_named() {
    let mut form = full_ephyto();
    form.consignor.name = String::new();
    form.lines[1].hs_code = "9999.10".into();
    form.lines[0].quantity = "-3".into();
    let problems = crate::issuing::check(&IssueForm::EPhyto(form));
    let russian = Lang::from_tag("ru").unwrap();
    let said: Vec<(String, String)> = problems
        .iter()
        .map(|p| (field_name(russian, &p.field), p.message_in(russian)))
        .collect();
    for expected in [
        ("Грузоотправитель · Наименование", "обязательное поле"),
        (
            "Товары 2 · Код ТН ВЭД (ГС)",
            "\"9999.10\" — не код ГС 2022: его товарной позиции 9999 (первые четыре цифры) нет в ГС 2022",
        ),
        (
            "Товары 1 · Количество",
            "\"-3\" — не положительное десятичное число",
        ),
    ] {
        assert!(
            said.iter()
                .any(|(f, m)| f == expected.0 && m.starts_with(expected.1)),
            "{expected:?} not in {said:?}"
        );
    }
    // English stays what the API and the logs say, from the same catalogue.
    assert!(
        problems
            .iter()
            .any(|p| p.message == "this field is required")
    );
    let en = Lang::default();
    assert_eq!(field_name(en, "lines[1].hs_code"), "Goods 2 · HS code");
    assert_eq!(
        field_name(en, "issuing_authority.country"),
        "Issuing authority · Country"
    );
    assert_eq!(field_name(en, "place_of_issue"), "Place of issue");
    assert_eq!(field_name(en, "lines"), "Goods");
    assert_eq!(field_name(en, "document"), "document");
    assert_eq!(field_name(en, "no_such[x].thing"), "no_such[x].thing");
    // Every key a problem can name is in every catalogue (the keys the checks use).
    for p in &problems {
        for lang in [en, russian, Lang::from_tag("zh").unwrap()] {
            assert!(lang.lookup(&p.message_key).is_some(), "{}", p.message_key);
        }
    }
}

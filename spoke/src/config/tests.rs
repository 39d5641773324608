//! The config's checks: every problem named with its key.

use super::*;

/// The sample in deploy/config is a real config: every key it shows exists and its
/// sections check out (the files it names do not exist here).
#[test]
fn the_sample_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/spoke.toml");
    let file: SpokeFile = read_toml(&path).unwrap();
    let mut problems = Problems::default();
    assert!(
        nsw_config(file.nsw.as_ref().unwrap(), &path, &mut problems)
            .unwrap()
            .webhook
            .is_some()
    );
    assert!(console_config(file.console.as_ref().unwrap(), &mut problems).is_some());
    assert!(file.net.check(&mut problems).is_some());
    let upload = file.upload.check(&mut problems);
    assert_eq!(upload.min_rate, DEFAULT_MIN_RATE);
    assert!(problems.finish(&path, || ()).is_ok());
}

#[test]
fn the_hubs_addresses_are_one_url_or_a_list_of_its_replicas() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/spoke.toml");
    let base: SpokeFile = read_toml(&path).unwrap();
    let judged = |one: Option<&str>, list: &[&str]| {
        let file = SpokeFile {
            hub_url: one.map(str::to_owned),
            hub_urls: list.iter().map(|u| u.to_string()).collect(),
            ..base.clone()
        };
        let mut problems = Problems::default();
        let urls = caravan_common::config::hub_addresses(
            file.hub_url.as_deref(),
            &file.hub_urls,
            &mut problems,
        );
        let text = match problems.finish(&path, || ()) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        (urls, text)
    };
    let (urls, problems) = judged(Some("https://hub:7443"), &[]);
    assert_eq!(
        (urls, problems.as_str()),
        (vec!["https://hub:7443".to_owned()], "")
    );
    let (urls, problems) = judged(None, &["https://a:7443", "https://b:7443"]);
    assert_eq!(urls.len(), 2, "{problems}");
    assert!(problems.is_empty(), "{problems}");
    for (url, urls, expected) in [
        (Some("https://a:7443"), &["https://b:7443"][..], "not both"),
        (None, &[][..], "hub_url: missing"),
        (
            None,
            &["https://a:7443", "https://a:7443"][..],
            "given twice",
        ),
        (
            None,
            &["http://a:7443"][..],
            "is not an https://host:port URL",
        ),
    ] {
        let (_, problems) = judged(url, urls);
        assert!(problems.contains(expected), "{expected}: {problems}");
    }
}

#[test]
fn a_public_url_is_https_unless_loopback() {
    assert_eq!(
        public_url("https://console.cn.example/").as_deref(),
        Ok("https://console.cn.example")
    );
    assert_eq!(
        public_url("https://gw.example:8443/caravan").as_deref(),
        Ok("https://gw.example:8443/caravan")
    );
    for loopback in [
        "http://127.0.0.1:8081",
        "http://localhost:8081",
        "http://[::1]:8081",
    ] {
        assert!(public_url(loopback).is_ok(), "{loopback}");
    }
    for (bad, why) in [
        ("http://console.cn.example", "must be https://"),
        ("http://10.1.2.3:8081", "must be https://"),
        ("ftp://console.cn.example", "must start with https://"),
        ("console.cn.example", "must start with https://"),
        ("https://console.cn.example/?x=1", "query or fragment"),
        ("https://", "host"),
    ] {
        let error = public_url(bad).unwrap_err();
        assert!(error.contains(why), "{bad}: {error}");
    }
    // Named in the config's problems, with the key and the value.
    let mut problems = Problems::default();
    let file = ConsoleFile {
        listen: "127.0.0.1:8081".into(),
        officers: Vec::new(),
        public_url: Some("http://console.cn.example".into()),
        time_zone: None,
        trusted_proxies: Vec::new(),
    };
    assert!(console_config(&file, &mut problems).is_none());
    let text = problems
        .finish(Path::new("spoke.toml"), || ())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("console.public_url: \"http://console.cn.example\" must be https://"),
        "{text}"
    );
}

#[test]
fn officers_view_unless_given_roles_and_roles_are_checked() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$B4DDLhfCdLX/5QVxY9qqq5yG7tSAo2GqOqqMq+ISOUk";
    let console = |officers: &str| -> Result<ConsoleConfig, String> {
        let file: ConsoleFile = toml::from_str(&format!("listen = \"127.0.0.1:8081\"\n{officers}"))
            .map_err(|e| e.to_string())?;
        let mut problems = Problems::default();
        let console = console_config(&file, &mut problems);
        problems
            .finish(Path::new("spoke.toml"), || console.unwrap())
            .map_err(|e| e.to_string())
    };
    let account = |user: &str, roles: &str| {
        format!("[[officers]]\nuser = \"{user}\"\npassword_hash = \"{hash}\"\n{roles}\n")
    };
    // The existing accounts, with no roles written, become viewing officers.
    let c = console(&(account("ana", "") + &account("bo", "roles = [\"issuing\", \"approving\"]")))
        .unwrap();
    assert_eq!(c.officers[0].roles, [Role::Viewing]);
    assert!(c.officers[0].may(Role::Viewing) && !c.officers[0].may(Role::Issuing));
    assert!(c.officers[1].may(Role::Issuing) && c.officers[1].may(Role::Approving));
    assert!(c.officers[1].may(Role::Viewing), "every officer views");
    // No role, an unknown one, and one user twice are refused, each named.
    let e = console(&account("ana", "roles = []")).unwrap_err();
    assert!(
        e.contains("console.officers[0].roles: give at least one of viewing, issuing, approving"),
        "{e}"
    );
    let e = console(&account("ana", "roles = [\"admin\"]")).unwrap_err();
    assert!(e.contains("unknown variant `admin`"), "{e}");
    let e = console(&(account("ana", "") + &account("ana", ""))).unwrap_err();
    assert!(
        e.contains("console.officers[1].user: \"ana\" is given twice"),
        "{e}"
    );
}

#[test]
fn officer_languages_and_the_time_zone_are_checked() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$B4DDLhfCdLX/5QVxY9qqq5yG7tSAo2GqOqqMq+ISOUk";
    let officer = |language: Option<&str>| OfficerFile {
        user: format!("officer-{}", language.unwrap_or("any")),
        password_hash: hash.into(),
        language: language.map(Into::into),
        roles: vec![Role::Viewing],
    };
    let file = ConsoleFile {
        listen: "127.0.0.1:8081".into(),
        officers: vec![officer(Some("ru")), officer(None)],
        public_url: None,
        time_zone: Some("Asia/Almaty".into()),
        trusted_proxies: vec!["10.0.0.5".into(), "fd00::5".into()],
    };
    let mut problems = Problems::default();
    let console = console_config(&file, &mut problems).unwrap();
    assert!(problems.finish(Path::new("spoke.toml"), || ()).is_ok());
    assert_eq!(console.officers[0].language.map(Lang::tag), Some("ru"));
    assert_eq!(console.officers[1].language, None);
    assert_eq!(console.clock.name(), "Asia/Almaty");
    assert_eq!(
        console.trusted_proxies,
        [
            "10.0.0.5".parse::<std::net::IpAddr>().unwrap(),
            "fd00::5".parse().unwrap()
        ]
    );
    // Absent: UTC.
    let mut problems = Problems::default();
    let utc = console_config(
        &ConsoleFile {
            time_zone: None,
            ..file.clone()
        },
        &mut problems,
    )
    .unwrap();
    assert_eq!(utc.clock.name(), "UTC");

    let mut problems = Problems::default();
    console_config(
        &ConsoleFile {
            officers: vec![officer(Some("tlh"))],
            time_zone: Some("Asia/Almaty City".into()),
            trusted_proxies: vec!["10.0.0.5/32".into()],
            ..file
        },
        &mut problems,
    );
    let text = problems
        .finish(Path::new("spoke.toml"), || ())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("console.officers[0].language: \"tlh\" is not a language of the console (it speaks en, ru, zh)"),
        "{text}"
    );
    assert!(
        text.contains("console.time_zone: \"Asia/Almaty City\" is not a time zone"),
        "{text}"
    );
    assert!(
        text.contains("console.trusted_proxies[0]: \"10.0.0.5/32\": invalid IP address syntax"),
        "{text}"
    );
}

#[test]
fn bad_upload_rules_are_named() {
    let mut problems = Problems::default();
    UploadFile {
        grace_secs: 0,
        min_rate_bytes_per_sec: 0,
        room_wait_secs: 5000,
    }
    .check(&mut problems);
    let text = problems
        .finish(Path::new("spoke.toml"), || ())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("upload.grace_secs: must be between 1 and 3600"),
        "{text}"
    );
    assert!(
        text.contains("upload.min_rate_bytes_per_sec: must be at least 1"),
        "{text}"
    );
    assert!(text.contains("upload.room_wait_secs"), "{text}");
}

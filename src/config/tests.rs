use std::path::Path;

use super::file::read_config_file;
use super::*;

fn file(text: &str) -> ConfigFile {
    toml::from_str(text).unwrap()
}

fn flag(value: &str) -> Option<Sourced<String>> {
    Some(Sourced {
        value: value.into(),
        source: Origin::Flag,
    })
}

const SAMPLE: &str = r#"
    profile = "staging"

    [profiles.staging]
    brokers = "kafka-staging:9092"
    client_id = "ops"
    timeout = "3s"
    kafka = { "security.protocol" = "SASL_SSL", "sasl.password" = "hunter2", "socket.keepalive.enable" = true }
    thresholds = { max_lag = 5000, groups = { "dlq-processing-group" = { max_lag = 0 } } }

    [profiles.prod]
    brokers = "kafka-prod:9092"
"#;

#[test]
fn the_file_fills_what_flags_and_env_leave_unset() {
    let s = Settings::resolve(Overrides::default(), None, file(SAMPLE)).unwrap();
    assert_eq!(s.brokers.value, "kafka-staging:9092");
    assert_eq!(s.brokers.source, Origin::File);
    assert_eq!(s.client_id.value, "ops");
    assert_eq!(s.timeout.value, Duration::from_secs(3));
    assert_eq!(s.kafka["socket.keepalive.enable"].value, "true");
    assert_eq!(s.thresholds.max_lag_for("order-status-group"), 5000);
    assert_eq!(s.thresholds.max_lag_for("dlq-processing-group"), 0);
    assert_eq!(s.metrics_addr.source, Origin::Default);
}

#[test]
fn flags_win_over_the_file_and_x_wins_over_profile_properties() {
    let overrides = Overrides {
        brokers: flag("other:9092"),
        profile: flag("staging"),
        kafka: vec![("sasl.password".into(), "from-flag".into())],
        ..Overrides::default()
    };
    let s = Settings::resolve(overrides, None, file(SAMPLE)).unwrap();
    assert_eq!(s.brokers.value, "other:9092");
    assert_eq!(s.brokers.source, Origin::Flag);
    assert_eq!(s.kafka["sasl.password"].value, "from-flag");
    assert_eq!(s.kafka["security.protocol"].value, "SASL_SSL");
}

#[test]
fn the_chosen_profile_overrides_the_file_default() {
    let overrides = Overrides {
        profile: flag("prod"),
        ..Overrides::default()
    };
    let s = Settings::resolve(overrides, None, file(SAMPLE)).unwrap();
    assert_eq!(s.brokers.value, "kafka-prod:9092");
    assert!(s.kafka.is_empty());
    assert_eq!(s.thresholds.max_lag, 1000);
}

#[test]
fn an_unknown_profile_names_the_known_ones() {
    let overrides = Overrides {
        profile: flag("qa"),
        ..Overrides::default()
    };
    let err = Settings::resolve(overrides, Some("/etc/smm.toml".into()), file(SAMPLE)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("profile `qa` is not defined in /etc/smm.toml"),
        "{text}"
    );
    assert!(text.contains("prod, staging"), "{text}");
}

#[test]
fn bad_values_are_usage_errors_naming_the_key() {
    let cases = [
        (
            r#"[profiles.a]
            timeout = "soon""#,
            "key `timeout`",
        ),
        (
            r#"[profiles.a]
            thresholds = { max_error_rate = 5.0 }"#,
            "thresholds.max_error_rate",
        ),
        (
            r#"[profiles.a]
            thresholds = { max_lag = -1 }"#,
            "thresholds.max_lag",
        ),
        (
            r#"[profiles.a]
            kafka = { "bootstrap.servers" = "x:1" }"#,
            "bootstrap.servers",
        ),
        (
            r#"[profiles.a]
            kafka = { "a" = [1] }"#,
            "kafka.a",
        ),
    ];
    for (text, needle) in cases {
        let overrides = Overrides {
            profile: flag("a"),
            ..Overrides::default()
        };
        let err = Settings::resolve(overrides, Some("c.toml".into()), file(text)).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn secrets_can_live_in_files_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    // A variable every process has, so the test need not set one while
    // other tests read the environment.
    let path_var = std::env::var("PATH").unwrap();
    let text = format!(
        "[profiles.a.kafka]\n\"sasl.password\" = {{ file = \"{}\" }}\n\"ssl.key.password\" = {{ env = \"PATH\" }}\n",
        secret.display()
    );
    let overrides = Overrides {
        profile: flag("a"),
        ..Overrides::default()
    };
    let s = Settings::resolve(overrides.clone(), None, file(&text)).unwrap();
    assert_eq!(s.kafka["sasl.password"].value, "from-a-file");
    assert_eq!(s.kafka["ssl.key.password"].value, path_var);

    let missing = "[profiles.a.kafka]\n\"sasl.password\" = { file = \"/nonexistent/pw\" }\n";
    let err = Settings::resolve(overrides.clone(), None, file(missing))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read the secret file /nonexistent/pw"),
        "{err}"
    );
    let unset = "[profiles.a.kafka]\n\"sasl.password\" = { env = \"SMM_TEST_NEVER_SET_42\" }\n";
    let err = Settings::resolve(overrides.clone(), None, file(unset))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SMM_TEST_NEVER_SET_42 is not set"), "{err}");
    let odd = "[profiles.a.kafka]\n\"sasl.password\" = { vault = \"x\" }\n";
    let err = Settings::resolve(overrides, None, file(odd))
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected { file"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[profiles.a]\nbrokers = \"x:1\"\nbrokrs = \"y\"\n").unwrap();
    let err = read_config_file(&path, true).unwrap_err().to_string();
    assert!(err.contains("c.toml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("brokrs"), "{err}");
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let err = read_config_file(Path::new("/nonexistent/smm.toml"), true).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/smm.toml"));
}

#[test]
fn durations_parse_as_operators_write_them() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("-5s").is_err());
    assert!(parse_duration("soon").is_err());
}

#[test]
fn kafka_properties_need_a_key_and_an_equals_sign() {
    assert_eq!(
        parse_kafka_property("a.b=c=d"),
        Ok(("a.b".into(), "c=d".into()))
    );
    assert_eq!(parse_kafka_property("a="), Ok(("a".into(), String::new())));
    assert!(parse_kafka_property("=x").is_err());
    assert!(parse_kafka_property("novalue").is_err());
}

#[test]
fn secrets_are_recognised_and_masked() {
    for key in [
        "sasl.password",
        "ssl.key.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "cryptomus_api_key",
        "sasl.oauthbearer.assertion.private.key.passphrase",
    ] {
        assert!(is_secret_key(key), "{key}");
    }
    for key in [
        "security.protocol",
        "sasl.username",
        "ssl.ca.location",
        "ssl.key.location",
    ] {
        assert!(!is_secret_key(key), "{key}");
    }
    let cases = [
        (
            "postgres://smm:s3cret@db:5432/panel",
            "postgres://smm:****@db:5432/panel",
        ),
        (
            "postgres://smm:pa/ss@db/panel",
            "postgres://smm:****@db/panel",
        ),
        (
            "postgres://smm:pa#s?s@db/panel",
            "postgres://smm:****@db/panel",
        ),
        ("postgres://smm@db/panel", "postgres://smm@db/panel"),
        (
            "postgres://db/panel?user=smm&password=hunter2&sslmode=require",
            "postgres://db/panel?user=smm&password=****&sslmode=require",
        ),
        (
            "host=db user=smm password=hunter2 dbname=panel",
            "host=db user=smm password=**** dbname=panel",
        ),
        ("sqlite:///var/lib/panel.db", "sqlite:///var/lib/panel.db"),
    ];
    for (url, masked) in cases {
        assert_eq!(mask_url_password(url), masked, "{url}");
    }
}

//! Every rule, allowed and refused, through `Policy::compile` and `Policy::evaluate`.

use std::collections::BTreeMap;

use kmssh_pki::csr::CertificateSigningRequest;
use kmssh_pki::{CertificateType, CriticalOption, Extension, ResolvedParameters};

use super::*;
use crate::AuthMethod;

const NOW: u64 = 1_700_000_000;
const HOUR: u64 = 3600;
const KEYS: [&str; 2] = ["ca", "other"];

fn config() -> PolicyConfig {
    PolicyConfig {
        keys: vec!["ca".into()],
        certificate_types: vec!["user".into()],
        principals: vec!["alice".into(), "dev-*".into(), "{caller}-admin".into()],
        max_validity: "8h".into(),
        backdate: None,
        critical_options: OptionRules::none(),
        extensions: OptionRules::openssh_default_extensions(),
        serial: None,
        allow_empty_principals: false,
        revoke: false,
    }
}

fn compile(config: &PolicyConfig) -> Policy {
    Policy::compile("dev", config, &KEYS).expect("policy compiles")
}

fn compile_error(config: &PolicyConfig) -> PolicyConfigError {
    Policy::compile("dev", config, &KEYS).expect_err("policy is refused")
}

fn identity() -> Identity {
    Identity {
        caller: "alice".into(),
        policy: "dev".into(),
        method: AuthMethod::Token,
        attributes: BTreeMap::from([("caller".to_owned(), "alice".to_owned())]),
    }
}

fn request() -> CertificateSigningRequest {
    let key = kmssh_pki::ssh_key::PublicKey::from_openssh(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+mUfWhy68OyDH7y/xSu4B+yWoc1v7yVCUIgHNE6RYR",
    )
    .expect("test key parses");
    CertificateSigningRequest {
        cert_type: CertificateType::User,
        critical_options: Vec::new(),
        extensions: vec![Extension::PermitPty],
        key_id: String::new(),
        serial: 0,
        principals: vec!["alice".into()],
        valid_after: 0,
        valid_before: 0,
        public_key: key.key_data().clone(),
    }
}

fn allow(policy: &Policy, request: &CertificateSigningRequest) -> (Decision, ResolvedParameters) {
    let decision = policy
        .evaluate(&identity(), "ca", request, NOW)
        .expect("request is allowed");
    let resolved = decision
        .parameters
        .resolve(NOW)
        .expect("parameters resolve");
    (decision, resolved)
}

fn refuse(policy: &Policy, request: &CertificateSigningRequest) -> Refusal {
    policy
        .evaluate(&identity(), "ca", request, NOW)
        .expect_err("request is refused")
}

#[test]
fn a_plain_request_gets_exactly_what_it_asked_for() {
    let (decision, r) = allow(&compile(&config()), &request());
    assert_eq!(r.cert_type, CertificateType::User);
    assert_eq!(r.principals, ["alice"]);
    assert_eq!(r.serial, None, "the service sets the serial");
    assert_eq!(decision.serial_requested, None);
    assert_eq!(
        r.extensions.keys().collect::<Vec<_>>(),
        ["permit-pty"],
        "no default extensions are added"
    );
    assert!(r.critical_options.is_empty());
}

#[test]
fn refusals_display_their_rule() {
    let refusal = Refusal::new("keys", "no");
    assert_eq!(refusal.to_string(), "policy rule `keys`: no");
}

#[test]
fn rule_policy_the_identity_must_be_bound_to_this_policy() {
    let policy = compile(&config());
    assert!(policy.evaluate(&identity(), "ca", &request(), NOW).is_ok());
    let mut stranger = identity();
    stranger.policy = "prod".into();
    let refusal = policy
        .evaluate(&stranger, "ca", &request(), NOW)
        .expect_err("bound to another policy");
    assert_eq!(refusal.rule, "policy");
}

#[test]
fn rule_keys() {
    let policy = compile(&config());
    assert!(policy.allows_key("ca"));
    assert!(!policy.allows_key("other"));
    assert!(policy.evaluate(&identity(), "ca", &request(), NOW).is_ok());
    let refusal = policy
        .evaluate(&identity(), "other", &request(), NOW)
        .expect_err("key not in the policy");
    assert_eq!(refusal.rule, "keys");
    assert!(refusal.message.contains("\"other\""), "{refusal}");
}

#[test]
fn rule_certificate_types() {
    let user_only = compile(&config());
    let mut host = request();
    host.cert_type = CertificateType::Host;
    host.extensions.clear();
    let refusal = refuse(&user_only, &host);
    assert_eq!(refusal.rule, "certificate_types");
    assert!(refusal.message.contains("host"), "{refusal}");

    let mut both = config();
    both.certificate_types = vec!["user".into(), "host".into()];
    let (_, r) = allow(&compile(&both), &host);
    assert_eq!(r.cert_type, CertificateType::Host);
    assert!(r.extensions.is_empty());
}

#[test]
fn rule_principals_exact_glob_and_template() {
    let policy = compile(&config());
    let mut req = request();
    req.principals = vec!["alice".into(), "dev-web".into(), "alice-admin".into()];
    let (_, r) = allow(&policy, &req);
    assert_eq!(r.principals, ["alice", "dev-web", "alice-admin"]);

    for bad in ["root", "Alice", "bob-admin", "prod-web"] {
        let mut req = request();
        req.principals = vec!["alice".into(), bad.into()];
        let refusal = refuse(&policy, &req);
        assert_eq!(refusal.rule, "principals", "{bad}");
        assert!(refusal.message.contains(bad), "{refusal}");
    }
}

#[test]
fn rule_principals_template_with_a_missing_attribute_matches_nothing() {
    let mut cfg = config();
    cfg.principals = vec!["{claim.email.local}".into()];
    let policy = compile(&cfg);
    let mut req = request();
    assert_eq!(refuse(&policy, &req).rule, "principals");

    let mut oidc = identity();
    oidc.attributes
        .insert("claim.email".into(), "alice@example.com".into());
    req.principals = vec!["alice".into()];
    assert!(policy.evaluate(&oidc, "ca", &req, NOW).is_ok());
}

#[test]
fn rule_principals_empty_list() {
    let mut req = request();
    req.principals.clear();
    let refusal = refuse(&compile(&config()), &req);
    assert_eq!(refusal.rule, "principals");
    assert!(refusal.message.contains("any principal"), "{refusal}");

    let mut cfg = config();
    cfg.allow_empty_principals = true;
    let (_, r) = allow(&compile(&cfg), &req);
    assert!(r.principals.is_empty());
}

#[test]
fn rule_max_validity_unrequested_end_is_clamped() {
    let (decision, r) = allow(&compile(&config()), &request());
    assert!(decision.clamped);
    assert_eq!(r.valid_after, NOW - 60, "default backdate is 1m");
    assert_eq!(r.valid_before, NOW - 60 + 8 * HOUR);
}

#[test]
fn rule_max_validity_requested_window() {
    let policy = compile(&config());
    let mut req = request();
    req.valid_after = NOW;
    req.valid_before = NOW + 8 * HOUR;
    let (decision, r) = allow(&policy, &req);
    assert!(!decision.clamped);
    assert_eq!((r.valid_after, r.valid_before), (NOW, NOW + 8 * HOUR));

    // Only an end is requested: the start is now − backdate.
    req.valid_after = 0;
    req.valid_before = NOW + HOUR;
    let (_, r) = allow(&policy, &req);
    assert_eq!((r.valid_after, r.valid_before), (NOW - 60, NOW + HOUR));

    for before in [NOW + 8 * HOUR + 1, u64::MAX] {
        req.valid_after = NOW;
        req.valid_before = before;
        let refusal = refuse(&policy, &req);
        assert_eq!(refusal.rule, "max_validity");
        assert!(refusal.message.contains("max_validity is 8h"), "{refusal}");
    }
}

#[test]
fn rule_max_validity_future_start_still_ends_within_the_max() {
    let policy = compile(&config());
    let mut req = request();
    req.valid_after = NOW + HOUR;
    let (decision, r) = allow(&policy, &req);
    assert!(decision.clamped);
    assert_eq!(
        (r.valid_after, r.valid_before),
        (NOW + HOUR, NOW + 8 * HOUR)
    );

    req.valid_before = NOW + 9 * HOUR;
    assert_eq!(refuse(&policy, &req).rule, "max_validity");
}

#[test]
fn rule_backdate() {
    let policy = compile(&config());
    let mut req = request();
    req.valid_after = NOW - 60;
    let (_, r) = allow(&policy, &req);
    assert_eq!(r.valid_after, NOW - 60);

    req.valid_after = NOW - 61;
    let refusal = refuse(&policy, &req);
    assert_eq!(refusal.rule, "backdate");
    assert!(refusal.message.contains("at most 1m early"), "{refusal}");

    let mut cfg = config();
    cfg.backdate = Some("1h".into());
    let policy = compile(&cfg);
    req.valid_after = NOW - HOUR;
    req.valid_before = NOW + 8 * HOUR;
    assert!(policy.evaluate(&identity(), "ca", &req, NOW).is_ok());
    let (_, r) = allow(&policy, &request());
    assert_eq!(r.valid_after, NOW - HOUR);
}

#[test]
fn rule_valid_after_must_precede_valid_before() {
    let policy = compile(&config());
    let mut req = request();
    req.valid_after = NOW + 10;
    req.valid_before = NOW + 11;
    assert!(policy.evaluate(&identity(), "ca", &req, NOW).is_ok());

    for before in [NOW + 10, NOW + 9] {
        req.valid_before = before;
        assert_eq!(refuse(&policy, &req).rule, "valid_after");
    }
    // A start no certificate within the max could follow.
    req.valid_after = NOW + 8 * HOUR;
    req.valid_before = 0;
    assert_eq!(refuse(&policy, &req).rule, "valid_after");
}

#[test]
fn rule_critical_options_none_allowed_by_default() {
    let policy = compile(&config());
    let mut req = request();
    req.critical_options = vec![CriticalOption::ForceCommand("/bin/sh".into())];
    let refusal = refuse(&policy, &req);
    assert_eq!(refusal.rule, "critical_options");
    assert!(refusal.message.contains("allowed: none"), "{refusal}");
}

#[test]
fn rule_critical_options_allowed_and_forced() {
    let mut cfg = config();
    cfg.critical_options = OptionRules {
        allowed: vec!["source-address".into()],
        forced: BTreeMap::from([("force-command".into(), "/usr/bin/backup".into())]),
    };
    let policy = compile(&cfg);

    let mut req = request();
    req.critical_options = vec![CriticalOption::SourceAddress("10.0.0.0/8".into())];
    let (_, r) = allow(&policy, &req);
    assert_eq!(
        r.critical_options,
        BTreeMap::from([
            ("force-command".into(), "/usr/bin/backup".into()),
            ("source-address".into(), "10.0.0.0/8".into()),
        ])
    );

    // Repeating the forced value is fine; another value is refused.
    req.critical_options = vec![CriticalOption::ForceCommand("/usr/bin/backup".into())];
    let (_, r) = allow(&policy, &req);
    assert_eq!(r.critical_options.len(), 1);
    req.critical_options = vec![CriticalOption::ForceCommand("/bin/sh".into())];
    let refusal = refuse(&policy, &req);
    assert_eq!(refusal.rule, "critical_options");
    assert!(refusal.message.contains("conflicts"), "{refusal}");

    req.critical_options = vec![CriticalOption::VerifyRequired];
    assert_eq!(refuse(&policy, &req).rule, "critical_options");
}

#[test]
fn rule_extensions_defaults_allow_openssh_five() {
    let policy = compile(&config());
    let mut req = request();
    req.extensions = Extension::USER_DEFAULTS.to_vec();
    let (_, r) = allow(&policy, &req);
    assert_eq!(r.extensions.len(), 5);

    req.extensions = vec![Extension::NoTouchRequired];
    let refusal = refuse(&policy, &req);
    assert_eq!(refusal.rule, "extensions");
    assert!(refusal.message.contains("no-touch-required"), "{refusal}");
}

#[test]
fn rule_extensions_empty_stays_empty_plus_forced() {
    let mut req = request();
    req.extensions.clear();
    let (_, r) = allow(&compile(&config()), &req);
    assert!(
        r.extensions.is_empty(),
        "no defaults added: {:?}",
        r.extensions
    );

    let mut cfg = config();
    cfg.extensions = OptionRules {
        allowed: vec!["login@example.com".into()],
        forced: BTreeMap::from([
            ("permit-pty".into(), String::new()),
            ("team@example.com".into(), "ops".into()),
        ]),
    };
    let policy = compile(&cfg);
    let (_, r) = allow(&policy, &req);
    assert_eq!(
        r.extensions,
        BTreeMap::from([
            ("permit-pty".into(), String::new()),
            ("team@example.com".into(), "ops".into()),
        ])
    );

    req.extensions = vec![Extension::Custom {
        name: "login@example.com".into(),
        value: "alice".into(),
    }];
    let (_, r) = allow(&policy, &req);
    assert_eq!(r.extensions.len(), 3);

    req.extensions = vec![Extension::Custom {
        name: "team@example.com".into(),
        value: "admins".into(),
    }];
    assert_eq!(refuse(&policy, &req).rule, "extensions");
    req.extensions = vec![Extension::PermitAgentForwarding];
    assert_eq!(refuse(&policy, &req).rule, "extensions");
}

#[test]
fn rule_serial_assign() {
    let policy = compile(&config());
    assert_eq!(policy.serial_mode(), SerialMode::Assign);
    let (decision, _) = allow(&policy, &request());
    assert_eq!(decision.serial_requested, None);

    let mut req = request();
    req.serial = 42;
    let refusal = refuse(&policy, &req);
    assert_eq!(refusal.rule, "serial");
    assert!(
        refusal.message.contains("serial = \"requested\""),
        "{refusal}"
    );
}

#[test]
fn rule_serial_requested() {
    let mut cfg = config();
    cfg.serial = Some("requested".into());
    let policy = compile(&cfg);
    let mut req = request();
    req.serial = 42;
    let (decision, r) = allow(&policy, &req);
    assert_eq!(decision.serial_requested, Some(42));
    assert_eq!(r.serial, None, "the service sets it once claimed");
    req.serial = 0;
    assert_eq!(allow(&policy, &req).0.serial_requested, Some(0));

    cfg.serial = Some("random".into());
    assert_eq!(compile_error(&cfg).field, "serial");
}

#[test]
fn rule_key_id() {
    let policy = compile(&config());
    let (_, r) = allow(&policy, &request());
    assert_eq!(r.key_id, "alice", "empty key id becomes the caller");

    let mut req = request();
    req.key_id = "laptop".into();
    assert_eq!(allow(&policy, &req).1.key_id, "laptop");

    req.key_id = "laptop\nPrincipals: root".into();
    assert_eq!(refuse(&policy, &req).rule, "key_id");
}

#[test]
fn compile_refuses_bad_configuration_naming_the_field() {
    type Change = fn(&mut PolicyConfig);
    let cases: Vec<(&str, Change)> = vec![
        ("keys", |c| c.keys.clear()),
        ("keys", |c| c.keys = vec!["nope".into()]),
        ("certificate_types", |c| c.certificate_types.clear()),
        ("certificate_types", |c| {
            c.certificate_types = vec!["User".into()];
        }),
        ("principals", |c| c.principals = vec!["{calller}".into()]),
        ("principals", |c| c.principals = vec!["{caller".into()]),
        ("max_validity", |c| c.max_validity = "8 hours".into()),
        ("max_validity", |c| c.max_validity = "0".into()),
        ("backdate", |c| c.backdate = Some("-1m".into())),
        ("critical_options.allowed", |c| {
            c.critical_options.allowed = vec!["permit-pty".into()];
        }),
        ("critical_options.forced.source-address", |c| {
            c.critical_options.forced = BTreeMap::from([("source-address".into(), "nope".into())]);
        }),
        ("critical_options.forced.force-command", |c| {
            c.certificate_types = vec!["user".into(), "host".into()];
            c.critical_options.forced = BTreeMap::from([("force-command".into(), "id".into())]);
        }),
        ("extensions.allowed", |c| {
            c.extensions.allowed = vec!["permit-everything".into()];
        }),
        ("extensions.forced.permit-pty", |c| {
            c.extensions.forced = BTreeMap::from([("permit-pty".into(), "yes".into())]);
        }),
        ("serial", |c| c.serial = Some("Assign".into())),
    ];
    for (field, change) in cases {
        let mut cfg = config();
        change(&mut cfg);
        let error = compile_error(&cfg);
        assert_eq!(error.field, field, "{error}");
        assert_eq!(error.policy, "dev");
        assert!(
            error
                .to_string()
                .starts_with(&format!("policy `dev`: {field}: ")),
            "{error}"
        );
    }
    let error = compile_error(&PolicyConfig {
        keys: vec!["missing".into()],
        ..config()
    });
    assert!(error.message.contains("configured: ca, other"), "{error}");
}

#[test]
fn compile_accepts_every_openssh_name_and_custom_ones() {
    let mut cfg = config();
    cfg.critical_options.allowed = vec![
        "force-command".into(),
        "source-address".into(),
        "verify-required".into(),
        "tag@example.com".into(),
    ];
    cfg.extensions.allowed = vec![
        "no-touch-required".into(),
        "permit-X11-forwarding".into(),
        "permit-agent-forwarding".into(),
        "permit-port-forwarding".into(),
        "permit-pty".into(),
        "permit-user-rc".into(),
        "login@example.com".into(),
    ];
    cfg.critical_options.forced = BTreeMap::from([("verify-required".into(), String::new())]);
    let policy = compile(&cfg);
    assert_eq!(policy.name(), "dev");
    assert_eq!(policy.max_validity(), 8 * HOUR);
}

#[test]
fn configuration_defaults_and_unknown_fields() {
    let cfg: PolicyConfig = serde_json::from_value(serde_json::json!({
        "keys": ["ca"],
        "certificate_types": ["user"],
        "principals": ["{caller}"],
        "max_validity": "8h",
    }))
    .expect("minimal policy deserializes");
    assert_eq!(cfg.backdate, None);
    assert_eq!(cfg.serial, None);
    assert!(!cfg.allow_empty_principals);
    assert_eq!(cfg.critical_options, OptionRules::none());
    assert_eq!(cfg.extensions, OptionRules::openssh_default_extensions());
    assert_eq!(cfg.extensions.allowed.len(), 5);
    let policy = compile(&cfg);
    assert_eq!(policy.serial_mode(), SerialMode::Assign);

    for bad in [
        serde_json::json!({"keys": ["ca"], "certificate_types": ["user"], "principals": [],
            "max_validity": "8h", "max_valdity": "9h"}),
        serde_json::json!({"keys": ["ca"], "certificate_types": ["user"], "principals": [],
            "max_validity": "8h", "extensions": {"allow": ["permit-pty"]}}),
        serde_json::json!({"keys": ["ca"], "certificate_types": ["user"], "principals": []}),
    ] {
        assert!(
            serde_json::from_value::<PolicyConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

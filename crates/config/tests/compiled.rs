//! What a compiled config enforces, and the published schema it is checked against.
#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test helper is a failed test"
)]

use functionary_config::{CompiledConfig, DiagnosticCode, UndeclaredEvents, load_config};
use serde_json::{Value, json};

fn example(name: &str) -> CompiledConfig {
    let path = format!(
        "{}/../../tenants.example/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = functionary_config::read_config_file(path.as_ref()).unwrap();
    load_config(&file.text, &file.stem).unwrap()
}

fn compile(yaml: &str) -> CompiledConfig {
    load_config(yaml, "test").unwrap_or_else(|findings| panic!("{findings:#?}"))
}

#[test]
fn examples_compile_with_models_in_declared_order() {
    let acme = example("acme");
    assert_eq!(acme.tenant(), "acme");
    let names: Vec<&str> = acme.models().iter().map(|model| model.name()).collect();
    assert_eq!(names, ["organization", "customer"]);
    assert_eq!(
        acme.model("customer").unwrap().parents(),
        Some(&["organization".to_owned()][..])
    );
    assert!(acme.event("sign_up").is_some());
    assert_eq!(acme.undeclared_events(), UndeclaredEvents::Accept);

    let bazaar = example("bazaar");
    assert_eq!(bazaar.undeclared_events(), UndeclaredEvents::Reject);
}

#[test]
fn tenant_defaults_to_the_file_stem() {
    let config = load_config("models: [{name: customer}]", "from-stem").unwrap();
    assert_eq!(config.tenant(), "from-stem");
    assert_eq!(config.model("customer").unwrap().parents(), None);
}

#[test]
fn format_email_is_enforced() {
    let config = compile(
        "models:\n  - name: customer\n    schema: {properties: {email: {type: string, format: email}}}",
    );
    let customer = config.model("customer").unwrap();
    assert!(
        customer
            .validate(&json!({"email": "ada@example.com"}))
            .is_ok()
    );
    let violations = customer
        .validate(&json!({"email": "not-an-email"}))
        .unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].pointer, "/email");
    assert!(
        violations[0].message.contains("email"),
        "{}",
        violations[0].message
    );
}

#[test]
fn other_formats_are_enforced_too() {
    let config = compile(
        "models:\n  - name: m\n    schema:\n      properties:\n        at: {format: date-time}\n        \
         id: {format: uuid}\n        home: {format: uri}\n        mail: {format: idn-email}",
    );
    let model = config.model("m").unwrap();
    let good = json!({"at": "2026-12-04T10:00:00Z", "id": "0193a0e4-7b1c-7cc3-9e1a-2f4d5c6b7a89",
        "home": "https://example.com/", "mail": "ada@exämple.com"});
    assert!(model.validate(&good).is_ok());
    let bad = json!({"at": "yesterday", "id": "42", "home": "not a uri", "mail": "nope"});
    let pointers: Vec<String> = model
        .validate(&bad)
        .unwrap_err()
        .into_iter()
        .map(|violation| violation.pointer)
        .collect();
    assert_eq!(pointers.len(), 4, "{pointers:?}");
}

#[test]
fn every_violation_is_reported_with_its_pointer() {
    let acme = example("acme");
    let organization = acme.model("organization").unwrap();
    let mut pointers: Vec<String> = organization
        .validate(&json!({"plan": "gold", "seats": 0, "domain": "-bad-", "colour": "red"}))
        .unwrap_err()
        .into_iter()
        .map(|violation| violation.pointer)
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["", "/domain", "/plan", "/seats"]);
}

#[test]
fn catastrophic_backtracking_pattern_is_linear() {
    // `^(a+)+$` takes exponential time on a backtracking engine; on the linear-time engine a
    // 100 000-character near-match is refused at once (the test would hang otherwise).
    let config =
        compile("models:\n  - name: m\n    schema: {properties: {code: {pattern: '^(a+)+$'}}}");
    let evil = format!("{}!", "a".repeat(100_000));
    let model = config.model("m").unwrap();
    assert!(model.validate(&json!({"code": evil})).is_err());
    assert!(model.validate(&json!({"code": "aaaa"})).is_ok());
}

#[test]
fn events_validate_their_properties() {
    let acme = example("acme");
    let call = acme.event("production_api_call").unwrap();
    assert_eq!(
        call.for_models(),
        Some(&["customer".to_owned(), "organization".to_owned()][..])
    );
    assert!(
        call.validate(&json!({"endpoint": "/v2/invoices", "statusCode": 200}))
            .is_ok()
    );
    let violations = call.validate(&json!({"statusCode": 99})).unwrap_err();
    assert_eq!(violations.len(), 2, "{violations:?}");
}

#[test]
fn junk_ids_are_blocked_case_insensitively() {
    let acme = example("acme");
    for junk in [
        "null",
        "NULL",
        " undefined ",
        "None",
        "NaN",
        "0",
        "-1",
        "anonymous",
        "Unknown",
        "[object Object]",
        "",
        "   ",
        "guest",
        "Test-User",
    ] {
        assert!(acme.is_blocked_id(junk), "{junk:?} should be blocked");
    }
    for fine in ["10", "ada@example.com", "usr_91kQ", "00", "guests"] {
        assert!(!acme.is_blocked_id(fine), "{fine:?} should be allowed");
    }
    // Another tenant's blocked ids are its own.
    assert!(!example("bazaar").is_blocked_id("guest"));
}

#[test]
fn a_model_without_a_schema_accepts_any_object_only() {
    let config = compile("models: [{name: m}]");
    let model = config.model("m").unwrap();
    assert!(
        model
            .validate(&json!({"anything": [1, {"deep": true}]}))
            .is_ok()
    );
    assert!(model.validate(&json!([1, 2])).is_err());
}

#[test]
fn oversized_config_is_refused_before_parsing() {
    let huge = format!(
        "models: [{{name: m}}]\n#{}",
        "x".repeat(functionary_config::MAX_CONFIG_BYTES)
    );
    let findings = load_config(&huge, "big").unwrap_err();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].code, DiagnosticCode::TooLarge);
}

#[test]
fn slug_rule_agrees_with_the_published_schema() {
    let schema: Value = serde_json::from_str(functionary_config::TENANT_CONFIG_SCHEMA).unwrap();
    let pattern = schema["properties"]["tenant"]["pattern"].as_str().unwrap();
    assert_eq!(pattern, "^[a-z0-9][a-z0-9-]{0,62}$");
    let validator = jsonschema::validator_for(&json!({"pattern": pattern})).unwrap();
    for slug in [
        "acme",
        "a",
        "9",
        "north-wind-eu",
        "-acme",
        "Acme",
        "ac_me",
        "",
        &"a".repeat(63),
        &"a".repeat(64),
    ] {
        assert_eq!(
            functionary_config::is_valid_slug(slug),
            validator.is_valid(&json!(slug)),
            "slug {slug:?}"
        );
    }
}

fn examples_as_json() -> Vec<Value> {
    ["acme", "bazaar"]
        .iter()
        .map(|name| {
            let path = format!(
                "{}/../../tenants.example/{name}.yaml",
                env!("CARGO_MANIFEST_DIR")
            );
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn published_schemas_are_valid_and_agree_on_the_examples() {
    let root = format!("{}/../../schemas", env!("CARGO_MANIFEST_DIR"));
    let current: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/tenant-config.schema.json")).unwrap(),
    )
    .unwrap();
    let draft7: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/tenant-config.draft-07.schema.json")).unwrap(),
    )
    .unwrap();
    jsonschema::draft202012::meta::validate(&current).unwrap();
    jsonschema::draft7::meta::validate(&draft7).unwrap();
    let current = jsonschema::draft202012::new(&current).unwrap();
    let draft7 = jsonschema::draft7::new(&draft7).unwrap();
    for example in examples_as_json() {
        assert!(current.is_valid(&example));
        assert!(draft7.is_valid(&example));
    }
    for bad in [
        json!({"models": [{"name": "m"}], "modles": []}),
        json!({"models": [{"name": "9bad"}]}),
        json!({"models": []}),
        json!({"models": [{"name": "m"}], "events": [{"name": "onFunctionaryIdentify"}]}),
        json!({"models": [{"name": "m"}], "settings": {"undeclaredEvents": "maybe"}}),
    ] {
        assert!(!current.is_valid(&bad), "{bad}");
        assert!(!draft7.is_valid(&bad), "{bad}");
    }
}

//! The OpenAPI document is an artifact tenants generate clients from: any change to it shows up
//! here as a snapshot diff to review.

use serde_json::Value;

#[test]
fn openapi_document_matches_the_snapshot() {
    let spec: Value =
        serde_json::from_str(&functionary_api::openapi_json()).expect("the spec is JSON");
    insta::assert_json_snapshot!("openapi", spec);
}

#[test]
fn the_cli_prints_the_same_document() {
    let mut out = Vec::new();
    let mut err = Vec::new();
    assert_eq!(
        functionary_cli::run(["functionary", "openapi"], &mut out, &mut err),
        0
    );
    let printed: Value = serde_json::from_slice(&out).expect("functionary openapi prints JSON");
    let served: Value =
        serde_json::from_str(&functionary_api::openapi_json()).expect("the spec is JSON");
    assert_eq!(printed, served);
}

#[test]
fn the_spec_describes_ids_as_string_or_integer_and_optional_fields_as_absent() {
    let spec: Value =
        serde_json::from_str(&functionary_api::openapi_json()).expect("the spec is JSON");
    let identify = &spec["components"]["schemas"]["IdentifyRequest"];
    let ids = &identify["properties"]["ids"]["items"];
    let kinds: Vec<&str> = ids["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|kind| kind["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["string", "integer"]);
    assert!(
        ids.get("type").is_none(),
        "no `type: object` beside the oneOf"
    );
    assert_eq!(
        identify["additionalProperties"],
        Value::Bool(false),
        "unknown fields are refused"
    );
    let result = &spec["components"]["schemas"]["EventResult"];
    for optional in ["eventId", "instanceId", "duplicate", "reason"] {
        assert!(
            result["properties"][optional].get("nullable").is_none(),
            "{optional} is never null"
        );
    }
}

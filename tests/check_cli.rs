//! `functionary check` as a CI job runs it: exit codes, `file:line:column` lines, JSON output.

use std::path::{Path, PathBuf};

use serde_json::Value;

struct Outcome {
    code: u8,
    stdout: String,
    stderr: String,
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check(args: &[&str]) -> Outcome {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let argv = ["functionary", "check"].iter().chain(args).copied();
    let code = functionary_cli::run(argv, &mut stdout, &mut stderr);
    Outcome {
        code,
        stdout: String::from_utf8(stdout).expect("utf-8 output"),
        stderr: String::from_utf8(stderr).expect("utf-8 output"),
    }
}

fn fixture(name: &str) -> String {
    repo("tests/fixtures/config")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn example_tenants_pass() {
    let outcome = check(&[repo("tenants.example").to_str().unwrap()]);
    assert_eq!(outcome.code, 0, "{}{}", outcome.stdout, outcome.stderr);
    assert_eq!(outcome.stdout, "");
    assert!(
        outcome.stderr.contains("checked 2 files: 0 errors"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn each_broken_file_fails_with_located_errors() {
    let cases = [
        ("unknown_key.yaml", "3:5: unknown key `nmae`"),
        (
            "dangling_parent.yaml",
            "5:15: parent `organisation` is not a model declared",
        ),
        (
            "invalid_schema_type.yaml",
            "7:21: \"integr\" is not a JSON Schema type",
        ),
        (
            "duplicate_model.yaml",
            "5:11: model `customer` is declared twice",
        ),
        ("duplicate_yaml_key.yaml", "5:5: duplicate key \"schema\""),
        (
            "ref_file.yaml",
            "7:24: `$ref` to \"file:///etc/passwd\" is not allowed",
        ),
        (
            "ref_url.yaml",
            "7:13: `$ref` to \"https://example.com/schemas/sign-up.json\"",
        ),
        ("broken_yaml.yaml", "5:9: did not find expected ',' or ']'"),
    ];
    for (name, expected) in cases {
        let path = fixture(name);
        let outcome = check(&[&path]);
        assert_eq!(outcome.code, 1, "{name}: {}", outcome.stdout);
        assert!(
            outcome.stdout.starts_with(&format!("{path}:{expected}")),
            "{name}: {}",
            outcome.stdout
        );
    }
}

#[test]
fn json_format_lists_the_same_errors() {
    let path = fixture("unknown_key.yaml");
    let text = check(&[&path]);
    let json = check(&["--format", "json", &path]);
    assert_eq!(json.code, 1);
    let rows: Vec<Value> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows.len(), text.stdout.lines().count());
    assert_eq!(
        rows[0],
        serde_json::json!({
            "file": path, "line": 3, "column": 5, "pointer": "/models/0/nmae",
            "code": "unknown_key", "message": "unknown key `nmae` (did you mean `name`?)"
        })
    );
    for (row, line) in rows.iter().zip(text.stdout.lines()) {
        let located = format!(
            "{}:{}:{}: {}",
            row["file"].as_str().unwrap(),
            row["line"],
            row["column"],
            row["message"].as_str().unwrap()
        );
        assert!(line.starts_with(&located), "{line} vs {located}");
    }
}

#[test]
fn a_folder_reports_every_file() {
    let outcome = check(&[repo("tests/fixtures/config").to_str().unwrap()]);
    assert_eq!(outcome.code, 1);
    let files = repo("tests/fixtures/config").read_dir().unwrap().count();
    assert!(
        outcome.stderr.contains(&format!("checked {files} files")),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains(&format!("in {files} files")),
        "{}",
        outcome.stderr
    );
}

#[test]
fn the_same_tenant_in_two_files_is_an_error() {
    let acme = repo("tenants.example/acme.yaml");
    let dir = std::env::temp_dir().join(format!("functionary-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("acme-copy.yaml");
    std::fs::copy(&acme, &copy).unwrap();
    let outcome = check(&[acme.to_str().unwrap(), copy.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stdout.contains("tenant `acme` is also declared by"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn missing_paths_and_bad_usage_exit_2() {
    let missing = check(&["/no/such/config.yaml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("/no/such/config.yaml: no such file or folder")
    );

    assert_eq!(check(&[]).code, 2, "no paths");
    assert_eq!(
        check(&["--format", "xml", "x.yaml"]).code,
        2,
        "unknown format"
    );

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    assert_eq!(
        functionary_cli::run(["functionary", "lint"], &mut stdout, &mut stderr),
        2
    );
}

#[test]
fn github_format_prints_annotations() {
    let path = fixture("dangling_parent.yaml");
    let outcome = check(&["--format", "github", &path]);
    assert_eq!(outcome.code, 1);
    assert_eq!(
        outcome.stdout,
        format!(
            "::error file={path},line=5,col=15,title=functionary check%3A unknown_model::parent \
             `organisation` is not a model declared in `models` (did you mean `organization`?) \
             (at /models/1/parents/0)\n"
        )
    );
}

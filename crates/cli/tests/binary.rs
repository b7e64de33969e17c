//! The built `functionary` binary: exit codes and streams as a CI job sees them.

use std::process::Command;

fn functionary(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_functionary"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("the functionary binary runs")
}

#[test]
fn check_exit_codes() {
    let clean = functionary(&["check", "tenants.example"]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(clean.stdout.is_empty());

    let broken = functionary(&["check", "tests/fixtures/config/ref_file.yaml"]);
    assert_eq!(broken.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert!(
        stdout.starts_with("tests/fixtures/config/ref_file.yaml:7:24: `$ref` to"),
        "{stdout}"
    );

    assert_eq!(functionary(&["check"]).status.code(), Some(2));
    assert_eq!(functionary(&["check", "nope.yaml"]).status.code(), Some(2));
    assert_eq!(functionary(&["--help"]).status.code(), Some(0));
}

//! One fixture per check in `tests/fixtures/config/`: each file ends with the findings it must
//! produce, one `# expect: [code] line:column: message (at /pointer)` comment per finding.

use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/config")
}

fn check_fixture(name: &str) {
    let file = functionary_config::read_config_file(&fixture_dir().join(name))
        .unwrap_or_else(|error| panic!("fixture {name}: {error}"));
    let expected: Vec<&str> = file
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("# expect: "))
        .collect();
    assert!(
        !expected.is_empty(),
        "fixture {name} has no `# expect:` lines"
    );
    let found: Vec<String> = match functionary_config::load_config(&file.text, &file.stem) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics
            .iter()
            .map(|finding| format!("[{}] {finding}", finding.code))
            .collect(),
    };
    assert_eq!(found, expected, "findings of fixture {name}");
}

macro_rules! fixtures {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_fixture($file);
            }
        )*

        /// Every fixture on disk has a test above, so none is silently skipped.
        #[test]
        fn every_fixture_has_a_test() {
            let listed = [$($file),*];
            for path in functionary_config::config_files_in(&fixture_dir()).unwrap() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                assert!(listed.contains(&name.as_str()), "fixture {name} has no test");
            }
        }
    };
}

fixtures! {
    unknown_keys_are_located_with_a_suggestion => "unknown_key.yaml",
    dangling_parent_is_refused => "dangling_parent.yaml",
    dangling_for_models_is_refused => "dangling_for_models.yaml",
    embedded_schema_with_a_bad_type_is_refused => "invalid_schema_type.yaml",
    duplicate_model_is_refused => "duplicate_model.yaml",
    duplicate_event_is_refused => "duplicate_event.yaml",
    duplicate_yaml_key_is_located_at_the_duplicate => "duplicate_yaml_key.yaml",
    ref_to_a_file_is_refused => "ref_file.yaml",
    ref_to_a_url_is_refused => "ref_url.yaml",
    broken_yaml_is_located => "broken_yaml.yaml",
    yaml_tags_are_refused => "yaml_tag.yaml",
    non_finite_numbers_are_refused => "non_finite_number.yaml",
    invalid_tenant_slug_is_refused => "invalid_slug.yaml",
    file_name_that_is_not_a_slug_needs_a_tenant_key => "Invalid_Stem.yaml",
    invalid_model_name_is_refused => "invalid_model_name.yaml",
    system_event_names_are_reserved => "reserved_event_name.yaml",
    look_around_and_back_references_are_refused => "lookaround_pattern.yaml",
    unknown_format_is_refused_with_a_suggestion => "unknown_format.yaml",
    embedded_schema_of_another_draft_is_refused => "foreign_draft.yaml",
    invalid_settings_are_refused => "invalid_settings.yaml",
    schema_nesting_is_capped => "too_deep_schema.yaml",
    alias_expansion_is_bounded => "alias_bomb.yaml",
    more_than_one_document_is_refused => "two_documents.yaml",
    empty_file_is_refused => "empty.yaml",
    non_string_keys_are_refused => "non_string_key.yaml",
    models_are_required => "missing_models.yaml",
}

//! The identity, event and reading rules (DESIGN §2–4), each on both backends.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use functionary_store::{BatchItem, BatchOutcome, EventOutcome, EventView, MAX_PAGE, StoreError};
use serde_json::{Value, json};

use crate::support::{Backend, TestStore, on_both_backends};

fn code(result: Result<impl std::fmt::Debug, StoreError>) -> &'static str {
    result.expect_err("the call should fail").code()
}

fn details(error: StoreError) -> Vec<(String, String)> {
    match error {
        StoreError::Invalid { details, .. } | StoreError::Conflict { details, .. } => details
            .into_iter()
            .map(|detail| {
                (
                    detail.pointer.or(detail.id).unwrap_or_default(),
                    detail.instance_id.unwrap_or(detail.message),
                )
            })
            .collect(),
        other => panic!("expected details, got {other:?}"),
    }
}

fn accepted(outcome: EventOutcome) -> (String, String, bool) {
    match outcome {
        EventOutcome::Accepted {
            event_id,
            instance_id,
            duplicate,
        } => (event_id, instance_id, duplicate),
        other => panic!("expected an accepted event, got {other:?}"),
    }
}

/// Every event of the instance of `model` holding `id`, newest first, read page by page.
async fn all_events(t: &TestStore, model: &str, id: &str) -> Vec<EventView> {
    let mut events = Vec::new();
    let mut cursor = None;
    loop {
        let page = t
            .store
            .events(&t.tenant, model, id, MAX_PAGE, cursor)
            .await
            .expect("events of the instance");
        events.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return events;
        }
    }
}

fn batch_items(items: Value) -> Vec<BatchItem> {
    serde_json::from_value(items).expect("batch items parse")
}

fn event_outcome(result: &Result<BatchOutcome, StoreError>) -> EventOutcome {
    match result {
        Ok(BatchOutcome::Event(outcome)) => outcome.clone(),
        other => panic!("expected an event outcome, got {other:?}"),
    }
}

async fn event_names(t: &TestStore, model: &str, id: &str) -> Vec<String> {
    let page = t
        .store
        .events(&t.tenant, model, id, 100, None)
        .await
        .expect("events of the instance");
    page.items.into_iter().map(|event| event.name).collect()
}

async fn reject_undeclared_store(backend: Backend) -> Option<TestStore> {
    let config = "models: [{name: customer}]\nsettings: {undeclaredEvents: reject}";
    TestStore::open_with(backend, config, Default::default()).await
}

on_both_backends! {
    // The seed page: ids [1], then [1, email], then [email] reach one instance.
    async fn seed_aliases_reach_one_instance(t) {
        let first = t.identify(json!({"model": "customer", "ids": [1]})).await.unwrap();
        assert!(first.created);
        assert_eq!(first.ids, ["1"]);
        let second = t.identify(json!({"model": "customer", "ids": [1, "ada@example.com"]})).await.unwrap();
        assert!(!second.created);
        assert_eq!(second.instance_id, first.instance_id);
        assert_eq!(second.ids, ["1", "ada@example.com"]);
        let (_, on, _) = accepted(t.track(json!({"name": "login", "ids": ["ada@example.com"]})).await.unwrap());
        assert_eq!(on, first.instance_id);
        let third = t.identify(json!({"model": "customer", "ids": ["ada@example.com"]})).await.unwrap();
        assert_eq!(third.instance_id, first.instance_id);
        assert_eq!(t.get("customer", "1").await.unwrap().ids, ["1", "ada@example.com"]);
    }

    // The seed page: id 837 may exist once per model.
    async fn one_id_in_two_models_is_two_instances(t) {
        let customer = t.identify(json!({"model": "customer", "ids": [837]})).await.unwrap();
        let organization = t.identify(json!({"model": "organization", "ids": [837]})).await.unwrap();
        assert!(customer.created && organization.created);
        assert_ne!(customer.instance_id, organization.instance_id);
        assert_eq!(t.get("organization", "837").await.unwrap().instance_id, organization.instance_id);
    }

    // The seed page: childModel picks the model; without it, the first model in config order.
    async fn child_model_disambiguates_and_config_order_decides_otherwise(t) {
        let org_one = t.identify(json!({"model": "organization", "ids": ["1"]})).await.unwrap();
        let customer_one = t.identify(json!({"model": "customer", "ids": ["1"]})).await.unwrap();
        let parent = t
            .identify(json!({"model": "organization", "ids": ["acme"], "childIds": [1], "childModel": "customer"}))
            .await
            .unwrap();
        let other = t.identify(json!({"model": "organization", "ids": ["globex"], "childIds": [1]})).await.unwrap();
        assert_eq!(parent.pending, 0);
        let acme = t.get("organization", "acme").await.unwrap();
        assert_eq!(acme.children.len(), 1);
        assert_eq!(acme.children[0].instance_id, customer_one.instance_id);
        assert_eq!(acme.children[0].model, "customer");
        let globex = t.get("organization", "globex").await.unwrap();
        assert_eq!(globex.children[0].instance_id, org_one.instance_id, "organization is declared first");
        assert_eq!(other.pending, 0);
    }

    // The seed page: a child id that does not exist yet is saved and paired when it appears.
    async fn pending_child_is_paired_when_it_appears(t) {
        let org = t.identify(json!({"model": "organization", "ids": ["acme"], "childIds": ["c-1", "c-2"]})).await.unwrap();
        assert_eq!(org.pending, 2);
        let view = t.get("organization", "acme").await.unwrap();
        let pending: BTreeSet<_> = view.pending.iter().map(|link| (link.role.as_str(), link.id.as_str())).collect();
        assert_eq!(pending, BTreeSet::from([("child", "c-1"), ("child", "c-2")]));

        let customer = t.identify(json!({"model": "customer", "ids": ["c-1"]})).await.unwrap();
        let view = t.get("organization", "acme").await.unwrap();
        assert_eq!(view.children.len(), 1);
        assert_eq!(view.children[0].instance_id, customer.instance_id);
        assert_eq!(view.children[0].ids, ["c-1"]);
        assert_eq!(view.pending.len(), 1);
        let child = t.get("customer", "c-1").await.unwrap();
        assert_eq!(child.parents[0].instance_id, org.instance_id);
        assert_eq!(child.parents[0].ids, ["acme"]);
        let again = t.identify(json!({"model": "organization", "ids": ["acme"]})).await.unwrap();
        assert_eq!(again.pending, 1);
    }

    async fn pending_parent_is_paired_when_it_appears(t) {
        let customer = t.identify(json!({"model": "customer", "ids": ["c"], "parentIds": ["org-9"]})).await.unwrap();
        assert_eq!(customer.pending, 1);
        t.identify(json!({"model": "organization", "ids": ["org-9"]})).await.unwrap();
        let view = t.get("customer", "c").await.unwrap();
        assert_eq!(view.parents.len(), 1);
        assert_eq!(view.parents[0].model, "organization");
        assert!(view.pending.is_empty());
    }

    async fn pending_link_with_a_model_waits_for_that_model(t) {
        t.identify(json!({"model": "organization", "ids": ["acme"], "childIds": ["x"], "childModel": "customer"}))
            .await
            .unwrap();
        t.identify(json!({"model": "project", "ids": ["x"]})).await.unwrap();
        assert_eq!(t.get("organization", "acme").await.unwrap().pending.len(), 1, "a project is not a customer");
        t.identify(json!({"model": "customer", "ids": ["x"]})).await.unwrap();
        let view = t.get("organization", "acme").await.unwrap();
        assert!(view.pending.is_empty());
        assert_eq!(view.children[0].model, "customer");
    }

    async fn many_parents_and_children_are_allowed_and_links_are_idempotent(t) {
        t.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        for _ in 0..2 {
            t.identify(json!({"model": "customer", "ids": ["c"], "parentIds": ["o1", "o2"], "parentModel": "organization"}))
                .await
                .unwrap();
        }
        t.identify(json!({"model": "organization", "ids": ["o1"]})).await.unwrap();
        t.identify(json!({"model": "organization", "ids": ["o2"]})).await.unwrap();
        let view = t.get("customer", "c").await.unwrap();
        assert_eq!(view.parents.len(), 2);
        assert!(view.pending.is_empty());
    }

    async fn integer_ids_are_their_decimal_text_and_duplicates_fold(t) {
        let first = t.identify(json!({"model": "customer", "ids": [10, "10", 10]})).await.unwrap();
        assert_eq!(first.ids, ["10"]);
        let second = t.identify(json!({"model": "customer", "ids": ["10"]})).await.unwrap();
        assert_eq!(second.instance_id, first.instance_id);
        let big = t.identify(json!({"model": "customer", "ids": [18446744073709551615u64, -42]})).await.unwrap();
        assert_eq!(big.ids, ["-42", "18446744073709551615"]);
    }

    // Lengths count characters, as the spec's maxLength does: a schema-valid id is never refused.
    async fn ids_up_to_255_characters_are_accepted_whatever_their_bytes(t) {
        let long = "é".repeat(255);
        let created = t.identify(json!({"model": "customer", "ids": [long.clone()], "displayName": "ü".repeat(255)})).await.unwrap();
        assert_eq!(created.ids, [long]);
        assert_eq!(code(t.identify(json!({"model": "customer", "ids": ["é".repeat(256)]})).await), "invalid_id");
    }

    async fn junk_ids_are_refused_and_nothing_is_created(t) {
        for junk in [json!("null"), json!(""), json!("   "), json!("Guest"), json!(0), json!(-1), json!("undefined"),
            json!("[object Object]"), json!(1.5), json!(true), json!(null), json!({}), json!("a".repeat(256))]
        {
            let error = t.identify(json!({"model": "customer", "ids": ["fine", junk]})).await.unwrap_err();
            assert_eq!(error.code(), "invalid_id", "{junk}");
            assert_eq!(details(error)[0].0, "/ids/1", "{junk}");
        }
        assert_eq!(code(t.identify(json!({"model": "customer", "ids": []})).await), "invalid_id");
        let too_many: Vec<usize> = (1..=101).collect();
        assert_eq!(code(t.identify(json!({"model": "customer", "ids": too_many})).await), "invalid_id");
        assert_eq!(code(t.identify(json!({"model": "customer", "ids": ["c"], "childIds": ["nan"]})).await), "invalid_id");
        let page = t.store.instances(&t.tenant, "customer", 10, None).await.unwrap();
        assert!(page.items.is_empty());
    }

    async fn unknown_models_are_refused(t) {
        assert_eq!(code(t.identify(json!({"model": "user", "ids": ["u"]})).await), "unknown_model");
        assert_eq!(
            code(t.identify(json!({"model": "customer", "ids": ["u"], "childIds": ["x"], "childModel": "user"})).await),
            "unknown_model"
        );
        assert_eq!(code(t.track(json!({"name": "x", "ids": ["u"], "model": "user"})).await), "unknown_model");
    }

    async fn ids_of_two_instances_conflict_and_nothing_changes(t) {
        let a = t.identify(json!({"model": "customer", "ids": ["a"]})).await.unwrap();
        let b = t.identify(json!({"model": "customer", "ids": ["b"]})).await.unwrap();
        let error = t
            .identify(json!({"model": "customer", "ids": ["a", "b", "new"], "properties": {"age": 3}}))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "ids_conflict");
        let mut found = details(error);
        found.sort();
        assert_eq!(found, [("a".to_owned(), a.instance_id.clone()), ("b".to_owned(), b.instance_id.clone())]);
        assert_eq!(t.get("customer", "a").await.unwrap().ids, ["a"]);
        assert!(t.get("customer", "new").await.is_err());
        assert!(t.get("customer", "a").await.unwrap().properties.is_empty());
        assert_eq!(t.store.stats().identify_conflicts.load(Ordering::Relaxed), 1);
    }

    async fn properties_merge_by_key_and_null_removes(t) {
        t.identify(json!({"model": "customer", "ids": ["c"], "properties": {"email": "a@example.com", "age": 30}})).await.unwrap();
        t.identify(json!({"model": "customer", "ids": ["c"], "properties": {"age": 31, "nickname": "ace"}})).await.unwrap();
        t.identify(json!({"model": "customer", "ids": ["c"], "properties": {"nickname": null}, "displayName": "Ada"})).await.unwrap();
        let view = t.get("customer", "c").await.unwrap();
        assert_eq!(Value::Object(view.properties), json!({"email": "a@example.com", "age": 31}));
        assert_eq!(view.display_name.as_deref(), Some("Ada"));
    }

    async fn merged_properties_are_validated_with_every_violation(t) {
        t.identify(json!({"model": "customer", "ids": ["c"], "properties": {"age": 30}})).await.unwrap();
        let error = t
            .identify(json!({"model": "customer", "ids": ["c", "c2"], "properties": {"email": "nope", "age": -1}}))
            .await
            .unwrap_err();
        assert_eq!(error.code(), "invalid_properties");
        let pointers: BTreeSet<String> = details(error).into_iter().map(|(pointer, _)| pointer).collect();
        assert_eq!(pointers, BTreeSet::from(["/properties/age".to_owned(), "/properties/email".to_owned()]));
        let view = t.get("customer", "c").await.unwrap();
        assert_eq!(Value::Object(view.properties), json!({"age": 30}), "nothing changed");
        assert_eq!(view.ids, ["c"]);
        let huge = "x".repeat(33 * 1024);
        assert_eq!(
            code(t.identify(json!({"model": "customer", "ids": ["c"], "properties": {"bio": huge}})).await),
            "properties_too_large"
        );
    }

    async fn older_writes_never_overwrite_newer_ones(t) {
        let body = |props: Value, name: &str, at: &str| {
            json!({"model": "organization", "ids": ["o"], "properties": props, "displayName": name, "timestamp": at})
        };
        t.identify(body(json!({"plan": "pro", "coupon": "X"}), "New", "2026-01-02T00:00:00Z")).await.unwrap();
        t.identify(body(json!({"plan": "free", "seats": 3}), "Old", "2026-01-01T00:00:00Z")).await.unwrap();
        let view = t.get("organization", "o").await.unwrap();
        assert_eq!(Value::Object(view.properties), json!({"plan": "pro", "coupon": "X", "seats": 3}));
        assert_eq!(view.display_name.as_deref(), Some("New"));
        // A removal is remembered: a late, older write can not bring the key back.
        t.identify(body(json!({"coupon": null}), "New", "2026-01-03T00:00:00Z")).await.unwrap();
        t.identify(body(json!({"coupon": "Y"}), "Old", "2026-01-02T12:00:00Z")).await.unwrap();
        let view = t.get("organization", "o").await.unwrap();
        assert!(!view.properties.contains_key("coupon"));
        // Ties go to the later arrival.
        t.identify(body(json!({"plan": "enterprise"}), "Tie", "2026-01-03T00:00:00Z")).await.unwrap();
        let view = t.get("organization", "o").await.unwrap();
        assert_eq!(view.properties["plan"], "enterprise");
        assert_eq!(view.display_name.as_deref(), Some("Tie"));
        // Removing a key that is not there still records when: an older value stays out.
        t.identify(body(json!({"ghost": null}), "Tie", "2026-01-05T00:00:00Z")).await.unwrap();
        t.identify(body(json!({"ghost": 1}), "Tie", "2026-01-04T00:00:00Z")).await.unwrap();
        assert!(!t.get("organization", "o").await.unwrap().properties.contains_key("ghost"));
    }

    async fn an_instance_can_not_be_its_own_parent(t) {
        assert_eq!(code(t.identify(json!({"model": "project", "ids": ["p"], "childIds": ["p"]})).await), "self_link");
        t.identify(json!({"model": "project", "ids": ["q"]})).await.unwrap();
        assert_eq!(
            code(t.identify(json!({"model": "project", "ids": ["q"], "parentIds": ["q"], "parentModel": "project"})).await),
            "self_link"
        );
        assert!(t.get("project", "p").await.is_err(), "the refused call created nothing");
    }

    async fn the_parents_rule_of_a_model_is_enforced(t) {
        t.identify(json!({"model": "project", "ids": ["p"]})).await.unwrap();
        // customer declares parents: [organization]
        assert_eq!(
            code(t.identify(json!({"model": "customer", "ids": ["c"], "parentIds": ["p"]})).await),
            "parent_not_allowed"
        );
        assert_eq!(
            code(t.identify(json!({"model": "customer", "ids": ["c"], "parentIds": ["z"], "parentModel": "project"})).await),
            "parent_not_allowed"
        );
        assert_eq!(
            code(t.identify(json!({"model": "project", "ids": ["p"], "childIds": ["c"], "childModel": "customer"})).await),
            "parent_not_allowed"
        );
        // Organizations may be parents of customers; projects accept any parent.
        t.identify(json!({"model": "customer", "ids": ["c"], "parentIds": ["o"], "parentModel": "organization"})).await.unwrap();
        t.identify(json!({"model": "project", "ids": ["p"], "parentIds": ["c"], "parentModel": "customer"})).await.unwrap();
    }

    async fn identify_records_an_event(t) {
        t.identify(json!({"model": "customer", "ids": ["c"], "properties": {"age": 1}})).await.unwrap();
        t.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        assert_eq!(event_names(&t, "customer", "c").await, ["onFunctionaryIdentify", "onFunctionaryIdentify"]);
    }

    async fn events_for_unknown_ids_are_thrown_out_and_counted(t) {
        let outcome = t.track(json!({"name": "login", "ids": ["nobody"]})).await.unwrap();
        assert_eq!(outcome, EventOutcome::Discarded { reason: "unknown_instance" });
        assert_eq!(t.store.stats().events_discarded.load(Ordering::Relaxed), 1);
    }

    async fn events_never_create_or_change_ids(t) {
        t.identify(json!({"model": "customer", "ids": ["a"]})).await.unwrap();
        t.track(json!({"name": "login", "ids": ["a", "b"]})).await.unwrap();
        assert_eq!(t.get("customer", "a").await.unwrap().ids, ["a"]);
        assert!(t.get("customer", "b").await.is_err());
    }

    async fn events_for_ids_of_two_instances_conflict(t) {
        t.identify(json!({"model": "customer", "ids": ["a"]})).await.unwrap();
        t.identify(json!({"model": "customer", "ids": ["b"]})).await.unwrap();
        assert_eq!(code(t.track(json!({"name": "login", "ids": ["a", "b"]})).await), "ids_conflict");
        assert_eq!(event_names(&t, "customer", "a").await, ["onFunctionaryIdentify"]);
    }

    async fn events_search_models_in_config_order_or_the_one_named(t) {
        let org = t.identify(json!({"model": "organization", "ids": ["7"]})).await.unwrap();
        let customer = t.identify(json!({"model": "customer", "ids": ["7"]})).await.unwrap();
        let (_, on, _) = accepted(t.track(json!({"name": "ping", "ids": ["7"]})).await.unwrap());
        assert_eq!(on, org.instance_id);
        let (_, on, _) = accepted(t.track(json!({"name": "ping", "ids": ["7"], "model": "customer"})).await.unwrap());
        assert_eq!(on, customer.instance_id);
        // sign_up happens to customers only: without a model, only customers are searched.
        let (_, on, _) = accepted(t.track(json!({"event": "sign_up", "ids": ["7"], "properties": {"plan": "pro"}})).await.unwrap());
        assert_eq!(on, customer.instance_id);
        assert_eq!(
            code(t.track(json!({"name": "sign_up", "ids": ["7"], "model": "organization", "properties": {"plan": "pro"}})).await),
            "event_not_for_model"
        );
    }

    async fn declared_events_validate_their_properties(t) {
        t.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        assert_eq!(code(t.track(json!({"name": "sign_up", "ids": ["c"], "properties": {}})).await), "invalid_properties");
        assert_eq!(code(t.track(json!({"name": "sign_up", "ids": ["c"], "properties": {"plan": 5}})).await), "invalid_properties");
        accepted(t.track(json!({"name": "sign_up", "ids": ["c"], "properties": {"plan": "pro"}})).await.unwrap());
        accepted(t.track(json!({"name": "anything_else", "ids": ["c"], "properties": {"free": ["form"]}})).await.unwrap());
    }

    async fn event_names_are_checked(t) {
        t.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        assert_eq!(code(t.track(json!({"name": "a", "event": "b", "ids": ["c"]})).await), "invalid_event_name");
        assert_eq!(code(t.track(json!({"ids": ["c"]})).await), "invalid_event_name");
        assert_eq!(code(t.track(json!({"name": "", "ids": ["c"]})).await), "invalid_event_name");
        assert_eq!(code(t.track(json!({"name": "x".repeat(256), "ids": ["c"]})).await), "invalid_event_name");
        assert_eq!(code(t.track(json!({"name": "onFunctionaryIdentify", "ids": ["c"]})).await), "invalid_event_name");
    }

    async fn message_ids_deduplicate_within_a_tenant(t) {
        t.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        let body = json!({"name": "paid", "ids": ["c"], "messageId": "m-1"});
        let (first, _, duplicate) = accepted(t.track(body.clone()).await.unwrap());
        assert!(!duplicate);
        let (again, _, duplicate) = accepted(t.track(body).await.unwrap());
        assert!(duplicate);
        assert_eq!(again, first);
        assert_eq!(event_names(&t, "customer", "c").await, ["paid", "onFunctionaryIdentify"]);
        assert_eq!(t.store.stats().events_duplicate.load(Ordering::Relaxed), 1);

        let other = t.other_tenant().await;
        t.identify_as(&other, json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        let input = serde_json::from_value(json!({"name": "paid", "ids": ["c"], "messageId": "m-1"})).unwrap();
        let outcome = t.store.track(&other, Arc::clone(&t.config), input).await.unwrap();
        assert!(!accepted(outcome).2, "another tenant's messageId is its own");
    }

    async fn undeclared_events_can_be_rejected(t) {
        drop(t);
        let Some(strict) = reject_undeclared_store(Backend::Sqlite).await else { return };
        strict.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        assert_eq!(code(strict.track(json!({"name": "anything", "ids": ["c"]})).await), "undeclared_event");
    }

    async fn events_are_listed_newest_first_with_stable_cursors(t) {
        t.identify(json!({"model": "customer", "ids": ["c"], "timestamp": "2020-01-01T00:00:00Z"})).await.unwrap();
        for day in 1..=5 {
            let at = format!("2026-01-0{day}T00:00:00Z");
            t.track(json!({"name": format!("day{day}"), "ids": ["c"], "timestamp": at})).await.unwrap();
        }
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let page = t.store.events(&t.tenant, "customer", "c", 2, cursor).await.unwrap();
            assert!(page.items.len() <= 2);
            names.extend(page.items.into_iter().map(|event| event.name));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(names, ["day5", "day4", "day3", "day2", "day1", "onFunctionaryIdentify"]);
        let first = t.store.events(&t.tenant, "customer", "c", 1, None).await.unwrap();
        assert_eq!(first.items[0].timestamp.to_rfc3339(), "2026-01-05T00:00:00+00:00");
        assert_eq!(
            code(t.store.events(&t.tenant, "customer", "c", 2, Some("garbage".to_owned())).await),
            "invalid_cursor"
        );
    }

    async fn instances_are_listed_in_pages(t) {
        for id in 0..5 {
            t.identify(json!({"model": "customer", "ids": [format!("c{id}")]})).await.unwrap();
        }
        t.identify(json!({"model": "organization", "ids": ["o"]})).await.unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = t.store.instances(&t.tenant, "customer", 2, cursor).await.unwrap();
            pages += 1;
            seen.extend(page.items.into_iter().map(|instance| instance.ids[0].clone()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4"]);
    }

    async fn instances_are_found_by_any_id_and_only_in_their_tenant(t) {
        let created = t.identify(json!({"model": "customer", "ids": ["a", "b"]})).await.unwrap();
        assert_eq!(t.get("customer", "b").await.unwrap().instance_id, created.instance_id);
        assert_eq!(code(t.get("customer", "zzz").await), "instance_not_found");
        assert_eq!(code(t.get("organization", "a").await), "instance_not_found");
        let other = t.other_tenant().await;
        assert_eq!(code(t.store.instance(&other, "customer", "a").await), "instance_not_found");
        assert_eq!(code(t.store.delete_instance(&other, "customer", "a").await), "instance_not_found");
        let input = serde_json::from_value(json!({"name": "x", "ids": ["a"]})).unwrap();
        let outcome = t.store.track(&other, Arc::clone(&t.config), input).await.unwrap();
        assert_eq!(outcome, EventOutcome::Discarded { reason: "unknown_instance" });
        let mine = t.identify_as(&other, json!({"model": "customer", "ids": ["a"]})).await.unwrap();
        assert!(mine.created, "the same id in another tenant is another instance");
    }

    async fn deleting_an_instance_removes_its_ids_links_and_events(t) {
        t.identify(json!({"model": "organization", "ids": ["o"], "childIds": ["c", "later"]})).await.unwrap();
        t.identify(json!({"model": "customer", "ids": ["c"]})).await.unwrap();
        t.track(json!({"name": "login", "ids": ["o"]})).await.unwrap();
        t.store.delete_instance(&t.tenant, "organization", "o").await.unwrap();
        assert_eq!(code(t.get("organization", "o").await), "instance_not_found");
        assert!(t.get("customer", "c").await.unwrap().parents.is_empty());
        // The pending link died with its owner: "later" appears unlinked.
        t.identify(json!({"model": "customer", "ids": ["later"]})).await.unwrap();
        assert!(t.get("customer", "later").await.unwrap().parents.is_empty());
        let fresh = t.identify(json!({"model": "organization", "ids": ["o"]})).await.unwrap();
        assert!(fresh.created);
        assert_eq!(event_names(&t, "organization", "o").await, ["onFunctionaryIdentify"]);
        assert_eq!(code(t.store.delete_instance(&t.tenant, "organization", "nope").await), "instance_not_found");
    }

    async fn batch_items_apply_in_order_and_fail_alone(t) {
        let items: Vec<BatchItem> = serde_json::from_value(json!([
            {"type": "identify", "model": "customer", "ids": ["c"]},
            {"type": "identify", "model": "nope", "ids": ["c"]},
            {"type": "event", "name": "login", "ids": ["c"]},
            {"type": "event", "name": "login", "ids": ["nobody"]},
        ]))
        .unwrap();
        let results = t.store.batch(&t.tenant, Arc::clone(&t.config), items).await;
        assert_eq!(results.len(), 4);
        assert!(matches!(&results[0], Ok(BatchOutcome::Identify(outcome)) if outcome.created));
        assert_eq!(results[1].as_ref().unwrap_err().code(), "unknown_model");
        assert!(matches!(&results[2], Ok(BatchOutcome::Event(EventOutcome::Accepted { duplicate: false, .. }))));
        assert!(matches!(&results[3], Ok(BatchOutcome::Event(EventOutcome::Discarded { .. }))));
    }

    // §3: a batch of events is stored whole, each event once, in order.
    async fn batch_of_a_thousand_events_stores_them_all(t) {
        t.identify(json!({"model": "customer", "ids": ["many"]})).await.unwrap();
        let accepted_before = t.store.stats().events_accepted.load(Ordering::Relaxed);
        let items: Vec<Value> = (0..1000)
            .map(|n| json!({"type": "event", "name": "page_view", "ids": ["many"], "properties": {"n": n}, "messageId": format!("m-{n}")}))
            .collect();
        let results = t.store.batch(&t.tenant, Arc::clone(&t.config), batch_items(Value::Array(items))).await;
        assert_eq!(results.len(), 1000);
        let event_ids: BTreeSet<String> = results
            .iter()
            .map(|result| {
                let (event_id, _, duplicate) = accepted(event_outcome(result));
                assert!(!duplicate);
                event_id
            })
            .collect();
        assert_eq!(event_ids.len(), 1000, "every event has an id of its own");
        assert_eq!(t.store.stats().events_accepted.load(Ordering::Relaxed) - accepted_before, 1000);
        let stored = all_events(&t, "customer", "many").await;
        assert_eq!(stored.len(), 1001, "1000 events and the identify");
        let stored_ids: BTreeSet<String> = stored
            .iter()
            .filter(|event| event.name == "page_view")
            .map(|event| event.event_id.clone())
            .collect();
        assert_eq!(stored_ids, event_ids);
        // Sent again, the batch is a batch of duplicates of the same events.
        let items: Vec<Value> = (0..1000)
            .map(|n| json!({"type": "event", "name": "page_view", "ids": ["many"], "messageId": format!("m-{n}")}))
            .collect();
        let again = t.store.batch(&t.tenant, Arc::clone(&t.config), batch_items(Value::Array(items))).await;
        for (first, second) in results.iter().zip(&again) {
            let (first_id, instance_id, _) = accepted(event_outcome(first));
            assert_eq!(event_outcome(second), EventOutcome::Accepted { event_id: first_id, instance_id, duplicate: true });
        }
        assert_eq!(all_events(&t, "customer", "many").await.len(), 1001);
    }

    // §3: the messageId of an earlier item of the same batch makes a duplicate of that item,
    // unless the earlier item was not stored.
    async fn batch_items_with_one_message_id_store_one_event(t) {
        t.identify(json!({"model": "customer", "ids": ["dup"]})).await.unwrap();
        let duplicates_before = t.store.stats().events_duplicate.load(Ordering::Relaxed);
        let results = t.store.batch(&t.tenant, Arc::clone(&t.config), batch_items(json!([
            {"type": "event", "name": "lost", "ids": ["nobody"], "messageId": "late"},
            {"type": "event", "name": "first", "ids": ["dup"], "messageId": "same"},
            {"type": "event", "name": "second", "ids": ["dup"], "messageId": "same"},
            {"type": "event", "name": "found", "ids": ["dup"], "messageId": "late"},
            {"type": "event", "name": "third", "ids": ["nobody"], "messageId": "same"},
        ]))).await;
        assert_eq!(event_outcome(&results[0]), EventOutcome::Discarded { reason: "unknown_instance" });
        let (first_id, instance_id, duplicate) = accepted(event_outcome(&results[1]));
        assert!(!duplicate);
        let duplicate_of_first = EventOutcome::Accepted { event_id: first_id, instance_id, duplicate: true };
        assert_eq!(event_outcome(&results[2]), duplicate_of_first);
        let (_, _, duplicate) = accepted(event_outcome(&results[3]));
        assert!(!duplicate, "the first item with its messageId was thrown out, not stored");
        assert_eq!(event_outcome(&results[4]), duplicate_of_first, "a duplicate answers before its ids are looked up");
        assert_eq!(event_names(&t, "customer", "dup").await, ["found", "first", "onFunctionaryIdentify"]);
        assert_eq!(t.store.stats().events_duplicate.load(Ordering::Relaxed) - duplicates_before, 2);
        // A later single call with the messageId is a duplicate of the same event.
        let single = t.track(json!({"name": "again", "ids": ["dup"], "messageId": "same"})).await.unwrap();
        assert_eq!(single, duplicate_of_first);
    }

    // §3: batches racing with the same messageIds store each event once; the losers of the
    // race answer duplicates of the winners' events.
    async fn concurrent_batches_with_the_same_message_ids_store_each_event_once(t) {
        t.identify(json!({"model": "customer", "ids": ["race"]})).await.unwrap();
        let t = Arc::new(t);
        let items: Vec<Value> = (0..50)
            .map(|n| json!({"type": "event", "name": "tick", "ids": ["race"], "messageId": format!("r-{n}")}))
            .collect();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let t = Arc::clone(&t);
            let items = batch_items(Value::Array(items.clone()));
            tasks.push(tokio::spawn(async move { t.store.batch(&t.tenant, Arc::clone(&t.config), items).await }));
        }
        let mut batches = Vec::new();
        for task in tasks {
            batches.push(task.await.unwrap());
        }
        for n in 0..50 {
            let answers: Vec<(String, String, bool)> =
                batches.iter().map(|results| accepted(event_outcome(&results[n]))).collect();
            let event_ids: BTreeSet<&str> = answers.iter().map(|(event_id, _, _)| event_id.as_str()).collect();
            assert_eq!(event_ids.len(), 1, "one event for messageId r-{n}: {answers:?}");
            let stored = answers.iter().filter(|(_, _, duplicate)| !duplicate).count();
            assert_eq!(stored, 1, "one batch stored r-{n}: {answers:?}");
        }
        assert_eq!(all_events(&t, "customer", "race").await.len(), 51);
    }

    // §3: in a mixed batch each item answers what its single call would, in order: an identify
    // is visible to the events after it, and a conflict fails its item alone.
    async fn mixed_batch_answers_as_the_single_calls(t) {
        let a = t.identify(json!({"model": "customer", "ids": ["a"]})).await.unwrap();
        let b = t.identify(json!({"model": "customer", "ids": ["b"]})).await.unwrap();
        let results = t.store.batch(&t.tenant, Arc::clone(&t.config), batch_items(json!([
            {"type": "identify", "model": "customer", "ids": ["fresh"]},
            {"type": "event", "name": "login", "ids": ["fresh"]},
            {"type": "event", "name": "login", "ids": ["stranger"]},
            {"type": "event", "name": "login", "ids": ["a", "b"]},
            {"type": "event", "name": "logout", "ids": ["fresh"], "model": "customer"},
            {"type": "event", "name": "sign_up", "ids": ["a"]},
            {"type": "event", "name": "ping", "ids": ["b"]},
        ]))).await;
        assert_eq!(results.len(), 7);
        let Ok(BatchOutcome::Identify(fresh)) = &results[0] else {
            panic!("expected an identify outcome, got {:?}", results[0]);
        };
        assert!(fresh.created);
        let (_, instance_id, duplicate) = accepted(event_outcome(&results[1]));
        assert_eq!((instance_id.as_str(), duplicate), (fresh.instance_id.as_str(), false));
        let discarded = event_outcome(&results[2]);
        assert_eq!(discarded, EventOutcome::Discarded { reason: "unknown_instance" });
        let conflict = results[3].clone().expect_err("ids of two instances");
        assert_eq!(conflict.code(), "ids_conflict");
        assert_eq!(
            details(conflict.clone()),
            [("a".to_owned(), a.instance_id.clone()), ("b".to_owned(), b.instance_id.clone())]
        );
        let (_, instance_id, _) = accepted(event_outcome(&results[4]));
        assert_eq!(instance_id, fresh.instance_id);
        assert_eq!(results[5].as_ref().unwrap_err().code(), "invalid_properties", "sign_up requires a plan");
        let (_, instance_id, _) = accepted(event_outcome(&results[6]));
        assert_eq!(instance_id, b.instance_id);
        // The single calls, on the state the batch left, answer the same.
        assert_eq!(t.track(json!({"name": "login", "ids": ["stranger"]})).await.unwrap(), discarded);
        assert_eq!(t.track(json!({"name": "login", "ids": ["a", "b"]})).await.unwrap_err(), conflict);
        assert_eq!(event_names(&t, "customer", "fresh").await, ["logout", "login", "onFunctionaryIdentify"]);
        assert_eq!(event_names(&t, "customer", "a").await, ["onFunctionaryIdentify"]);
        assert_eq!(event_names(&t, "customer", "b").await, ["ping", "onFunctionaryIdentify"]);
    }

    async fn concurrent_updates_of_different_keys_are_all_kept(t) {
        t.identify(json!({"model": "customer", "ids": ["c", "d"]})).await.unwrap();
        let t = Arc::new(t);
        let mut tasks = Vec::new();
        for key in 0..24 {
            let t = Arc::clone(&t);
            tasks.push(tokio::spawn(async move {
                let via = if key % 2 == 0 { "c" } else { "d" };
                t.identify(json!({"model": "customer", "ids": [via], "properties": {format!("k{key}"): key}})).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let view = t.get("customer", "c").await.unwrap();
        assert_eq!(view.properties.len(), 24, "{:?}", view.properties);
    }
}

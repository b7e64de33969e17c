//! Generates Rust clients from the OpenAPI document named by `FUNCTIONARY_OPENAPI` with
//! progenitor's `Generator`, in both interface styles, into `$OUT_DIR/positional.rs` and
//! `$OUT_DIR/builder.rs` (included by src/lib.rs).
//!
//! A spec progenitor refuses fails the build with the generator's error (or panic: progenitor
//! asserts on some constructs it does not support), prefixed by `progenitor rejected the spec`,
//! followed by the operations that fail on their own, so ./run.sh can say what and where.

use std::{
    env, fs,
    panic::{self, AssertUnwindSafe},
    path::PathBuf,
    process::exit,
    sync::Mutex,
};

use serde_json::{Map, Value};

/// The message and place of the last panic, recorded by the hook set in `main`.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn main() {
    println!("cargo:rerun-if-env-changed=FUNCTIONARY_OPENAPI");
    println!("cargo:rerun-if-changed=build.rs");
    let Some(src) = env::var_os("FUNCTIONARY_OPENAPI").map(PathBuf::from) else {
        eprintln!("FUNCTIONARY_OPENAPI must name the spec file (ci/progenitor/run.sh sets it)");
        exit(2);
    };
    println!("cargo:rerun-if-changed={}", src.display());

    panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let at = info
            .location()
            .map(|l| {
                format!(
                    " (at {}:{})",
                    l.file().rsplit("/src/").next().unwrap_or(""),
                    l.line()
                )
            })
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message}{at}"));
    }));

    let text = fs::read_to_string(&src).unwrap_or_else(|e| {
        eprintln!(
            "progenitor rejected the spec: reading {}: {e}",
            src.display()
        );
        exit(1);
    });
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("progenitor rejected the spec: not JSON: {e}");
        exit(1);
    });

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Both interface styles, each with otherwise default settings (separate tags, no hooks):
    // `positional` (the default: `client.identify(&body)`) and `builder`
    // (`client.identify().body(body).send()`).
    for (name, style) in [
        ("positional", progenitor::InterfaceStyle::Positional),
        ("builder", progenitor::InterfaceStyle::Builder),
    ] {
        let mut settings = progenitor::GenerationSettings::default();
        settings.with_interface(style.clone());
        match generate(Input::Text(&text), &settings) {
            Ok(code) => {
                let out = out_dir.join(format!("{name}.rs"));
                fs::write(&out, code).expect("writing the generated client");
            }
            Err(Failure::Parse(e)) => {
                eprintln!("progenitor rejected the spec: {e}");
                exit(1);
            }
            Err(Failure::Generate(e)) => {
                eprintln!("progenitor rejected the spec (interface style {name}): {e}");
                report_operations(&doc, &settings);
                exit(1);
            }
        }
    }
}

/// A document for `generate`: the spec's text (parse errors then carry a line and column), or a
/// JSON value (one operation's copy).
enum Input<'a> {
    Text(&'a str),
    Value(&'a Value),
}

/// Why `generate` failed.
enum Failure {
    /// The document is not an OpenAPI 3.0 document as progenitor reads it.
    Parse(String),
    /// The generator refused it (an error or a panic), or produced code that does not parse.
    Generate(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Parse(e) | Self::Generate(e) => f.write_str(e),
        }
    }
}

/// Runs the generator on one document; its errors and panics become `Err`.
fn generate(
    input: Input<'_>,
    settings: &progenitor::GenerationSettings,
) -> Result<String, Failure> {
    // The generator's input type, an OpenAPI 3.0.x document of the `openapiv3` crate, is inferred
    // from `generate_tokens`, so this crate needs no dependency on `openapiv3` of its own.
    let spec = match input {
        Input::Text(text) => serde_json::from_str(text),
        Input::Value(value) => serde_json::from_value(value.clone()),
    }
    .map_err(|e| {
        Failure::Parse(format!(
            "parsing it as an OpenAPI 3.0 document (openapiv3): {e}"
        ))
    })?;
    let mut generator = progenitor::Generator::new(settings);
    let tokens = match panic::catch_unwind(AssertUnwindSafe(|| generator.generate_tokens(&spec))) {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(e)) => return Err(Failure::Generate(e.to_string())),
        Err(_) => {
            let message = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            return Err(Failure::Generate(format!(
                "the generator panicked: {}",
                message.unwrap_or_default()
            )));
        }
    };
    let ast: syn::File = syn::parse2(tokens)
        .map_err(|e| Failure::Generate(format!("the generated code does not parse: {e}")))?;
    Ok(prettyplease::unparse(&ast))
}

/// Names the operations the generator refuses on their own: each is tried in a copy of the
/// document that keeps every component but only that operation.
fn report_operations(doc: &Value, settings: &progenitor::GenerationSettings) {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return;
    };
    let mut tried = 0;
    let mut failed = 0;
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            tried += 1;
            let mut single = item.clone();
            single.retain(|key, _| !METHODS.contains(&key.as_str()) || key == method);
            let mut one = doc.clone();
            one["paths"] = Value::Object(Map::from_iter([(path.clone(), Value::Object(single))]));
            if let Err(e) = generate(Input::Value(&one), settings) {
                failed += 1;
                let id = operation
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or("-");
                eprintln!("  {} {path} (operationId {id}): {e}", method.to_uppercase());
            }
        }
    }
    if failed == 0 {
        eprintln!(
            "  each of the {tried} operations is accepted alone: the failure comes from combining them"
        );
    } else if failed == tried {
        eprintln!(
            "  every operation fails: the cause is likely in components, not in one operation"
        );
    }
}

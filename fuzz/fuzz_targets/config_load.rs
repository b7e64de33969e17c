//! Any text as a tenant config: loading, checking and compiling must never panic, and a config
//! that loads must validate any properties object without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = functionary_config::load_config(text, "fuzz") {
        let probe = serde_json::json!({"email": "a@b.co", "n": 1, "s": text.get(..16).unwrap_or("")});
        for model in config.models() {
            let _ = model.validate(&probe);
        }
        let _ = config.is_blocked_id(text);
    }
});

//! Any bytes as an identify, event or batch body: decoding must never panic, whatever it holds.
#![no_main]

use functionary_store::{BatchItem, EventInput, IdentifyInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<IdentifyInput>(data);
    let _ = serde_json::from_slice::<EventInput>(data);
    let _ = serde_json::from_slice::<Vec<BatchItem>>(data);
});

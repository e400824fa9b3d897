#![no_main]
//! OTLP/JSON documents into the table builders.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cartscope::fuzzing::otlp_json(data);
});

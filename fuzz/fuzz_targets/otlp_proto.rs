#![no_main]
//! One OTLP protobuf message into the table builders.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cartscope::fuzzing::otlp_proto(data);
});

#![no_main]
//! A whole file through the loader, as `--data FILE` reads it.
use std::path::PathBuf;
use std::sync::OnceLock;

static PATH: OnceLock<PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("cartscope-fuzz-file-{}", std::process::id()))
    });
    let _ = cartscope::fuzzing::file(data, path);
});

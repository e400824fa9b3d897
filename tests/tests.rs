//! The integration tests: one test binary (DataFusion is linked once, not once per file), a
//! module per area, and one helper (`util`), as ripgrep's `tests/tests.rs` does.

mod util;

mod ballista;
mod check;
mod detect;
mod drivers;
mod flags;
mod formats;
mod generate;
mod help;
mod hostile;
mod ingest;
mod layering;
mod loader_deviations;
mod loader_formats;
mod logs;
mod misfit;
mod nearest_rank;
mod object_store;
mod otel_demo;
mod otlp_examples;
mod projection;
mod properties;
mod queries;
mod real_sdk;
mod sampling;
mod query_runner;
mod report;
mod replay_store;
mod report_html;
mod rendered;
mod shell;
mod stdin;
mod suggest;
mod value;

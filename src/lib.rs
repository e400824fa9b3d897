//! cartscope: reads the OpenTelemetry traces and metrics a shop exports, replays every cart's
//! life from them and explains why carts were abandoned.
//!
//! Data flows one way: `input` (files, formats, compression) and `otlp`/`parquet_in` (decoding)
//! -> `load` (parallel, streaming) -> canonical tables (`schema`) -> `session` (DataFusion)
//! -> commands.

pub mod check;
pub mod cli;
pub mod commands;
pub mod dataset;
pub mod generate;
pub mod input;
pub mod load;
pub mod model;
pub mod otlp;
pub mod output;
pub mod parquet_in;
pub mod queries;
pub mod replay;
pub mod report;
pub mod schema;
pub mod session;
pub mod stats;
pub mod timefmt;
pub mod udf;

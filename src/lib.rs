//! cartscope: reads the OpenTelemetry traces and metrics a shop exports, replays every cart's
//! life from them and explains why carts were abandoned.
//!
//! The modules, in the order the data flows; each imports only from those above it
//! (`tests/suite/layering.rs` checks it):
//! - foundations every stage uses: `time` (typed times and durations), `stats`, `output`
//!   (result formats, progress, atomic files);
//! - `tables`: the canonical tables' schemas and builders;
//! - `read`: inputs (files, formats, compression, OTLP JSON and protobuf, Parquet) into
//!   canonical batches;
//! - `dataset`: the Parquet dataset `ingest` writes, and the ingest engine;
//! - `sql`: the DataFusion session, cartscope's SQL functions, the query library;
//! - `replay`: the lifecycle model and the replay of every cart's life;
//! - `report` and `check`: the abandonment report and the regression checks over it;
//! - `generate`: synthetic exports whose truth is known;
//! - `cli` and `commands`: the command line as typed, and one module per subcommand.

pub mod time;
pub mod stats;
pub mod output;

pub mod tables;
pub mod read;
pub mod dataset;
pub mod sql;
pub mod replay;
pub mod report;
pub mod check;

pub mod generate;
pub mod cli;
pub mod commands;

//! OpenTelemetry's wire formats: OTLP/JSON (`json`) and OTLP protobuf (`proto`), both read
//! into the canonical tables' Arrow builders (`crate::tables::builders`).

pub mod json;
pub mod proto;
pub mod values;

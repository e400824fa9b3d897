//! SQL over the tables: the one place a session is built (`session`) and where its queries
//! run (`engine`; `ballista` with the feature of that name), cartscope's SQL functions
//! (`udf`), the query library (`library`), and what SQL reads of a raw export's attributes
//! (`reads`).

#[cfg(feature = "ballista")]
pub mod ballista;
pub mod engine;
pub mod last_by;
pub mod library;
pub mod passes;
pub mod reads;
pub mod session;
pub mod udf;

//! SQL over the tables: the one place a session is built (`session`), cartscope's SQL
//! functions (`udf`) and the query library (`library`).

pub mod library;
pub mod passes;
pub mod session;
pub mod udf;

//! Inputs into canonical batches: what the user named (`input`: files, directories, globs,
//! datasets, and what each file holds), the wire formats (`otlp`: JSON and protobuf;
//! `parquet`: Parquet in cartscope's or the ClickHouse exporter's schema), and the parallel,
//! streaming loader (`load`), which reads only the attributes a question needs (`projection`);
//! files in object stores are listed and streamed by `remote`.

#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod load;
pub mod otlp;
pub mod parquet;
pub mod projection;
pub mod remote;

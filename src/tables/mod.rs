//! The canonical tables every input becomes: their schemas (`schema`) and the Arrow builders
//! that fill them (`builders`), used by the readers and by the replay for its derived rows.

pub mod builders;
pub mod schema;

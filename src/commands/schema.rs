//! `cartscope schema`: the canonical tables, column by column.

use std::sync::Arc;

use anyhow::{bail, Result};
use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::cli::SchemaArgs;
use crate::tables::schema::{type_name, Table};

pub fn run(a: &SchemaArgs) -> Result<()> {
    let tables: Vec<Table> = match &a.table {
        None => Table::ALL.to_vec(),
        Some(name) if name == "spans" => vec![Table::Traces],
        Some(name) => match Table::from_name(name) {
            Some(t) => vec![t],
            None => bail!(
                "no table '{name}': the tables are {}",
                Table::ALL.map(|t| t.name()).join(", ")
            ),
        },
    };
    let (mut t, mut c, mut ty, mut nullable) = (vec![], vec![], vec![], vec![]);
    for table in tables {
        for f in table.view_schema().fields() {
            t.push(table.name());
            c.push(f.name().clone());
            ty.push(type_name(f.data_type()));
            nullable.push(f.is_nullable());
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("column", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("nullable", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(t)),
            Arc::new(StringArray::from(c)),
            Arc::new(StringArray::from(ty)),
            Arc::new(BooleanArray::from(nullable)),
        ],
    )?;
    let mut out = std::io::stdout().lock();
    crate::output::write_batches(&mut out, a.format, &schema, &[batch], None)
}

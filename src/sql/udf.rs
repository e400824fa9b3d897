//! cartscope's SQL functions, registered by `sql/session.rs`:
//! - `now()` / `CURRENT_TIMESTAMP` pinned to the as-of time, so relative windows work on old
//!   exports and a query gives the same answer tomorrow;
//! - `attr_double(map, key)`, `attr_int(map, key)`: an attribute as a number (attribute values
//!   are strings; these sort numbers as numbers); NULL when absent or not a number.
//!
//! and the aggregate `last_by(value, key, ...)` (`sql/last_by.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// cartscope's functions that every process running a plan must know by name: the
/// client plans with them, a Ballista scheduler and its executors decode and run them. Not
/// `now()`: the client folds it into a constant before a plan leaves it.
pub fn shipped() -> (Vec<ScalarUDF>, Vec<datafusion::logical_expr::AggregateUDF>) {
    (
        vec![AttrNumber::double(), AttrNumber::int()],
        vec![crate::sql::last_by::LastBy::udaf()],
    )
}

/// `now()` that returns a fixed instant.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FixedNow {
    ns: i64,
    signature: Signature,
    aliases: Vec<String>,
}

impl FixedNow {
    pub fn udf(ns: i64) -> ScalarUDF {
        ScalarUDF::new_from_impl(FixedNow {
            ns,
            signature: Signature::nullary(Volatility::Stable),
            aliases: vec!["current_timestamp".into()],
        })
    }
}

impl ScalarUDFImpl for FixedNow {
    fn name(&self) -> &str {
        "now"
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(
            TimeUnit::Nanosecond,
            Some("UTC".into()),
        ))
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
            Some(self.ns),
            Some("UTC".into()),
        )))
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum AttrType {
    Double,
    Int,
}

/// `attr_double(attributes, 'key')` / `attr_int(attributes, 'key')`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttrNumber {
    name: &'static str,
    ty: AttrType,
    signature: Signature,
}

impl AttrNumber {
    pub fn double() -> ScalarUDF {
        ScalarUDF::new_from_impl(AttrNumber {
            name: "attr_double",
            ty: AttrType::Double,
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
    pub fn int() -> ScalarUDF {
        ScalarUDF::new_from_impl(AttrNumber {
            name: "attr_int",
            ty: AttrType::Int,
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for AttrNumber {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !matches!(args.first(), Some(DataType::Map(_, _))) {
            return exec_err!(
                "{}(attributes, 'key'): the first argument must be an attribute map such as attributes or resource_attributes",
                self.name
            );
        }
        Ok(match self.ty {
            AttrType::Double => DataType::Float64,
            AttrType::Int => DataType::Int64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let maps = args.args[0].clone().into_array(n)?;
        let keys = args.args[1].clone().into_array(n)?;
        let keys = datafusion::arrow::compute::cast(&keys, &DataType::Utf8)?;
        let keys = keys.as_string::<i32>();
        let maps = maps.as_map();
        let entries_k = datafusion::arrow::compute::cast(maps.keys(), &DataType::Utf8)?;
        let entries_v = datafusion::arrow::compute::cast(maps.values(), &DataType::Utf8)?;
        let (ek, ev) = (entries_k.as_string::<i32>(), entries_v.as_string::<i32>());
        let offsets = maps.value_offsets();
        let lookup = |row: usize| -> Option<&str> {
            if maps.is_null(row) || keys.is_null(row) {
                return None;
            }
            let key = keys.value(row);
            (offsets[row] as usize..offsets[row + 1] as usize)
                .find(|&j| ek.value(j) == key)
                .filter(|&j| ev.is_valid(j))
                .map(|j| ev.value(j).trim())
        };
        let out: ArrayRef = match self.ty {
            AttrType::Double => {
                let mut b = Float64Builder::with_capacity(n);
                for row in 0..n {
                    b.append_option(lookup(row).and_then(|v| v.parse::<f64>().ok()));
                }
                Arc::new(b.finish())
            }
            AttrType::Int => {
                let mut b = Int64Builder::with_capacity(n);
                for row in 0..n {
                    b.append_option(lookup(row).and_then(|v| {
                        v.parse::<i64>().ok().or_else(|| {
                            // "3.0" is an integer too; "3.5" is not.
                            v.parse::<f64>()
                                .ok()
                                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                                .map(|f| f as i64)
                        })
                    }));
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

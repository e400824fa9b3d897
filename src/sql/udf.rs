//! cartscope's SQL functions, registered by `sql/session.rs`:
//! - `now()` / `CURRENT_TIMESTAMP` pinned to the as-of time, so relative windows work on old
//!   exports and a query gives the same answer tomorrow;
//! - `attr_double(map, key)`, `attr_int(map, key)`: an attribute as a number (attribute values
//!   are strings; these sort numbers as numbers); NULL when absent or not a number;
//! - `ot_probability(trace_state)`: the probability with which a span's trace was kept, read
//!   from the sampling threshold OpenTelemetry's probability samplers write in the W3C
//!   tracestate (`ot=th:c` is 25%); NULL when it records none.
//! - `pass_of(key, bound, ...)`: the pass of a text key among sorted bounds (`Passes`), found
//!   by binary search: the number of bounds at or below it; NULL keys in the last pass.
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
        vec![
            AttrNumber::double(),
            AttrNumber::int(),
            ScalarUDF::new_from_impl(OtProbability::new()),
            ScalarUDF::new_from_impl(PassOf::new()),
        ],
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

/// 2^56: the sampling threshold and a trace's randomness span [0, 2^56).
const THRESHOLD_RANGE: f64 = 72_057_594_037_927_936.0;

/// The probability of keeping a trace that a W3C tracestate records, by OpenTelemetry's
/// specification of probability sampling: the `ot` entry's `th` sub-key holds the rejection
/// threshold T as 1 to 14 hexadecimal digits, trailing zeros removed (`th:c` is
/// 0xc0000000000000), and a trace is kept with probability (2^56 - T) / 2^56. `None` when
/// there is no `ot` entry, no `th` in it, or the threshold is not 1 to 14 hexadecimal digits
/// (the specification has such a tracestate's threshold ignored). The earlier experimental
/// `p:N` is read too.
pub fn ot_probability(trace_state: &str) -> Option<f64> {
    let ot = trace_state
        .split(',')
        .map(str::trim)
        .find_map(|member| member.strip_prefix("ot="))?;
    let Some(th) = ot.split(';').find_map(|kv| kv.strip_prefix("th:")) else {
        // The experimental form before it (`p:N`, probability 2^-N, 63 for none), which
        // the contrib consistent samplers wrote.
        let p: u32 = ot
            .split(';')
            .find_map(|kv| kv.strip_prefix("p:"))
            .filter(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()?;
        return (p <= 62).then(|| 0.5f64.powi(p as i32));
    };
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let t = u64::from_str_radix(th, 16).ok()? << (4 * (14 - th.len()));
    Some((THRESHOLD_RANGE - t as f64) / THRESHOLD_RANGE)
}

/// `ot_probability(trace_state)`: see [`ot_probability`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OtProbability {
    signature: Signature,
}

impl OtProbability {
    fn new() -> Self {
        OtProbability {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OtProbability {
    fn name(&self) -> &str {
        "ot_probability"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let states = args.args[0].clone().into_array(n)?;
        let states = datafusion::arrow::compute::cast(&states, &DataType::Utf8)?;
        let states = states.as_string::<i32>();
        let mut b = Float64Builder::with_capacity(n);
        for row in 0..n {
            b.append_option(
                states
                    .is_valid(row)
                    .then(|| ot_probability(states.value(row)))
                    .flatten(),
            );
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// The pass of `key` among the sorted `bounds` of a split (`Passes`): how many bounds are at
/// or below it; the last pass for a NULL key.
pub fn pass_among(bounds: &[String], key: Option<&str>) -> usize {
    match key {
        Some(k) => bounds.partition_point(|b| b.as_str() <= k),
        None => bounds.len(),
    }
}

/// `pass_of(key, bound, ...)`: the pass of `key` among the sorted text `bound`s that split
/// a key's values into passes (`sql::passes::Passes`): how many bounds are at or below it,
/// found by binary search; the last pass for a NULL key. It says what a CASE of one WHEN
/// per bound says (`key < bound` in turn, else the last), in log(n) comparisons rather than
/// n: with 43 passes, that CASE took 0.7 s more per 5.9M spans than reading their ids.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PassOf {
    signature: Signature,
}

impl PassOf {
    fn new() -> Self {
        PassOf {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PassOf {
    fn name(&self) -> &str {
        "pass_of"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let Some((key, bounds)) = args.args.split_first() else {
            return exec_err!("pass_of(key, bound, ...) needs a key");
        };
        let bounds: Vec<String> = bounds
            .iter()
            .map(|b| match b {
                ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Utf8)? {
                    ScalarValue::Utf8(Some(b)) => Ok(b),
                    _ => exec_err!("pass_of: a bound is NULL"),
                },
                ColumnarValue::Array(_) => exec_err!("pass_of: the bounds must be constants"),
            })
            .collect::<Result<_>>()?;
        if bounds.windows(2).any(|w| w[0] > w[1]) {
            return exec_err!("pass_of: the bounds must be in order");
        }
        let keys = datafusion::arrow::compute::cast(&key.clone().into_array(n)?, &DataType::Utf8)?;
        let keys = keys.as_string::<i32>();
        let mut b = Int64Builder::with_capacity(n);
        for row in 0..n {
            let pass = pass_among(&bounds, keys.is_valid(row).then(|| keys.value(row)));
            b.append_value(pass as i64);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::ot_probability;
    use datafusion::arrow::array::{Array, AsArray};

    #[test]
    fn thresholds_read_as_the_specification_writes_them() {
        assert_eq!(ot_probability("ot=th:0"), Some(1.0));
        assert_eq!(ot_probability("ot=th:c"), Some(0.25));
        assert_eq!(ot_probability("ot=th:8"), Some(0.5));
        assert_eq!(ot_probability("ot=th:c0000000000000"), Some(0.25));
        // 1% as the specification's examples write it (rounded to 14 digits).
        let p = ot_probability("ot=th:fd70a3d70a3d71").unwrap();
        assert!((p - 0.01).abs() < 1e-12, "{p}");
        // Beside other vendors' entries and the randomness sub-key, in any order.
        assert_eq!(
            ot_probability("congo=t61rcWkgMzE, ot=rv:9b8233f7e3a151;th:c"),
            Some(0.25)
        );
        assert_eq!(ot_probability("ot=p:2;r:10"), Some(0.25));
        assert_eq!(ot_probability("ot=p:0"), Some(1.0));
    }

    /// `pass_of` says what the CASE it replaced said, for keys below, at, between and
    /// above the bounds, NULL, and a key type other than text.
    #[tokio::test]
    async fn pass_of_is_the_case_of_one_when_per_bound() {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            super::PassOf::new(),
        ));
        let bounds = ["b", "d", "d1", "x"];
        let call = format!(
            "pass_of(k, {})",
            bounds.map(|b| format!("'{b}'")).join(", ")
        );
        let whens: String = bounds
            .iter()
            .enumerate()
            .map(|(i, b)| format!(" WHEN k < '{b}' THEN {i}"))
            .collect();
        let case = format!("CASE{whens} ELSE {} END", bounds.len());
        let keys = "'', 'a', 'b', 'c', 'd', 'd0', 'd1', 'd2', 'x', 'y', 'zz', NULL";
        let sql = format!(
            "SELECT k, {call} AS p, {case} AS c FROM (SELECT unnest([{keys}]) AS k)
             UNION ALL
             SELECT CAST(k AS VARCHAR), pass_of(arrow_cast(k, 'Utf8View'), 'b', 'x'),
                    CASE WHEN k < 'b' THEN 0 WHEN k < 'x' THEN 1 ELSE 2 END
             FROM (SELECT unnest(['a', 'b', 'c', 'x', NULL]) AS k)"
        );
        let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let mut n = 0;
        for b in &rows {
            let p = b
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let c = b
                .column(2)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                assert!(p.is_valid(i));
                assert_eq!(p.value(i), c.value(i), "row {i} of {b:?}");
                n += 1;
            }
        }
        assert_eq!(n, 17);
        let one = "SELECT pass_of('c') AS p";
        let rows = ctx.sql(one).await.unwrap().collect().await.unwrap();
        let p = rows[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(p.value(0), 0, "no bound: one pass");
        let unordered = ctx
            .sql("SELECT pass_of('c', 'd', 'b')")
            .await
            .unwrap()
            .collect()
            .await;
        assert!(unordered.is_err());
    }

    #[test]
    fn anything_else_records_no_probability() {
        for s in [
            "",
            "ot=rv:9b8233f7e3a151",
            "ot=th:",
            "ot=th:123456789abcdef",
            "ot=th:0x8",
            "ot=th:-1",
            "vendor=th:c",
            "xot=th:c",
            "ot=p:63",
            "ot=p:x",
            "ot=p:",
        ] {
            assert_eq!(ot_probability(s), None, "{s:?}");
        }
    }
}

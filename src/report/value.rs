//! Revenue at risk when only some carts' value is recorded.
//!
//! Much instrumentation records a cart's value only when checkout starts, so most abandoned
//! carts (those left while items were being added) carry none, and the sum of recorded values
//! is a fraction of what was left behind. Every money figure of the report therefore says how
//! many of its carts have a recorded value, and adds an estimate, with a 95% interval, for
//! the rest:
//!
//! - a cart whose lines all have a price, recorded on the line or, for its product, on other
//!   spans of the export (a product page's, another client's add: the model's `product_id`
//!   and `line_price`): the sum of its lines at those prices, with the spread of each listed
//!   product's recorded prices (`product prices`);
//! - a cart whose item count is recorded: its items times the value per item of the period's
//!   carts whose value and item count are both recorded (a ratio estimator; a cart's value is
//!   taken to vary about that line with a variance proportional to its items);
//! - else the mean value of the period's carts of the same last stage whose value is recorded
//!   (when at least `MIN_REFERENCE` are), else of every such cart of the period.
//!
//! The interval is the prediction interval of the sum: each estimated cart's own spread plus
//! the uncertainty of the value per item (or mean) it was estimated from, so it widens with
//! the share of carts estimated. Values cannot be negative: its lower end is never below the
//! recorded sum. The reference carts are those first seen in the same period, of any outcome:
//! carts that reached checkout tell what an item is worth to the ones that did not.

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::rows::{batches, counts, floats, round, strings};
use crate::replay::attr;
use crate::replay::model::Model;
use crate::sql::passes::lit;
use crate::stats;

/// The view of `carts` with each cart's listed value (`listed_value`, `listed_variance`):
/// what the money figures are computed over.
const VALUED: &str = "valued_carts";

/// Registers `valued_carts`: `carts` with, for a cart of no recorded value whose every line
/// has a price (its own, or its product's as recorded on other spans of the export), the
/// sum of its lines (`listed_value`) and the variance of that sum (`listed_variance`: for
/// each line priced from elsewhere, its quantity squared times the spread of its product's
/// recorded prices, plus that of their mean; 0 for a product priced once). NULL for the
/// other carts, and for every cart when the model names no product or no line price, or no
/// cart lacks a value: then no span is read again.
pub async fn register(ctx: &SessionContext, m: &Model) -> Result<()> {
    let k = &m.keys;
    let unknown = !k.product_id.is_empty()
        && !k.line_price.is_empty()
        && counts(
            &batches(ctx, "SELECT count(*) FROM carts WHERE total_value IS NULL").await?,
            0,
        )
        .first()
        .is_some_and(|&n| n > 0);
    let sql = if unknown {
        format!(
            "WITH prices AS (
                SELECT product_id, avg(price) AS price, coalesce(var_samp(price), 0) AS spread,
                       count(*) AS n
                FROM (SELECT {product} AS product_id, TRY_CAST({price} AS DOUBLE) AS price
                      FROM observed_traces t)
                WHERE product_id IS NOT NULL AND price IS NOT NULL GROUP BY product_id),
            lines AS (
                SELECT e.cart_id, e.line_value, coalesce(e.line_quantity, 1.0) AS q,
                       p.price, p.spread, p.n
                FROM cart_events e LEFT JOIN prices p ON e.product_id = p.product_id
                WHERE e.stage IS NOT NULL AND (e.product_id IS NOT NULL OR e.line_value IS NOT NULL)
                  AND e.cart_id IN (SELECT cart_id FROM carts WHERE total_value IS NULL)),
            listed AS (
                SELECT cart_id, sum(coalesce(line_value, price * q)) AS listed_value,
                       coalesce(sum(q * q * spread * (1.0 + 1.0 / n)) FILTER (WHERE line_value IS NULL), 0)
                           AS listed_variance
                FROM lines GROUP BY cart_id
                HAVING bool_and(line_value IS NOT NULL OR price IS NOT NULL))
            SELECT c.*, l.listed_value, l.listed_variance
            FROM carts c LEFT JOIN listed l ON c.cart_id = l.cart_id",
            product = attr("t", &k.product_id),
            price = attr("t", &k.line_price),
        )
    } else {
        "SELECT *, CAST(NULL AS DOUBLE) AS listed_value, CAST(NULL AS DOUBLE) AS listed_variance
         FROM carts"
            .to_string()
    };
    let view = ctx.sql(&sql).await?.into_view();
    ctx.deregister_table(VALUED)?;
    ctx.register_table(VALUED, view)?;
    Ok(())
}

/// Fewer carts of a stage with a recorded value than this, and the stage's unknown values
/// are estimated from every cart of the period instead.
const MIN_REFERENCE: u64 = 5;

/// How much of a money figure is recorded, and the estimate of the whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ValueCoverage {
    /// Carts whose value was recorded, of `carts`.
    pub known: u64,
    /// The carts the figure is over.
    pub carts: u64,
    /// The recorded values' sum plus an estimate for each cart whose value is unknown;
    /// null when no cart of the period has a recorded value to estimate from.
    pub estimated: Option<f64>,
    /// Its 95% interval (the recorded sum when every value is known).
    pub estimated_ci95: Option<[f64; 2]>,
    /// How the unknown values were estimated: `recorded` (none was unknown), `product
    /// prices`, `value per item`, `stage mean`, `period mean`, several joined by ` + `, or
    /// `none` (nothing to estimate from).
    pub method: String,
}

impl ValueCoverage {
    /// The coverage of no cart: nothing recorded, nothing to estimate, a value of 0.
    pub fn empty() -> ValueCoverage {
        Group::default().cover(&Reference::default())
    }

    /// "value known for 374 of 1968 carts", or "for all 1968 carts".
    pub fn known_text(&self) -> String {
        if self.known == self.carts {
            format!("value known for all {} carts", self.carts)
        } else {
            format!("value known for {} of {} carts", self.known, self.carts)
        }
    }

    /// Whether some value had to be estimated.
    pub fn is_partial(&self) -> bool {
        self.known < self.carts
    }

    /// "82.50 (95% CI 70.00 to 95.00)", "82.50" when every value is known, "-" when there
    /// is nothing to estimate from.
    pub fn estimated_text(&self) -> String {
        match (self.estimated, self.estimated_ci95) {
            (Some(e), Some([lo, hi])) if self.is_partial() => {
                format!("{e:.2} (95% CI {lo:.2} to {hi:.2})")
            }
            (Some(e), _) => format!("{e:.2}"),
            _ => "-".into(),
        }
    }

    /// "386 of 1968"
    pub fn known_cell(&self) -> String {
        format!("{} of {}", self.known, self.carts)
    }
}

/// Mean and variance of a set of values, from their count, sum and sum of squares.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: u64,
    sum: f64,
    squares: f64,
}

impl Moments {
    fn mean(&self) -> f64 {
        self.sum / self.n as f64
    }

    /// The sample variance (0 with fewer than two values).
    fn variance(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// What the period's carts with a recorded value say of the others.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Value per item, and the variance of a cart's value about `items * per_item` per item,
    /// over the carts with both recorded (`items` their items in all).
    per_item: Option<(f64, f64, f64)>,
    by_stage: BTreeMap<String, Moments>,
    all: Moments,
}

impl Reference {
    /// From the carts `filter` keeps (a period's).
    pub async fn of(ctx: &SessionContext, filter: &str) -> Result<Reference> {
        let b = batches(
            ctx,
            &format!(
                "SELECT coalesce(last_stage, ''), count(*), sum(total_value),
                        sum(total_value * total_value),
                        count(*) FILTER (WHERE item_count > 0),
                        sum(total_value) FILTER (WHERE item_count > 0),
                        CAST(sum(item_count) FILTER (WHERE item_count > 0) AS DOUBLE),
                        sum(total_value * total_value / item_count) FILTER (WHERE item_count > 0)
                 FROM carts WHERE {filter} AND total_value IS NOT NULL
                 GROUP BY 1 ORDER BY 1"
            ),
        )
        .await?;
        let (stage, n, sum, sq) = (strings(&b, 0), counts(&b, 1), floats(&b, 2), floats(&b, 3));
        let (rn, rv, rx, rq) = (counts(&b, 4), floats(&b, 5), floats(&b, 6), floats(&b, 7));
        let mut r = Reference::default();
        let (mut ratio_n, mut ratio_v, mut ratio_x, mut ratio_q) = (0u64, 0.0, 0.0, 0.0);
        for i in 0..stage.len() {
            let m = Moments {
                n: n[i],
                sum: sum[i].unwrap_or(0.0),
                squares: sq[i].unwrap_or(0.0),
            };
            r.all.n += m.n;
            r.all.sum += m.sum;
            r.all.squares += m.squares;
            r.by_stage.insert(stage[i].clone().unwrap_or_default(), m);
            ratio_n += rn[i];
            ratio_v += rv[i].unwrap_or(0.0);
            ratio_x += rx[i].unwrap_or(0.0);
            ratio_q += rq[i].unwrap_or(0.0);
        }
        if ratio_n >= 2 && ratio_x > 0.0 {
            let per_item = ratio_v / ratio_x;
            // sum((v - R x)^2 / x) = sum(v^2 / x) - 2 R sum(v) + R^2 sum(x)
            let residual = ratio_q - 2.0 * per_item * ratio_v + per_item * per_item * ratio_x;
            let spread = (residual / (ratio_n - 1) as f64).max(0.0);
            r.per_item = Some((per_item, spread, ratio_x));
        }
        Ok(r)
    }

    /// The moments a cart of `stage` without a recorded item count is estimated from.
    fn stage_moments(&self, stage: &str) -> Option<(Moments, &'static str)> {
        match self.by_stage.get(stage) {
            Some(m) if m.n >= MIN_REFERENCE => Some((*m, "stage mean")),
            _ if self.all.n >= 1 => Some((self.all, "period mean")),
            _ => None,
        }
    }

    /// A SQL expression of a cart's value (columns of `valued_carts`, prefixed by
    /// `alias.`): the recorded one, else its estimate, else 0 when there is nothing to
    /// estimate from.
    pub fn point_sql(&self, alias: &str) -> String {
        let mut e = format!("coalesce({alias}.total_value, {alias}.listed_value");
        if let Some((per_item, _, _)) = self.per_item {
            e.push_str(&format!(
                ", CASE WHEN {alias}.item_count > 0 THEN {alias}.item_count * {} END",
                num(per_item)
            ));
        }
        let stages: String = self
            .by_stage
            .keys()
            .filter_map(|s| {
                let (m, _) = self.stage_moments(s)?;
                Some(format!(" WHEN {} THEN {}", lit(s), num(m.mean())))
            })
            .collect();
        if !stages.is_empty() {
            e.push_str(&format!(
                ", CASE coalesce({alias}.last_stage, ''){stages} END"
            ));
        }
        if self.all.n >= 1 {
            e.push_str(&format!(", {}", num(self.all.mean())));
        }
        e.push_str(", 0.0)");
        e
    }
}

/// A number as a SQL double, exactly.
fn num(x: f64) -> String {
    format!("CAST({x} AS DOUBLE)")
}

/// The carts of one figure: how many, their recorded values, and those to estimate.
#[derive(Debug, Clone, Default)]
struct Group {
    carts: u64,
    known: u64,
    recorded: f64,
    /// Carts without a recorded value but with a listed one (every line priced), their
    /// listed values' sum and its variance.
    by_list: (u64, f64, f64),
    /// Carts without a recorded value but with their item count, and their items.
    by_items: (u64, f64),
    /// Carts without either, by last stage.
    by_stage: BTreeMap<String, u64>,
}

impl Group {
    fn cover(&self, r: &Reference) -> ValueCoverage {
        let mut methods: Vec<&'static str> = Vec::new();
        let (mut estimate, mut variance) = (self.recorded, 0.0);
        let mut estimable = true;
        let mut by_stage = self.by_stage.clone();
        let (n_listed, listed, listed_variance) = self.by_list;
        if n_listed > 0 {
            estimate += listed;
            variance += listed_variance;
            methods.push("product prices");
        }
        let (n_items, items) = self.by_items;
        if n_items > 0 {
            match r.per_item {
                Some((per_item, spread, reference_items)) => {
                    estimate += per_item * items;
                    // Each cart's spread about the line, and the line's own uncertainty.
                    variance += spread * items + items * items * spread / reference_items;
                    methods.push("value per item");
                }
                // No value per item to go by: as carts without an item count.
                None => {
                    // Their stages are not known apart here: estimated from the period.
                    *by_stage.entry(String::new()).or_default() += n_items;
                }
            }
        }
        for (stage, &n) in &by_stage {
            if n == 0 {
                continue;
            }
            let found = if stage.is_empty() {
                (r.all.n >= 1).then_some((r.all, "period mean"))
            } else {
                r.stage_moments(stage)
            };
            match found {
                Some((m, how)) => {
                    let (n, var) = (n as f64, m.variance());
                    estimate += n * m.mean();
                    variance += n * var + n * n * var / m.n as f64;
                    if !methods.contains(&how) {
                        methods.push(how);
                    }
                }
                None => estimable = false,
            }
        }
        let method = if !self.is_partial() {
            "recorded".to_string()
        } else if !estimable {
            "none".to_string()
        } else {
            methods.join(" + ")
        };
        let (estimated, ci) = if estimable {
            let half = stats::Z_95 * variance.sqrt();
            let lo = (estimate - half).max(self.recorded);
            (
                Some(round(estimate, 2)),
                Some([round(lo, 2), round(estimate + half, 2)]),
            )
        } else {
            (None, None)
        };
        ValueCoverage {
            known: self.known,
            carts: self.carts,
            estimated,
            estimated_ci95: ci,
            method,
        }
    }

    fn is_partial(&self) -> bool {
        self.known < self.carts
    }
}

/// The coverage of the value of the carts `filter` keeps, by `group` (a SQL expression of a
/// `carts` row; `None`: one group, keyed ""), estimated from `r`.
pub async fn coverage(
    ctx: &SessionContext,
    r: &Reference,
    filter: &str,
    group: Option<&str>,
) -> Result<BTreeMap<String, ValueCoverage>> {
    let group = group.unwrap_or("''");
    let listed = "total_value IS NULL AND listed_value IS NOT NULL";
    let unlisted = "total_value IS NULL AND listed_value IS NULL";
    let b = batches(
        ctx,
        &format!(
            "SELECT coalesce(CAST({group} AS VARCHAR), 'none'), coalesce(last_stage, ''),
                    count(*), count(total_value), sum(total_value),
                    count(*) FILTER (WHERE {unlisted} AND item_count > 0),
                    CAST(sum(item_count) FILTER (WHERE {unlisted} AND item_count > 0)
                         AS DOUBLE),
                    count(*) FILTER (WHERE {unlisted} AND NOT coalesce(item_count > 0, false)),
                    count(*) FILTER (WHERE {listed}),
                    sum(listed_value) FILTER (WHERE {listed}),
                    sum(listed_variance) FILTER (WHERE {listed})
             FROM {VALUED} WHERE {filter} GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    )
    .await?;
    let (g, stage, n, known, sum) = (
        strings(&b, 0),
        strings(&b, 1),
        counts(&b, 2),
        counts(&b, 3),
        floats(&b, 4),
    );
    let (with_items, items, bare) = (counts(&b, 5), floats(&b, 6), counts(&b, 7));
    let (n_listed, listed, listed_var) = (counts(&b, 8), floats(&b, 9), floats(&b, 10));
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for i in 0..g.len() {
        let e = groups.entry(g[i].clone().unwrap_or_default()).or_default();
        e.carts += n[i];
        e.known += known[i];
        e.recorded += sum[i].unwrap_or(0.0);
        e.by_list.0 += n_listed[i];
        e.by_list.1 += listed[i].unwrap_or(0.0);
        e.by_list.2 += listed_var[i].unwrap_or(0.0);
        e.by_items.0 += with_items[i];
        e.by_items.1 += items[i].unwrap_or(0.0);
        *e.by_stage
            .entry(stage[i].clone().unwrap_or_default())
            .or_default() += bare[i];
    }
    Ok(groups.into_iter().map(|(k, g)| (k, g.cover(r))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        // Carts at checkout: values 10, 20, 30 for 1, 2, 3 items (10 an item, no spread).
        let mut r = Reference {
            per_item: Some((10.0, 0.0, 6.0)),
            ..Default::default()
        };
        let m = Moments {
            n: 3,
            sum: 60.0,
            squares: 1400.0,
        };
        r.by_stage.insert("checkout".into(), m);
        r.all = m;
        r
    }

    #[test]
    fn unknown_values_are_estimated_from_items_then_stage_then_period() {
        let r = reference();
        let g = Group {
            carts: 5,
            known: 1,
            recorded: 30.0,
            by_list: (0, 0.0, 0.0),
            by_items: (2, 5.0),
            by_stage: [("active".to_string(), 2)].into(),
        };
        let c = g.cover(&r);
        // 30 recorded + 5 items at 10 + 2 carts at the period's mean of 20.
        assert_eq!(c.estimated, Some(120.0));
        assert_eq!(c.method, "value per item + period mean");
        let [lo, hi] = c.estimated_ci95.unwrap();
        // Only the two carts without items are uncertain: variance 2*100 + 4*100/3.
        let half = stats::Z_95 * (200.0f64 + 400.0 / 3.0).sqrt();
        assert!((hi - (120.0 + half)).abs() < 0.01 && (lo - (120.0 - half)).abs() < 0.01);
        assert_eq!(c.known_text(), "value known for 1 of 5 carts");
    }

    #[test]
    fn carts_priced_from_their_products_add_their_lines_and_spread() {
        let g = Group {
            carts: 4,
            known: 1,
            recorded: 30.0,
            by_list: (2, 55.5, 4.0),
            by_items: (1, 2.0),
            ..Default::default()
        };
        let c = g.cover(&reference());
        // 30 recorded + 55.5 listed + 2 items at 10 (no spread about the line).
        assert_eq!(c.estimated, Some(105.5));
        assert_eq!(c.method, "product prices + value per item");
        let half = stats::Z_95 * 4.0f64.sqrt();
        assert_eq!(
            c.estimated_ci95,
            Some([round(105.5 - half, 2), round(105.5 + half, 2)])
        );
    }

    #[test]
    fn a_figure_whose_values_are_all_known_is_exact() {
        let g = Group {
            carts: 2,
            known: 2,
            recorded: 41.5,
            ..Default::default()
        };
        let c = g.cover(&reference());
        assert_eq!(c.method, "recorded");
        assert_eq!(c.estimated, Some(41.5));
        assert_eq!(c.estimated_ci95, Some([41.5, 41.5]));
        assert_eq!(c.known_text(), "value known for all 2 carts");
    }

    #[test]
    fn nothing_to_estimate_from_is_said() {
        let g = Group {
            carts: 3,
            known: 0,
            by_stage: [("active".to_string(), 3)].into(),
            ..Default::default()
        };
        let c = g.cover(&Reference::default());
        assert_eq!((c.estimated, c.method.as_str()), (None, "none"));
        assert_eq!(
            Reference::default().point_sql("c"),
            "coalesce(c.total_value, c.listed_value, 0.0)"
        );
    }

    #[test]
    fn the_lower_end_is_never_below_what_was_recorded() {
        let mut r = reference();
        r.all.squares = 1_000_000.0; // a wide spread
        let g = Group {
            carts: 2,
            known: 1,
            recorded: 5.0,
            by_stage: [("x".to_string(), 1)].into(),
            ..Default::default()
        };
        assert_eq!(g.cover(&r).estimated_ci95.unwrap()[0], 5.0);
    }
}

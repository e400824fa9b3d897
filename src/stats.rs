//! The statistics behind `cartscope report`: how sure we are about an abandonment rate, which
//! candidate drivers really move it, and how much conversion each extra second of latency costs.
//!
//! This module owns the arithmetic only. Queries decide what a cart, a stage and a candidate
//! driver are and hand over plain counts and numbers; everything here is a pure, deterministic
//! function with no I/O, so a report is reproducible bit for bit from the same counts.
//!
//! What it provides:
//! - [`wilson_interval`]: a confidence interval for a proportion (the overall abandonment rate).
//! - [`TwoByTwo`]: abandoned/converted × exposed/unexposed counts for one binary driver, with the
//!   relative risk, its Katz log confidence interval and the excess abandonments it explains.
//! - [`fisher_exact_two_sided`], [`g_test`] and [`association_p_value`], which picks between
//!   them: is a driver's association with abandonment larger than chance?
//! - [`benjamini_hochberg`]: false-discovery-rate control across all candidate drivers, because
//!   testing hundreds of candidates guarantees some "significant" ones by luck alone.
//! - [`two_proportion_z_test`]: is a change of a rate between two periods larger than chance?
//! - [`logistic_fit`] and [`marginal_effect_per_unit`]: the latency-to-conversion curve.
//! - [`nearest_rank`]: the percentile definition the SQL queries use, so both agree.
//!
//! The normal and chi-square distributions come from `statrs`. The tests and intervals above
//! stay hand-written: statrs has none of them, and the crates that do (a statistics suite,
//! a linear-algebra stack for the logistic fit) would pull in far more than these few hundred
//! lines, and none promises bit-for-bit results across versions, which the report's bytes need.

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// The two-sided 95% standard normal quantile, Φ⁻¹(0.975).
pub const Z_95: f64 = 1.959963984540054;

/// Above this many carts a table that also has every expected count ≥ [`G_TEST_MIN_EXPECTED`]
/// is tested with the G-test instead of Fisher's exact test.
pub const FISHER_MAX_N: u64 = 10_000;

/// The smallest expected cell count for which the chi-square approximation of the G-test is
/// trusted (the classical rule of thumb for 1 degree of freedom).
pub const G_TEST_MIN_EXPECTED: f64 = 5.0;

// ---------------------------------------------------------------------------------------------
// Proportions
// ---------------------------------------------------------------------------------------------

/// Wilson score interval for `successes` out of `n` at normal quantile `z` (95%: [`Z_95`]).
///
/// Wilson rather than the textbook Wald interval (p ± z·√(p(1−p)/n)) because Wald collapses to
/// a zero-width interval at 0% or 100% and undercovers for small n or rates near the edges,
/// which is exactly where a small shop or a rare stage lives. The bounds are clamped to [0, 1];
/// with no successes the lower bound is exactly 0 and with all successes the upper bound is
/// exactly 1. With `n == 0` nothing is known and the interval is (0, 1).
///
/// # Panics
/// If `successes > n`: the counts are inconsistent and no interval would mean anything.
pub fn wilson_interval(successes: u64, n: u64, z: f64) -> (f64, f64) {
    assert!(
        successes <= n,
        "wilson_interval: {successes} successes out of {n}"
    );
    if n == 0 {
        return (0.0, 1.0);
    }
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let center = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    let lo = if successes == 0 {
        0.0
    } else {
        (center - half).max(0.0)
    };
    let hi = if successes == n {
        1.0
    } else {
        (center + half).min(1.0)
    };
    (lo, hi)
}

/// Two-sided p-value of the pooled two-proportion z-test of x1/n1 against x2/n2.
///
/// Used for "did the abandonment rate change between these two periods by more than chance".
/// Pooled, because under the null hypothesis both periods share one rate; z² of this test is
/// exactly Pearson's chi-square of the 2×2 table without continuity correction. When either
/// period has no carts, or both rates are 0% or both 100%, there is no evidence of a change and
/// the p-value is 1.
///
/// # Panics
/// If `x1 > n1` or `x2 > n2`.
pub fn two_proportion_z_test(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    assert!(
        x1 <= n1 && x2 <= n2,
        "two_proportion_z_test: {x1}/{n1} vs {x2}/{n2}"
    );
    if n1 == 0 || n2 == 0 {
        return 1.0;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return 1.0;
    }
    let z = (x1 as f64 / n1f - x2 as f64 / n2f) / se;
    (2.0 * standard_normal().sf(z.abs())).min(1.0)
}

// ---------------------------------------------------------------------------------------------
// One candidate driver: the 2×2 table
// ---------------------------------------------------------------------------------------------

/// Carts that reached the same stage, split by one binary candidate driver ("exposed": e.g.
/// shipping.calculate_rates took longer than 2000 ms) and by outcome ("bad" = abandoned,
/// "good" = converted).
///
/// Comparing only carts that reached the same stage is what keeps the comparison fair: a cart
/// that never got to shipping can neither be exposed to slow shipping nor convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TwoByTwo {
    pub exposed_bad: u64,
    pub exposed_good: u64,
    pub unexposed_bad: u64,
    pub unexposed_good: u64,
}

impl TwoByTwo {
    /// Carts with the driver (the driver's support).
    pub fn exposed_total(&self) -> u64 {
        self.exposed_bad + self.exposed_good
    }

    /// Carts without the driver.
    pub fn unexposed_total(&self) -> u64 {
        self.unexposed_bad + self.unexposed_good
    }

    /// All carts in the table.
    pub fn total(&self) -> u64 {
        self.exposed_total() + self.unexposed_total()
    }

    /// Abandonment rate among carts with the driver; `None` when there are none.
    pub fn exposed_risk(&self) -> Option<f64> {
        ratio(self.exposed_bad, self.exposed_total())
    }

    /// Abandonment rate among carts without the driver; `None` when there are none.
    pub fn unexposed_risk(&self) -> Option<f64> {
        ratio(self.unexposed_bad, self.unexposed_total())
    }

    /// Relative risk of abandonment, exposed over unexposed: 2.0 means carts with the driver are
    /// abandoned twice as often. Uncorrected counts. `None` when either group is empty or no
    /// unexposed cart was abandoned (the ratio would be infinite or undefined); 0.0 when no
    /// exposed cart was abandoned.
    pub fn relative_risk(&self) -> Option<f64> {
        let exposed = self.exposed_risk()?;
        let unexposed = self.unexposed_risk()?;
        (unexposed > 0.0).then(|| exposed / unexposed)
    }

    /// Confidence interval of the relative risk at normal quantile `z` (95%: [`Z_95`]), by the
    /// Katz log method: ln RR ± z·√(1/a − 1/(a+b) + 1/c − 1/(c+d)), where a, b are the exposed
    /// bad and good counts and c, d the unexposed ones.
    ///
    /// When any cell is 0 the Haldane–Anscombe correction adds 0.5 to all four cells first:
    /// without it a zero makes ln RR or its standard error infinite, and a driver seen only
    /// among abandoned carts is exactly the kind we must still be able to bound. Because of
    /// the correction the interval is then centred on the corrected RR, not on
    /// [`relative_risk`](Self::relative_risk) (which may be 0 or `None`).
    ///
    /// `None` only when the exposed or the unexposed group is empty.
    pub fn rr_confidence_interval(&self, z: f64) -> Option<(f64, f64)> {
        if self.exposed_total() == 0 || self.unexposed_total() == 0 {
            return None;
        }
        let cells = [
            self.exposed_bad,
            self.exposed_good,
            self.unexposed_bad,
            self.unexposed_good,
        ];
        let correction = if cells.contains(&0) { 0.5 } else { 0.0 };
        let [a, b, c, d] = cells.map(|v| v as f64 + correction);
        let ln_rr = (a / (a + b)).ln() - (c / (c + d)).ln();
        let se = (1.0 / a - 1.0 / (a + b) + 1.0 / c - 1.0 / (c + d))
            .max(0.0)
            .sqrt();
        Some(((ln_rr - z * se).exp(), (ln_rr + z * se).exp()))
    }

    /// Abandonments among exposed carts beyond what the unexposed rate predicts:
    /// exposed_bad − exposed_total × unexposed_risk. This is the count the driver "explains";
    /// multiplied by the mean value of an exposed abandoned cart it is the excess abandoned
    /// value. Negative when the driver is protective. `None` when the unexposed group is empty.
    pub fn excess_bad(&self) -> Option<f64> {
        let unexposed = self.unexposed_risk()?;
        Some(self.exposed_bad as f64 - self.exposed_total() as f64 * unexposed)
    }

    /// The smallest expected cell count under independence (row total × column total / n);
    /// 0 for an empty table.
    pub fn min_expected(&self) -> f64 {
        let n = self.total();
        if n == 0 {
            return 0.0;
        }
        let rows = [self.exposed_total(), self.unexposed_total()];
        let cols = [
            self.exposed_bad + self.unexposed_bad,
            self.exposed_good + self.unexposed_good,
        ];
        let smallest_row = rows.iter().min().copied().unwrap_or(0) as f64;
        let smallest_col = cols.iter().min().copied().unwrap_or(0) as f64;
        smallest_row * smallest_col / n as f64
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

// ---------------------------------------------------------------------------------------------
// Tests of association
// ---------------------------------------------------------------------------------------------

/// Which test [`association_p_value`] used, for the report to say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociationTest {
    FisherExact,
    GTest,
}

impl AssociationTest {
    /// The rule: Fisher's exact test when n ≤ [`FISHER_MAX_N`] or the smallest expected count
    /// is below [`G_TEST_MIN_EXPECTED`]; otherwise the G-test.
    ///
    /// Why: Fisher's test is exact at any size, but on small or sparse tables it is the only
    /// one that is right (the chi-square approximation of the G-test overstates significance
    /// when a cell is expected to hold a handful of carts, which is every rare driver). On big,
    /// well-filled tables the two agree to several digits, and the G-test is O(1) while Fisher
    /// walks the hypergeometric distribution, so with hundreds of candidates over millions of
    /// carts the G-test keeps the report fast without changing a conclusion.
    pub fn choose(table: &TwoByTwo) -> Self {
        if table.total() <= FISHER_MAX_N || table.min_expected() < G_TEST_MIN_EXPECTED {
            Self::FisherExact
        } else {
            Self::GTest
        }
    }

    /// The two-sided p-value of this test on `table`.
    pub fn p_value(self, table: &TwoByTwo) -> f64 {
        match self {
            Self::FisherExact => fisher_exact_two_sided(table),
            Self::GTest => g_test(table),
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::FisherExact => "Fisher exact",
            Self::GTest => "G-test",
        }
    }
}

/// Two-sided p-value of the association between driver and abandonment, by the test
/// [`AssociationTest::choose`] picks for this table.
pub fn association_p_value(table: &TwoByTwo) -> (AssociationTest, f64) {
    let test = AssociationTest::choose(table);
    (test, test.p_value(table))
}

/// Two-sided p-value of Fisher's exact test: the probability, given both margins, of a table as
/// likely as or less likely than the observed one. Ties are decided with a relative tolerance
/// of 1e-7, as R's `fisher.test` and SciPy do, so that tables of mathematically equal
/// probability are not split by rounding.
///
/// With the margins fixed the count of exposed abandoned carts is hypergeometric. Its
/// probabilities are handled as logarithms of ratios of factorials, never as factorials or
/// binomial coefficients (which overflow past 170!), so tables with millions of carts are fine.
/// Each log-probability is obtained from its neighbour's by the exact ratio
/// p(x+1)/p(x) = (r1−x)(c1−x) / ((x+1)(r2−c1+x+1)), whose integer factors are exact in f64:
/// this is the difference of log-factorials without the cancellation error of subtracting
/// ln Γ of numbers in the millions (≈1e-9 absolute each at 10^6), so the 1e-7 tie tolerance
/// stays meaningful far beyond millions of carts.
///
/// The walk starts at the mode and goes outwards; the distribution is log-concave, so once a
/// term is e^-750 times the mode's it and everything beyond it underflow to exactly 0 in f64
/// and can be skipped. The work is therefore proportional to the spread of the distribution
/// (a few standard deviations of √n at most), not to the size of its support. A p-value below
/// about 1e-300 is reported as 0.
pub fn fisher_exact_two_sided(table: &TwoByTwo) -> f64 {
    // Rows: exposed / unexposed; the walked variable x is the exposed-abandoned cell.
    let r1 = table.exposed_total();
    let r2 = table.unexposed_total();
    let c1 = table.exposed_bad + table.unexposed_bad;
    let n = r1 + r2;
    let lo = c1.saturating_sub(r2);
    let hi = r1.min(c1);
    if lo == hi {
        // Only one table has these margins: it is certain.
        return 1.0;
    }
    // ln(p(x+1)/p(x)) for lo <= x < hi; every factor is >= 1 there.
    let ln_step = |x: u64| -> f64 {
        let num = (r1 - x) as f64 * (c1 - x) as f64;
        let den = (x + 1) as f64 * (r2 + x + 1 - c1) as f64;
        (num / den).ln()
    };
    // The mode of the hypergeometric distribution, floor((c1+1)(r1+1)/(n+2)).
    let mode = ((u128::from(c1) + 1) * (u128::from(r1) + 1) / (u128::from(n) + 2)) as u64;
    let mode = mode.clamp(lo, hi);

    // Log-probabilities relative to the mode (ln p(x) − ln p(mode)), walked outwards from it.
    const CUTOFF: f64 = -750.0;
    let mut left = Vec::new(); // x = mode-1, mode-2, ...
    let mut l = 0.0;
    let mut x = mode;
    while x > lo && l >= CUTOFF {
        l -= ln_step(x - 1);
        x -= 1;
        left.push(l);
    }
    let mut right = Vec::new(); // x = mode+1, mode+2, ...
    let mut l = 0.0;
    let mut x = mode;
    while x < hi && l >= CUTOFF {
        l += ln_step(x);
        x += 1;
        right.push(l);
    }

    let observed = table.exposed_bad;
    let l_obs = if observed == mode {
        Some(0.0)
    } else if observed < mode {
        left.get((mode - observed - 1) as usize).copied()
    } else {
        right.get((observed - mode - 1) as usize).copied()
    };
    let Some(l_obs) = l_obs else {
        // Beyond the walked range: the observed table's probability underflows, and so does
        // every table as unlikely; the p-value is 0 in f64.
        return 0.0;
    };
    let threshold = l_obs + 1e-7f64.ln_1p();

    let mut total = 0.0;
    let mut as_extreme = 0.0;
    // Summing from the smallest terms upward keeps the small ones from being rounded away.
    let mut terms: Vec<f64> = left.iter().chain(right.iter()).copied().collect();
    terms.push(0.0);
    terms.sort_by(|a, b| a.total_cmp(b));
    for &t in &terms {
        let p = t.exp();
        total += p;
        if t <= threshold {
            as_extreme += p;
        }
    }
    (as_extreme / total).min(1.0)
}

/// Two-sided p-value of the G-test (likelihood-ratio chi-square test of independence, 1 degree
/// of freedom, no continuity correction): G = 2 Σ O·ln(O/E) over the four cells.
///
/// A likelihood-ratio test rather than Pearson's chi-square because G is the statistic the
/// deviance of the logistic model is made of, so both parts of a report speak of the same
/// likelihood; on the large, well-filled tables it is used for the two agree closely.
/// A table with an empty row or column carries no evidence: p = 1.
pub fn g_test(table: &TwoByTwo) -> f64 {
    let n = table.total();
    let rows = [table.exposed_total(), table.unexposed_total()];
    let cols = [
        table.exposed_bad + table.unexposed_bad,
        table.exposed_good + table.unexposed_good,
    ];
    if rows.contains(&0) || cols.contains(&0) {
        return 1.0;
    }
    let observed = [
        [table.exposed_bad, table.exposed_good],
        [table.unexposed_bad, table.unexposed_good],
    ];
    let nf = n as f64;
    let mut g = 0.0;
    for (i, row) in observed.iter().enumerate() {
        for (j, &o) in row.iter().enumerate() {
            if o > 0 {
                let expected = rows[i] as f64 * cols[j] as f64 / nf;
                g += o as f64 * (o as f64 / expected).ln();
            }
        }
    }
    let g = (2.0 * g).max(0.0);
    chi_squared_1df().sf(g)
}

// ---------------------------------------------------------------------------------------------
// Multiple comparisons
// ---------------------------------------------------------------------------------------------

/// Benjamini–Hochberg adjusted p-values (q-values), in the order of the input.
///
/// A report tests every candidate driver at once; at p < 0.05, one candidate in twenty looks
/// significant by chance. Calling the candidates with q ≤ α keeps the expected fraction of
/// false discoveries among them at most α. The step-up form: sort ascending, q(i) = p(i)·m/i,
/// then make it monotone from the largest p downward and cap it at 1 — the same numbers as R's
/// `p.adjust(p, "BH")`. A NaN p-value is treated as 1 (no evidence), so one bad candidate
/// cannot poison the others.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let clean = |v: f64| if v.is_nan() { 1.0 } else { v.clamp(0.0, 1.0) };
    let mut order: Vec<usize> = (0..m).collect();
    // Stable sort: equal p-values keep their input order, so the result is deterministic.
    order.sort_by(|&a, &b| clean(p[a]).total_cmp(&clean(p[b])));
    let mut q = vec![0.0; m];
    let mut running_min = 1.0f64;
    for (rank0, &idx) in order.iter().enumerate().rev() {
        let adjusted = clean(p[idx]) * m as f64 / (rank0 + 1) as f64;
        running_min = running_min.min(adjusted);
        q[idx] = running_min;
    }
    q
}

// ---------------------------------------------------------------------------------------------
// Latency to conversion: logistic regression
// ---------------------------------------------------------------------------------------------

/// A fitted logistic model P(y) = 1 / (1 + e^−(intercept + slope·x)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticFit {
    pub intercept: f64,
    /// Change of the log-odds of y per unit of x.
    pub slope: f64,
    /// Standard error of `slope`, from the inverse Fisher information at the estimate.
    pub slope_se: f64,
}

impl LogisticFit {
    /// The fitted P(y) at `x`.
    pub fn predict(&self, x: f64) -> f64 {
        logistic(self.intercept + self.slope * x)
    }

    /// Wald confidence interval of the slope at normal quantile `z`.
    pub fn slope_confidence_interval(&self, z: f64) -> (f64, f64) {
        (
            self.slope - z * self.slope_se,
            self.slope + z * self.slope_se,
        )
    }
}

/// Newton–Raphson gives up after this many iterations; it normally needs fewer than 10.
const LOGISTIC_MAX_ITERATIONS: usize = 100;

/// Fits y ~ x by maximum likelihood (Newton–Raphson, which for the logistic model is the same
/// as iteratively reweighted least squares), e.g. converted ~ shipping latency in seconds.
///
/// `None` when the model cannot be estimated: different lengths, fewer than two points, a
/// non-finite x, no variance in x, only one outcome, (quasi-)complete separation (every
/// converted cart faster than or as fast as every abandoned one, or the reverse — then the
/// maximum-likelihood slope is infinite; it is checked for up front rather than waiting for
/// the iteration to drift), or no convergence within the iteration limit.
///
/// x is standardised internally so the numbers Newton works with are of order 1 whether x is
/// in seconds or microseconds; the coefficients are transformed back. Each step is halved
/// while it would lower the likelihood, as R's `glm` does, so a bad first step cannot diverge.
/// Convergence: a step smaller than 1e-10 in standardised units, or a deviance change below
/// 1e-14 relative.
pub fn logistic_fit(x: &[f64], y: &[bool]) -> Option<LogisticFit> {
    if x.len() != y.len() || x.len() < 2 || x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Separation: with one regressor the MLE is finite iff the x ranges of the two outcomes
    // overlap strictly.
    let range = |want: bool| {
        x.iter().zip(y).filter(|(_, &yi)| yi == want).fold(
            None,
            |acc: Option<(f64, f64)>, (&xi, _)| {
                Some(acc.map_or((xi, xi), |(lo, hi)| (lo.min(xi), hi.max(xi))))
            },
        )
    };
    let (true_min, true_max) = range(true)?;
    let (false_min, false_max) = range(false)?;
    if false_max <= true_min || true_max <= false_min {
        return None;
    }

    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    if !(sd > 0.0 && sd.is_finite()) {
        return None;
    }
    let u: Vec<f64> = x.iter().map(|v| (v - mean) / sd).collect();

    let deviance = |b0: f64, b1: f64| -> f64 {
        2.0 * u
            .iter()
            .zip(y)
            .map(|(&ui, &yi)| {
                let eta = b0 + b1 * ui;
                // −ln P(observed y) = softplus(∓η), computed without overflow.
                if yi {
                    softplus(-eta)
                } else {
                    softplus(eta)
                }
            })
            .sum::<f64>()
    };
    // Score vector and Fisher information [[h00, h01], [h01, h11]].
    let score_and_information = |b0: f64, b1: f64| {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&ui, &yi) in u.iter().zip(y) {
            let p = logistic(b0 + b1 * ui);
            let r = f64::from(u8::from(yi)) - p;
            let w = p * (1.0 - p);
            g0 += r;
            g1 += r * ui;
            h00 += w;
            h01 += w * ui;
            h11 += w * ui * ui;
        }
        ((g0, g1), (h00, h01, h11))
    };

    // Start at the intercept-only MLE: the log-odds of the overall rate.
    let ybar = y.iter().filter(|&&v| v).count() as f64 / n;
    let (mut b0, mut b1) = ((ybar / (1.0 - ybar)).ln(), 0.0);
    let mut dev = deviance(b0, b1);
    for _ in 0..LOGISTIC_MAX_ITERATIONS {
        let ((g0, g1), (h00, h01, h11)) = score_and_information(b0, b1);
        let det = h00 * h11 - h01 * h01;
        if !(det > 0.0 && det.is_finite()) {
            return None;
        }
        let d0 = (h11 * g0 - h01 * g1) / det;
        let d1 = (h00 * g1 - h01 * g0) / det;
        let mut t = 1.0;
        let (nb0, nb1, ndev) = loop {
            let (c0, c1) = (b0 + t * d0, b1 + t * d1);
            let cdev = deviance(c0, c1);
            if cdev.is_finite() && cdev <= dev * (1.0 + 1e-12) {
                break (c0, c1, cdev);
            }
            t *= 0.5;
            if t < 1e-12 {
                return None;
            }
        };
        let step = (t * d0).abs().max((t * d1).abs());
        let dev_change = (dev - ndev).abs() / (ndev.abs() + 0.1);
        (b0, b1, dev) = (nb0, nb1, ndev);
        if step < 1e-10 || dev_change < 1e-14 {
            let (_, (h00, h01, h11)) = score_and_information(b0, b1);
            let det = h00 * h11 - h01 * h01;
            if !(det > 0.0 && det.is_finite()) {
                return None;
            }
            // Var(b1) = [I⁻¹]₁₁ = h00 / det; back to the units of x.
            let slope_se = (h00 / det).sqrt() / sd;
            let slope = b1 / sd;
            let intercept = b0 - b1 * mean / sd;
            return [intercept, slope, slope_se]
                .iter()
                .all(|v| v.is_finite())
                .then_some(LogisticFit {
                    intercept,
                    slope,
                    slope_se,
                });
        }
    }
    None
}

/// Change of P(y) per unit of x at `at_x`: the derivative slope·p·(1−p) of the fitted curve.
///
/// In probability units: −0.031 at x = 2 s of shipping.calculate_rates reads "each extra second
/// around 2 s costs 3.1 points of conversion". The logistic curve is not a straight line, so
/// the answer depends on where it is read; evaluate it at a meaningful latency (the median, or
/// the percentile the report quotes).
pub fn marginal_effect_per_unit(fit: &LogisticFit, at_x: f64) -> f64 {
    let p = fit.predict(at_x);
    fit.slope * p * (1.0 - p)
}

// ---------------------------------------------------------------------------------------------
// Percentiles
// ---------------------------------------------------------------------------------------------

/// The nearest-rank percentile of ascending `sorted` values: the value at 1-based rank
/// max(ceil(q·n), 1). `None` for no values or q outside [0, 1] (or NaN).
///
/// This is the definition the SQL queries use (`rn = greatest(CAST(ceil(q * n) AS BIGINT), 1)`
/// over `row_number()`), with q·n computed in f64 as DataFusion does, so a percentile printed
/// by a query and one computed here always name the same cart. Nearest rank, not
/// interpolation, because a percentile then is a latency some cart really saw.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    rank(sorted.len(), q).map(|r| sorted[r - 1])
}

/// `nearest_rank` of values in any order, by selection (O(n), no sort); reorders them.
#[cfg(test)]
pub fn nearest_rank_unsorted(values: &mut [f64], q: f64) -> Option<f64> {
    let r = rank(values.len(), q)?;
    let (_, at, _) = values.select_nth_unstable_by(r - 1, f64::total_cmp);
    Some(*at)
}

/// The 1-based nearest rank of quantile `q` among `n` values.
fn rank(n: usize, q: f64) -> Option<usize> {
    if n == 0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    Some(((q * n as f64).ceil() as usize).clamp(1, n))
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn standard_normal() -> Normal {
    Normal::standard()
}

fn chi_squared_1df() -> ChiSquared {
    ChiSquared::new(1.0).expect("1 degree of freedom is valid")
}

/// 1 / (1 + e^−t), without overflow for large |t|.
fn logistic(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// ln(1 + e^t), without overflow for large t or loss of precision for very negative t.
fn softplus(t: f64) -> f64 {
    t.max(0.0) + (-t.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    //! Reference values were computed independently with SciPy 1.17.1 (`fisher_exact`,
    //! `chi2_contingency(..., correction=False, lambda_="log-likelihood")`,
    //! `binomtest(...).proportion_ci(method="wilson")`, `contingency.relative_risk`,
    //! `false_discovery_control(method="bh")`) and statsmodels (`Logit`), or are textbook values.
    use super::*;

    fn close(actual: f64, expected: f64, rel: f64) -> bool {
        (actual - expected).abs() <= rel * expected.abs().max(f64::MIN_POSITIVE)
    }

    #[track_caller]
    fn assert_close(actual: f64, expected: f64, rel: f64) {
        assert!(
            close(actual, expected, rel),
            "got {actual:e}, expected {expected:e} (rel {rel:e})"
        );
    }

    fn table(a: u64, b: u64, c: u64, d: u64) -> TwoByTwo {
        TwoByTwo {
            exposed_bad: a,
            exposed_good: b,
            unexposed_bad: c,
            unexposed_good: d,
        }
    }

    #[test]
    fn z_95_is_the_normal_quantile() {
        assert_close(Normal::standard().inverse_cdf(0.975), Z_95, 1e-12);
    }

    #[test]
    fn wilson_matches_reference() {
        // Textbook ≈ (0.2553, 0.3662); SciPy binomtest(81, 263).proportion_ci("wilson").
        let (lo, hi) = wilson_interval(81, 263, Z_95);
        assert_close(lo, 0.2552885198782742, 1e-12);
        assert_close(hi, 0.36620957698280004, 1e-12);
        assert_eq!(wilson_interval(0, 10, Z_95).0, 0.0);
        assert_close(wilson_interval(0, 10, Z_95).1, 0.27753279986288926, 1e-12);
        assert_close(wilson_interval(10, 10, Z_95).0, 0.7224672001371109, 1e-12);
        assert_eq!(wilson_interval(10, 10, Z_95).1, 1.0);
        let (lo, hi) = wilson_interval(3, 1_000_000, Z_95);
        assert_close(lo, 1.0202712409681223e-06, 1e-9);
        assert_close(hi, 8.821149774312435e-06, 1e-9);
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    #[should_panic]
    fn wilson_rejects_more_successes_than_trials() {
        wilson_interval(5, 4, Z_95);
    }

    #[test]
    fn relative_risk_and_katz_interval_match_scipy() {
        for (t, rr, lo, hi) in [
            (
                table(120, 880, 300, 8700),
                3.6,
                2.9434038632757553,
                4.403065498995654,
            ),
            (
                table(30, 70, 45, 255),
                2.0,
                1.3369793676460866,
                2.9918187945132484,
            ),
            (
                table(1, 9, 11, 3),
                0.1272727272727273,
                0.019432203414004902,
                0.8335826237679139,
            ),
        ] {
            assert_close(t.relative_risk().unwrap(), rr, 1e-12);
            let (l, h) = t.rr_confidence_interval(Z_95).unwrap();
            assert_close(l, lo, 1e-10);
            assert_close(h, hi, 1e-10);
        }
    }

    #[test]
    fn haldane_anscombe_correction_when_a_cell_is_zero() {
        // a=0: 0.5 is added to every cell: (0.5/11)/(5.5/11), se = √(1/0.5 − 1/11 + 1/5.5 − 1/11).
        let t = table(0, 10, 5, 5);
        assert_eq!(t.relative_risk(), Some(0.0));
        let (lo, hi) = t.rr_confidence_interval(Z_95).unwrap();
        assert_close(lo, 0.0056862578332829376, 1e-10);
        assert_close(hi, 1.4534097911536128, 1e-10);
        // No abandoned unexposed cart: RR is infinite, yet the corrected interval exists.
        let t = table(4, 6, 0, 10);
        assert_eq!(t.relative_risk(), None);
        // Corrected: (4.5/11)/(0.5/11) = 9, se = √(1/4.5 − 1/11 + 1/0.5 − 1/11).
        let (lo, hi) = t.rr_confidence_interval(Z_95).unwrap();
        assert_close(lo, 0.5474735468932348, 1e-10);
        assert_close(hi, 147.95235397153567, 1e-10);
        // An empty group has no interval at all.
        assert_eq!(table(0, 0, 3, 4).rr_confidence_interval(Z_95), None);
        assert_eq!(table(3, 4, 0, 0).relative_risk(), None);
    }

    #[test]
    fn excess_and_proportion_changes() {
        let t = table(120, 880, 300, 8700);
        // Unexposed rate 300/9000; expected 1000/30 = 33.33 among the exposed; 120 observed.
        assert_close(t.excess_bad().unwrap(), 120.0 - 1000.0 / 30.0, 1e-12);
        assert!(table(1, 9, 11, 3).excess_bad().unwrap() < 0.0);
        assert_eq!(table(1, 9, 0, 0).excess_bad(), None);
    }

    #[test]
    fn fisher_matches_reference() {
        // Fisher's tea-tasting table: 34/70 = 0.4857142857 (ties x=1 and x=3 must both count).
        assert_close(
            fisher_exact_two_sided(&table(3, 1, 1, 3)),
            0.48571428571428565,
            1e-12,
        );
        for (t, p) in [
            (table(1, 9, 11, 3), 0.0027594561852200836),
            (table(120, 880, 300, 8700), 4.102996987094601e-28),
            (table(0, 10, 5, 5), 0.032507739938080496),
            (table(12, 999_988, 40, 1_999_960), 0.1409420001555979),
            (table(5100, 94_900, 50_000, 950_000), 0.1664780852914822),
            (table(700, 9300, 500, 9500), 2.8910470862828637e-09),
            (table(10, 0, 0, 10), 1.082508822446903e-05),
            (table(50, 0, 0, 50), 1.9823306042836675e-29),
            (table(300, 0, 0, 300), 1.4802978791996796e-179),
            (table(3, 0, 0, 2_000_000), 7.499977500711832e-19),
            (table(400, 600, 380, 620), 0.38373456111536575),
        ] {
            assert_close(fisher_exact_two_sided(&t), p, 1e-8);
        }
        assert_eq!(fisher_exact_two_sided(&table(2, 3, 3, 2)), 1.0);
        assert_eq!(fisher_exact_two_sided(&table(7, 12, 0, 0)), 1.0);
        assert_eq!(fisher_exact_two_sided(&table(0, 0, 3, 4)), 1.0);
        assert_eq!(fisher_exact_two_sided(&TwoByTwo::default()), 1.0);
        // Far beyond f64's range: SciPy also gives 0.
        assert_eq!(
            fisher_exact_two_sided(&table(1000, 1_000_000, 0, 2_000_000)),
            0.0
        );
    }

    #[test]
    fn fisher_scales_to_millions_of_carts() {
        // Balanced margins give the widest hypergeometric distribution (sd ≈ √n / 4).
        for (t, p) in [
            (
                table(500_500, 499_500, 499_500, 500_500),
                0.15771471255987612,
            ),
            (
                table(2_001_000, 1_999_000, 1_999_000, 2_001_000),
                0.1575068602064569,
            ),
        ] {
            assert_close(fisher_exact_two_sided(&t), p, 1e-8);
        }
        assert_eq!(
            fisher_exact_two_sided(&table(500_000, 500_000, 500_000, 500_000)),
            1.0
        );
    }

    #[test]
    fn fisher_is_symmetric_under_transposition_and_row_swap() {
        let t = table(17, 230, 95, 4100);
        let p = fisher_exact_two_sided(&t);
        assert_close(fisher_exact_two_sided(&table(95, 4100, 17, 230)), p, 1e-10);
        assert_close(fisher_exact_two_sided(&table(17, 95, 230, 4100)), p, 1e-10);
        assert_close(fisher_exact_two_sided(&table(230, 17, 4100, 95)), p, 1e-10);
    }

    #[test]
    fn g_test_matches_reference() {
        for (t, p) in [
            (table(3, 1, 1, 3), 0.14797595938502317),
            (table(1, 9, 11, 3), 0.00047250298087596376),
            (table(120, 880, 300, 8700), 4.8569090507447235e-28),
            (table(0, 10, 5, 5), 0.003305876912189953),
            (table(12, 999_988, 40, 1_999_960), 0.10534402856329798),
            (table(5100, 94_900, 50_000, 950_000), 0.1679864786029826),
            (table(700, 9300, 500, 9500), 2.401706559829942e-09),
            (table(10, 0, 0, 10), 1.3977963343581475e-07),
            (table(50, 0, 0, 50), 5.308044762406675e-32),
            (table(300, 0, 0, 300), 6.659149129599595e-183),
            (table(400, 600, 380, 620), 0.3591794264463448),
        ] {
            assert_close(g_test(&t), p, 1e-8);
        }
        assert_eq!(g_test(&table(7, 12, 0, 0)), 1.0);
        assert_eq!(g_test(&table(0, 7, 0, 12)), 1.0);
    }

    #[test]
    fn test_choice() {
        // Small: Fisher.
        assert_eq!(
            association_p_value(&table(3, 1, 1, 3)).0,
            AssociationTest::FisherExact
        );
        // Large and well filled: G-test.
        let (test, p) = association_p_value(&table(5100, 94_900, 50_000, 950_000));
        assert_eq!(test, AssociationTest::GTest);
        assert_close(p, 0.1679864786029826, 1e-8);
        // Large but a rare driver (expected exposed-abandoned ≈ 17): still G. Rarer: Fisher.
        assert_eq!(
            AssociationTest::choose(&table(12, 999_988, 40, 1_999_960)),
            AssociationTest::GTest
        );
        let rare = table(3, 0, 0, 2_000_000);
        assert!(rare.min_expected() < G_TEST_MIN_EXPECTED);
        assert_eq!(association_p_value(&rare).0, AssociationTest::FisherExact);
    }

    #[test]
    fn benjamini_hochberg_matches_reference() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        for (got, want) in q.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert_close(*got, want, 1e-12);
        }
        let q = benjamini_hochberg(&[0.2, 0.001, 0.5, 0.049, 0.049, 0.9, 0.0001]);
        let want = [
            0.28,
            0.0035,
            0.5833333333333334,
            0.08575,
            0.08575,
            0.9,
            0.0007,
        ];
        for (got, want) in q.iter().zip(want) {
            assert_close(*got, want, 1e-12);
        }
        assert!(benjamini_hochberg(&[]).is_empty());
        assert_eq!(benjamini_hochberg(&[0.7, f64::NAN]), vec![1.0, 1.0]);
        assert_eq!(benjamini_hochberg(&[0.9, 0.95]), vec![0.95, 0.95]);
    }

    #[test]
    fn two_proportion_z_test_matches_pearson_chi_square() {
        for (x1, n1, x2, n2, p) in [
            (300, 1000, 350, 1000, 0.01698420058213059),
            (45, 200, 30, 210, 0.03151807425222701),
            (5123, 20_000, 4987, 20_000, 0.11765387182387096),
        ] {
            assert_close(two_proportion_z_test(x1, n1, x2, n2), p, 1e-9);
        }
        assert_eq!(two_proportion_z_test(0, 0, 3, 10), 1.0);
        assert_eq!(two_proportion_z_test(0, 10, 0, 20), 1.0);
    }

    const X: [f64; 15] = [
        0.4, 0.9, 1.2, 1.5, 1.8, 2.1, 2.3, 2.7, 3.0, 3.4, 3.9, 4.4, 5.0, 6.1, 7.5,
    ];
    const Y: [u8; 15] = [1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0];

    #[test]
    fn logistic_matches_statsmodels() {
        let y: Vec<bool> = Y.iter().map(|&v| v == 1).collect();
        let fit = logistic_fit(&X, &y).unwrap();
        assert_close(fit.intercept, 1.99850708, 1e-7);
        assert_close(fit.slope, -0.50336268, 1e-7);
        assert_close(fit.slope_se, 0.3363384, 1e-6);
        // The same data in milliseconds with a large offset: the same model, rescaled.
        let x_ms: Vec<f64> = X.iter().map(|v| v * 1000.0 + 1e6).collect();
        let ms = logistic_fit(&x_ms, &y).unwrap();
        assert_close(ms.slope, -0.50336268e-3, 1e-6);
        assert_close(ms.slope_se, 0.3363384e-3, 1e-6);
        assert_close(ms.intercept, 505.361189, 1e-7);
        assert_close(ms.predict(2.0 * 1000.0 + 1e6), fit.predict(2.0), 1e-9);
    }

    #[test]
    fn logistic_recovers_a_known_slope() {
        // 41 latencies from 0 to 10 s, 2000 carts each, converted = round(2000·p(x)) with
        // P(converted) = logistic(1.5 − 0.6·x). statsmodels on the same data: 1.49988996,
        // −0.59997306, se(slope) 0.00446773.
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..=40 {
            let xi = f64::from(i) * 0.25;
            let k = (2000.0 * logistic(1.5 - 0.6 * xi)).round() as usize;
            x.extend(std::iter::repeat_n(xi, 2000));
            y.extend((0..2000).map(|j| j < k));
        }
        let fit = logistic_fit(&x, &y).unwrap();
        assert!((fit.slope + 0.6).abs() < 1e-3, "{fit:?}");
        assert!((fit.intercept - 1.5).abs() < 1e-3, "{fit:?}");
        assert_close(fit.intercept, 1.49988996, 1e-7);
        assert_close(fit.slope, -0.59997306, 1e-7);
        assert_close(fit.slope_se, 0.00446773, 1e-5);
        let (lo, hi) = fit.slope_confidence_interval(Z_95);
        assert!(lo < -0.6 && -0.6 < hi);
        // At x = 2.5 s, p = logistic(0) = ½: each extra second costs 0.6·¼ = 15 points.
        assert!((marginal_effect_per_unit(&fit, 2.5) + 0.15).abs() < 1e-3);
    }

    #[test]
    fn logistic_refuses_what_cannot_be_estimated() {
        let y = [true, false, true, false];
        assert_eq!(logistic_fit(&[1.0, 1.0, 1.0, 1.0], &y), None); // no variance
        assert_eq!(logistic_fit(&[1.0, 2.0, 3.0], &y), None); // lengths differ
        assert_eq!(logistic_fit(&[1.0, 2.0, f64::NAN, 4.0], &y), None);
        assert_eq!(logistic_fit(&[1.0, 2.0, 3.0, 4.0], &[true; 4]), None); // one outcome
                                                                           // Complete and quasi-complete separation: the MLE slope is infinite.
        assert_eq!(
            logistic_fit(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]),
            None
        );
        assert_eq!(
            logistic_fit(&[1.0, 2.0, 2.0, 4.0], &[true, true, false, false]),
            None
        );
        // Overlap, however small, is estimable.
        let fit = logistic_fit(&[1.0, 2.0, 3.0, 4.0], &[true, false, true, false]).unwrap();
        assert!(fit.slope < 0.0 && fit.slope_se > 0.0);
    }

    #[test]
    fn nearest_rank_matches_sql() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        // numpy percentile(method="inverted_cdf") gives 1, 1, 50, 95, 99, 100.
        for (q, want) in [
            (0.0, 1.0),
            (0.01, 1.0),
            (0.5, 50.0),
            (0.95, 95.0),
            (0.99, 99.0),
            (1.0, 100.0),
        ] {
            assert_eq!(nearest_rank(&v, q), Some(want), "q = {q}");
            let mut shuffled: Vec<f64> = v.iter().rev().copied().collect();
            assert_eq!(
                nearest_rank_unsorted(&mut shuffled, q),
                Some(want),
                "q = {q}"
            );
        }
        // f64 arithmetic as in the SQL: 0.07 · 100 = 7.000000000000001, whose ceil is rank 8.
        assert_eq!(nearest_rank(&v, 0.07), Some(8.0));
        assert_eq!(nearest_rank(&[4.2], 0.95), Some(4.2));
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&v, 1.5), None);
        assert_eq!(nearest_rank(&v, f64::NAN), None);
    }
}

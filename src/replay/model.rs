//! The lifecycle model: which spans are which stage of a cart's life, which attributes hold
//! the cart id, user, value and item count, which stages mean success, when an idle cart
//! counts as abandoned, and the cause rules. Nothing about a shop's naming is a constant in
//! the replay: it all comes from here. Built-in presets: `reference` (the instrumentation
//! cartscope follows first) and `otel-demo` (the OpenTelemetry Demo's astronomy shop).

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::tables::builders::{SpanKind, StatusCode};
use crate::time::Duration;

pub const PRESETS: [&str; 2] = ["reference", "otel-demo"];

/// A built-in model, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    Reference,
    OtelDemo,
}

impl Preset {
    /// Its TOML, as `cartscope model --print` shows it.
    pub fn text(self) -> &'static str {
        match self {
            Preset::Reference => REFERENCE,
            Preset::OtelDemo => OTEL_DEMO,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Reference => "reference",
            Preset::OtelDemo => "otel-demo",
        }
    }
}

/// The presets, as files beside this one.
const REFERENCE: &str = include_str!("presets/reference.toml");
const OTEL_DEMO: &str = include_str!("presets/otel-demo.toml");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    pub threshold: Duration,
    pub keys: Keys,
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub causes: Causes,
    #[serde(default)]
    pub derived: Derived,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    #[serde(default)]
    pub cart_id: Vec<String>,
    #[serde(default)]
    pub user_id: Vec<String>,
    #[serde(default)]
    pub session_id: Vec<String>,
    #[serde(default)]
    pub item_count: Vec<String>,
    #[serde(default)]
    pub total_value: Vec<String>,
    /// A line's unit price and its quantity (1 when not recorded), on the spans that add to
    /// the cart: a cart without a recorded total is worth the sum of its lines.
    #[serde(default)]
    pub line_price: Vec<String>,
    #[serde(default)]
    pub line_quantity: Vec<String>,
    /// A line's product on the spans that add to the cart. A line whose price is not
    /// recorded is valued at its product's price recorded elsewhere in the export (a product
    /// page, another client), and such a cart's value is an estimate, not a recorded value.
    #[serde(default)]
    pub product_id: Vec<String>,
    /// Where a sampler records the probability with which a span's trace was kept, when
    /// its tracestate holds no OpenTelemetry threshold (`ot=th:...`): as a probability, or as
    /// an adjusted count (1/p, how many traces this one stands for). Numbers outside (0, 1]
    /// and below 1 are ignored.
    #[serde(default)]
    pub sampling_probability: Vec<String>,
    #[serde(default)]
    pub adjusted_count: Vec<String>,
    #[serde(default)]
    pub cart_is_user: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    #[serde(default)]
    pub spans: Vec<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default, rename = "where")]
    pub conditions: std::collections::BTreeMap<String, String>,
    /// Attributes of which the span must carry one, whatever its value (the spellings of an
    /// order id, which shows that an order was placed). Alone, they match spans of any name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub has: Vec<String>,
    /// Only spans of this kind (`server`, `client`, ...): the same operation is often a
    /// client span in the caller and a server span in the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SpanKind>,
    /// Only spans of these services (`service.name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Only spans with this status: `ok` (did not fail: status ok or unset, as
    /// OpenTelemetry leaves a success), `error`, or exactly `unset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusCode>,
    #[serde(default)]
    pub success: bool,
    /// Idle time after which a cart whose furthest stage is this one is abandoned.
    #[serde(default)]
    pub threshold: Option<Duration>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Causes {
    pub slow_ms: f64,
    pub error_window: Duration,
    pub percentile: f64,
}

impl Default for Causes {
    fn default() -> Self {
        Causes {
            slow_ms: 2000.0,
            error_window: Duration::from_mins(5),
            percentile: 0.95,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Derived {
    pub span_name: String,
    pub metric_name: String,
    pub stage_attribute: String,
    pub abandoned_stage: String,
    pub cart_id_attribute: String,
    pub service_name: String,
}

impl Default for Derived {
    fn default() -> Self {
        Derived {
            span_name: "cart.abandonment.detected".into(),
            metric_name: "cart.state.transitions".into(),
            stage_attribute: "cart.stage".into(),
            abandoned_stage: "abandoned".into(),
            cart_id_attribute: "cart.id".into(),
            service_name: "cart".into(),
        }
    }
}

impl Model {
    /// A preset by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Model> {
        if let Ok(p) = <Preset as clap::ValueEnum>::from_str(name_or_path, false) {
            return Model::parse(p.text(), p.name());
        }
        let path = std::path::Path::new(name_or_path);
        if !path.exists() {
            bail!(
                "'{name_or_path}' is neither a preset ({}) nor a file",
                PRESETS.join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the model '{name_or_path}'"))?;
        Model::parse(&text, name_or_path)
    }

    /// Parses and checks a model; errors name the file, line and key.
    pub fn parse(text: &str, origin: &str) -> Result<Model> {
        let model: Model = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            // The key, read off the line, when the error is about a value.
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| format!(", {}", k.trim()))
                .unwrap_or_default();
            match line {
                Some(l) => anyhow!("model '{origin}', line {l}{key}: {}", e.message()),
                None => anyhow!("model '{origin}': {}", e.message()),
            }
        })?;
        model.check().with_context(|| format!("model '{origin}'"))?;
        Ok(model)
    }

    fn check(&self) -> Result<()> {
        if self.stages.is_empty() {
            bail!("it has no [[stages]]");
        }
        if !self.stages.iter().any(|s| s.success) {
            bail!("no stage has success = true: nothing would ever count as converted");
        }
        if self.keys.cart_id.is_empty() && !self.keys.cart_is_user {
            bail!("keys.cart_id is empty: name the attribute that holds the cart id, or set keys.cart_is_user = true");
        }
        if self.keys.cart_is_user && self.keys.user_id.is_empty() {
            bail!("keys.cart_is_user needs keys.user_id");
        }
        if !(0.0..=1.0).contains(&self.causes.percentile) {
            bail!("causes.percentile must be between 0 and 1");
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.stages {
            if !names.insert(&s.name) {
                bail!("stage '{}' is listed twice", s.name);
            }
            if s.spans.is_empty() && s.pattern.is_none() && s.has.is_empty() {
                bail!(
                    "stage '{}' matches no span: give spans = [...], pattern = '...' or has = [...]",
                    s.name
                );
            }
            if let Some(p) = &s.pattern {
                regex_syntax_ok(p).with_context(|| format!("stage '{}': pattern", s.name))?;
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

fn regex_syntax_ok(p: &str) -> Result<()> {
    // DataFusion evaluates the pattern; reject the obviously broken ones early.
    let mut depth = 0i32;
    for c in p.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            bail!("unbalanced ')' in '{p}'");
        }
    }
    if depth != 0 {
        bail!("unbalanced '(' in '{p}'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_round_trip() {
        for p in PRESETS {
            let m = Model::load(p).unwrap();
            assert_eq!(m.name, p);
            let again = Model::parse(&m.to_toml().unwrap(), "round trip").unwrap();
            assert_eq!(m, again);
        }
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let bad = REFERENCE.replace("slow_ms = 2000.0", "slow_ms = \"fast\"");
        let e = format!("{:#}", Model::parse(&bad, "m.toml").unwrap_err());
        assert!(e.contains("m.toml") && e.contains("line"), "{e}");
        let unknown = REFERENCE.replace("threshold = \"30m\"", "threshhold = \"30m\"");
        let e = format!("{:#}", Model::parse(&unknown, "m.toml").unwrap_err());
        assert!(e.contains("threshhold"), "{e}");
        let bad_kind = REFERENCE.replace(
            "spans = [\"checkout.complete\"]",
            "spans = [\"checkout.complete\"]\nkind = \"sever\"",
        );
        let e = format!("{:#}", Model::parse(&bad_kind, "m.toml").unwrap_err());
        assert!(e.contains("kind: unknown span kind 'sever'"), "{e}");
        let no_success = REFERENCE.replace("success = true", "");
        assert!(Model::parse(&no_success, "m").is_err());
        // A duration is typed when the model is read: a bad one names its line.
        let bad_duration = REFERENCE.replace("threshold = \"30m\"", "threshold = \"soon\"");
        let e = format!("{:#}", Model::parse(&bad_duration, "m.toml").unwrap_err());
        assert!(e.contains("'m.toml', line 6, threshold: 'soon'"), "{e}");
    }

    #[test]
    fn stages_match_by_presence_kind_service_and_status() {
        let text = REFERENCE.replace(
            "spans = [\"checkout.complete\"]",
            "has = [\"app.order.id\"]\nkind = \"SPAN_KIND_SERVER\"\nservices = [\"checkout\"]\nstatus = \"Ok\"",
        );
        let m = Model::parse(&text, "m.toml").unwrap();
        let done = m.stages.last().unwrap();
        assert!(done.spans.is_empty());
        assert_eq!(done.has, ["app.order.id"]);
        assert_eq!(done.kind, Some(SpanKind::Server));
        assert_eq!(done.services, ["checkout"]);
        assert_eq!(done.status, Some(StatusCode::Ok));
        let again = Model::parse(&m.to_toml().unwrap(), "round trip").unwrap();
        assert_eq!(m, again);
    }
}

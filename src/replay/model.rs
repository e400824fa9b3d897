//! The lifecycle model: which spans are which stage of a cart's life, which attributes hold
//! the cart id, user, value and item count, which stages mean success, when an idle cart
//! counts as abandoned, and the cause rules. Nothing about a shop's naming is a constant in
//! the replay: it all comes from here. Built-in presets: `reference` (the instrumentation
//! cartscope follows first) and `otel-demo` (the OpenTelemetry Demo's astronomy shop).

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::time::parse_duration;

pub const PRESETS: [&str; 2] = ["reference", "otel-demo"];

const REFERENCE: &str = r#"# cartscope lifecycle model: the reference instrumentation
# (cart.add_item, cart.begin_checkout, checkout.complete; cart.id on the spans).
name = "reference"

# A cart idle for this long without converting is abandoned (per stage below if needed).
threshold = "30m"

[keys]
# Attributes that hold each key, the first present wins.
cart_id = ["cart.id"]
user_id = ["user.id"]
# Spans in traces without a cart id are attributed through this attribute, within the
# cart's active window. Empty: off.
session_id = []
item_count = ["cart.item_count"]
total_value = ["cart.total_value"]
# true when the shop has no cart id and a cart is its user's (the user id is the cart id).
cart_is_user = false

# The stages, in order. A span is a stage when its name is one of `spans` or matches the
# regular expression `pattern`, and every attribute in `where` has the given value.
[[stages]]
name = "active"
spans = ["cart.add_item"]

[[stages]]
name = "checkout"
spans = ["cart.begin_checkout"]

[[stages]]
name = "shipping"
spans = ["shipping.calculate_rates"]

[[stages]]
name = "payment"
spans = ["payment.authorize"]

[[stages]]
name = "completed"
spans = ["checkout.complete"]
success = true

[causes]
# The instrumentation's rules for an abandoned cart's last operation.
slow_ms = 2000.0
# Signals: an error within this long before the cart went idle.
error_window = "5m"
# Signals: slower than this percentile of its own operation in the same export.
percentile = 0.95

[derived]
# What the instrumentation's background worker records for each abandonment; the replay
# writes these rows (marked derived) unless the input already has them.
span_name = "cart.abandonment.detected"
metric_name = "cart.state.transitions"
stage_attribute = "cart.stage"
abandoned_stage = "abandoned"
cart_id_attribute = "cart.id"
service_name = "cart"
"#;

const OTEL_DEMO: &str = r#"# cartscope lifecycle model: the OpenTelemetry Demo (astronomy shop).
# The demo has no cart id: a cart is its user's. Both the older app.* attribute names and the
# newer ones are listed.
name = "otel-demo"
threshold = "30m"

[keys]
cart_id = []
user_id = ["app.user.id", "user.id", "user_id"]
session_id = []
item_count = ["app.cart.items.count", "app.cart.item.count"]
total_value = ["app.cart.total.value", "app.order.amount"]
cart_is_user = true

[[stages]]
name = "active"
spans = ["oteldemo.CartService/AddItem"]
pattern = '^(oteldemo\.)?CartService/AddItem$'

[[stages]]
name = "checkout"
spans = ["oteldemo.CheckoutService/PlaceOrder"]
pattern = '^(oteldemo\.)?CheckoutService/PlaceOrder$'

[[stages]]
name = "shipping"
spans = ["oteldemo.ShippingService/GetQuote"]
pattern = '^(oteldemo\.)?ShippingService/GetQuote$'

[[stages]]
name = "payment"
spans = ["oteldemo.PaymentService/Charge"]
pattern = '^(oteldemo\.)?PaymentService/Charge$'

[[stages]]
name = "completed"
spans = ["orders publish"]
success = true

[causes]
slow_ms = 2000.0
error_window = "5m"
percentile = 0.95

[derived]
span_name = "cart.abandonment.detected"
metric_name = "cart.state.transitions"
stage_attribute = "cart.stage"
abandoned_stage = "abandoned"
cart_id_attribute = "cart.id"
service_name = "cart"
"#;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    pub threshold: String,
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
    #[serde(default)]
    pub success: bool,
    /// Idle time after which a cart whose furthest stage is this one is abandoned.
    #[serde(default)]
    pub threshold: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Causes {
    pub slow_ms: f64,
    pub error_window: String,
    pub percentile: f64,
}

impl Default for Causes {
    fn default() -> Self {
        Causes {
            slow_ms: 2000.0,
            error_window: "5m".into(),
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

/// The text of a preset, as `cartscope model --print` shows it.
pub fn preset_text(name: &str) -> Result<&'static str> {
    match name {
        "reference" => Ok(REFERENCE),
        "otel-demo" => Ok(OTEL_DEMO),
        _ => bail!("no preset '{name}': the presets are {}", PRESETS.join(", ")),
    }
}

impl Model {
    /// A preset by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Model> {
        if PRESETS.contains(&name_or_path) {
            return Model::parse(preset_text(name_or_path)?, name_or_path);
        }
        let path = std::path::Path::new(name_or_path);
        if !path.exists() {
            bail!(
                "--model '{name_or_path}' is neither a preset ({}) nor a file",
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
            match line {
                Some(l) => anyhow!("model '{origin}', line {l}: {}", e.message()),
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
        parse_duration(&self.threshold).context("threshold")?;
        parse_duration(&self.causes.error_window).context("causes.error_window")?;
        if !(0.0..=1.0).contains(&self.causes.percentile) {
            bail!("causes.percentile must be between 0 and 1");
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.stages {
            if !names.insert(&s.name) {
                bail!("stage '{}' is listed twice", s.name);
            }
            if s.spans.is_empty() && s.pattern.is_none() {
                bail!(
                    "stage '{}' matches no span: give spans = [...] or pattern = '...'",
                    s.name
                );
            }
            if let Some(p) = &s.pattern {
                regex_syntax_ok(p).with_context(|| format!("stage '{}': pattern", s.name))?;
            }
            if let Some(t) = &s.threshold {
                parse_duration(t).with_context(|| format!("stage '{}': threshold", s.name))?;
            }
        }
        Ok(())
    }

    pub fn threshold_ns(&self) -> u64 {
        parse_duration(&self.threshold).unwrap_or(30 * 60 * 1_000_000_000)
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
        let no_success = REFERENCE.replace("success = true", "");
        assert!(Model::parse(&no_success, "m").is_err());
    }
}

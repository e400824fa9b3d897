//! `cartscope model`: a preset as a starting file, or a model suggested by the data.

use anyhow::Result;

use crate::cli::{DataArgs, ModelArgs};
use crate::commands::setup::{open_data, Globals};

pub async fn run(a: &ModelArgs, g: &Globals) -> Result<()> {
    if let Some(p) = a.print {
        print!("{}", p.text());
        return Ok(());
    }
    let data = DataArgs {
        data: a.data.clone(),
        strict: a.strict,
    };
    let ctx = open_data(
        &data,
        &Default::default(),
        g,
        &crate::read::projection::Projection::everything(),
    )
    .await?;
    let s = crate::replay::suggest::suggest(&ctx).await?;
    match &a.out {
        Some(path) => crate::output::write_atomically(path, |w| {
            use std::io::Write;
            w.write_all(s.toml.as_bytes())?;
            Ok(())
        })?,
        None => print!("{}", s.toml),
    }
    let stages: Vec<&str> = s.model.stages.iter().map(|st| st.name.as_str()).collect();
    eprintln!(
        "cartscope: suggested a model for {} carts: {} ({}); stages {}",
        s.carts,
        if s.model.keys.cart_is_user {
            format!(
                "a cart is its user's, {}",
                s.model.keys.user_id.join(" or ")
            )
        } else {
            format!("cart key {}", s.model.keys.cart_id.join(" or "))
        },
        match s.weak.len() {
            0 => "no weak evidence".to_string(),
            1 => "one choice on weak evidence: see the file's WEAK EVIDENCE line".to_string(),
            n => format!("{n} choices on weak evidence: see the file's WEAK EVIDENCE lines"),
        },
        stages.join(" > ")
    );
    for w in &s.weak {
        eprintln!("cartscope: weak evidence: {w}");
    }
    Ok(())
}

//! `cartscope completions SHELL` and `cartscope man`: the command line's own description
//! (clap's), rendered as a shell's completion script (clap_complete) or as manual pages in
//! roff (clap_mangen), so neither can drift from the flags the binary takes.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

pub fn completions(a: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "cartscope", &mut out);
    out.flush()?;
    Ok(())
}

pub fn man(a: &ManArgs) -> Result<()> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Global flags reach the subcommands, and each subcommand gets its page's name
    // (`cartscope-detect`), once the command is built.
    cmd.build();
    match &a.out {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            let mut written = 0;
            write_pages(&cmd, dir, &mut written)?;
            eprintln!(
                "cartscope: wrote {written} manual pages to '{}' (read one with `man {}/cartscope.1`)",
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// `cmd`'s page and those of its subcommands (but hidden ones), each written atomically.
fn write_pages(cmd: &clap::Command, dir: &std::path::Path, written: &mut usize) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    crate::output::write_atomically(&path, |w| {
        man.render(w)
            .with_context(|| format!("cannot write '{}'", path.display()))
    })?;
    *written += 1;
    Ok(())
}

//! `cartscope completions SHELL` and `cartscope man`: scripts every shell takes, loaded into
//! a real bash, and manual pages that groff renders.

use crate::util::*;

#[test]
fn completions_for_every_shell_name_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = cartscope(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for word in ["detect", "report", "--as-of", "--memory-limit", "--engine"] {
            assert!(script.contains(word), "{shell}: no {word} in the script");
        }
    }
    let o = cartscope(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bash"), "{}", stderr(&o));
}

/// The bash script loaded into bash, and its function asked to complete `cartscope de` and
/// `cartscope detect --as`.
#[test]
fn the_bash_completion_completes_in_bash() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("cartscope.bash");
    std::fs::write(&script, stdout(&cartscope(&["completions", "bash"]))).unwrap();
    let complete = |words: &str| {
        let probe = format!(
            "source '{}'
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
             COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}
             _cartscope cartscope \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let o = std::process::Command::new("bash")
            .args(["--norc", "-c", &probe])
            .output()
            .expect("bash runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let commands = complete("cartscope de");
    assert_eq!(
        commands.lines().collect::<Vec<_>>(),
        ["detect"],
        "{commands}"
    );
    let flags = complete("cartscope detect --as");
    assert!(flags.lines().any(|l| l == "--as-of"), "{flags}");
}

#[test]
fn the_manual_pages_render() {
    let o = cartscope(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(
        page.lines().any(|l| l.starts_with(".TH cartscope 1")),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(
        page.contains("Exit codes"),
        "the exit codes are in the page"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let o = cartscope(&["man", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "cartscope.1",
        "cartscope-detect.1",
        "cartscope-report.1",
        "cartscope-ballista-scheduler.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "no {want} in {pages:?}");
    }
    assert!(stderr(&o).contains(&format!("wrote {} manual pages", pages.len())));
    assert_eq!(
        std::fs::read_to_string(dir.join("cartscope.1")).unwrap(),
        page
    );
    // The detect page documents its own flags and the global ones.
    let detect = std::fs::read_to_string(dir.join("cartscope-detect.1")).unwrap();
    for flag in ["as\\-of", "threshold", "memory\\-limit"] {
        assert!(detect.contains(flag), "no {flag} in cartscope-detect.1");
    }
    // groff takes every page without a warning.
    for p in &pages {
        let o = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.join(p))
            .output()
            .expect("groff runs");
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// clap's messages are the only colour cartscope prints: none on a pipe by default or with
/// `--color never`, ANSI escapes with `--color always`, wherever the flag stands.
#[test]
fn colour_is_asked_for_or_left_out() {
    let esc = |o: &std::process::Output| o.stderr.contains(&0x1b) || o.stdout.contains(&0x1b);
    let bad = ["detect", "--no-such-flag"];
    let o = cartscope(&bad);
    assert_eq!(o.status.code(), Some(2));
    assert!(!esc(&o), "{}", stderr(&o));
    let o = cartscope(&["--color", "always", "detect", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(esc(&o), "{}", stderr(&o));
    let o = cartscope(&["detect", "--no-such-flag", "--color=always"]);
    assert!(esc(&o), "{}", stderr(&o));
    let o = cartscope(&["--color", "never", "detect", "--no-such-flag"]);
    assert!(!esc(&o), "{}", stderr(&o));
    let o = cartscope(&["--color", "always", "--help"]);
    assert!(o.status.success() && esc(&o));
    let o = cartscope(&["--color", "sometimes", "detect", "--data", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--color"), "{}", stderr(&o));

    // On a terminal (a pty from util-linux's `script`): colour, unless NO_COLOR is set.
    let bin = env!("CARGO_BIN_EXE_cartscope");
    let on_a_terminal = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &format!("{bin} detect --no-such-flag"), "/dev/null"]);
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        let o = c.output().expect("script (util-linux) runs");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("no-such-flag"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        o.stdout.contains(&0x1b)
    };
    assert!(on_a_terminal(false));
    assert!(!on_a_terminal(true));
}

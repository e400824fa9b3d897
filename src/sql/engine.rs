//! Where a session's queries run: in this process (DataFusion), or on an Apache DataFusion
//! Ballista cluster (`--engine ballista-standalone`, `--engine df://HOST:PORT`). The choice
//! is made in one place, `session::context`, which hands the state it built to `session`
//! below; everything after it (the replay, the library, the report, the checks) sends the
//! same SQL to whatever context it gets.
//!
//! Ballista is behind the `ballista` cargo feature (`sql::ballista`): without it the engine
//! still parses, and asking for it says how to build with it.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;

/// The port a Ballista scheduler listens on unless told otherwise.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// A Ballista scheduler and one executor started inside this process for the command.
    BallistaStandalone,
    /// A running Ballista scheduler (`cartscope ballista scheduler`).
    Remote { host: String, port: u16 },
}

impl FromStr for Engine {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Engine> {
        match s {
            "local" => return Ok(Engine::Local),
            "ballista-standalone" => return Ok(Engine::BallistaStandalone),
            _ => {}
        }
        let Some(rest) = s.strip_prefix("df://") else {
            bail!("'{s}' is not an engine: give local, ballista-standalone or df://HOST:PORT (a Ballista scheduler)");
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => {
                let port: u16 = p.parse().map_err(|_| {
                    anyhow::anyhow!("'{s}': the port '{p}' is not a number from 1 to 65535")
                })?;
                if port == 0 {
                    bail!("'{s}': the port must be from 1 to 65535");
                }
                (h, port)
            }
            None => (rest, DEFAULT_SCHEDULER_PORT),
        };
        if host.is_empty() || host.contains('/') {
            bail!("'{s}' names no scheduler host: give df://HOST:PORT, like df://127.0.0.1:50050");
        }
        Ok(Engine::Remote {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Engine::Local => f.write_str("local"),
            Engine::BallistaStandalone => f.write_str("ballista-standalone"),
            Engine::Remote { host, port } => write!(f, "df://{host}:{port}"),
        }
    }
}

impl Engine {
    pub fn is_local(&self) -> bool {
        *self == Engine::Local
    }

    /// An error unless this build can run the engine; checked before any data is read.
    pub fn check_built(&self) -> Result<()> {
        if self.is_local() || cfg!(feature = "ballista") {
            return Ok(());
        }
        Err(not_built(format_args!("--engine {self}")))
    }

    /// The context that runs `state`'s queries here. cartscope's SQL functions are
    /// registered on the result by the caller, as for every engine.
    pub async fn session(&self, state: SessionState) -> Result<SessionContext> {
        match self {
            Engine::Local => Ok(SessionContext::new_with_state(state)),
            #[cfg(feature = "ballista")]
            Engine::BallistaStandalone => crate::sql::ballista::standalone(state).await,
            #[cfg(feature = "ballista")]
            Engine::Remote { host, port } => crate::sql::ballista::remote(host, *port, state).await,
            #[cfg(not(feature = "ballista"))]
            _ => Err(not_built(format_args!("--engine {self}"))),
        }
    }
}

/// Why `what` cannot run in a build without the `ballista` feature, and how to get one.
pub fn not_built(what: impl fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} runs on Apache DataFusion Ballista, which this cartscope was built without: build it with `cargo build --release --features ballista` (see the README, \"On a Ballista cluster\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_and_print_back() {
        for s in [
            "local",
            "ballista-standalone",
            "df://127.0.0.1:50050",
            "df://sched.example:7000",
        ] {
            assert_eq!(s.parse::<Engine>().unwrap().to_string(), s);
        }
        assert_eq!(
            "df://h".parse::<Engine>().unwrap(),
            Engine::Remote {
                host: "h".into(),
                port: DEFAULT_SCHEDULER_PORT
            }
        );
        assert_eq!(
            "df://h:1/".parse::<Engine>().unwrap().to_string(),
            "df://h:1"
        );
        for bad in [
            "ballista",
            "df://",
            "df://:50050",
            "df://h:0",
            "df://h:99999",
            "df://h:x",
            "http://h:1",
        ] {
            let e = bad.parse::<Engine>().unwrap_err().to_string();
            assert!(e.contains(bad.trim_end_matches('/')), "{bad}: {e}");
        }
    }
}

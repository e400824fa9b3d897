//! Apache DataFusion Ballista (the `ballista` cargo feature): the client side of
//! `--engine ballista-standalone` and `--engine df://HOST:PORT`, and the scheduler and
//! executor processes of `cartscope ballista`, with cartscope's SQL functions known on every
//! side.
//!
//! What had to change for Ballista, and why:
//! - A plan travels as protobuf, and only tables that datafusion-proto can describe travel
//!   with it: listing tables over files, views, empty tables. So no table of a session is an
//!   in-memory table (`session::context` registers an empty table as `EmptyTable`, and the
//!   replay's `stages` is a view over `VALUES`), and Ballista engines read ingested datasets
//!   only: a raw export would be an in-memory table, so it is refused before it is read, with
//!   the advice to `cartscope ingest` it (`commands::setup`).
//! - Every process resolves cartscope's functions by name (`udf::shipped`): the client
//!   plans with them, the scheduler decodes and plans (its session builder below), each
//!   executor decodes and runs (its function registry below). Ballista replaces a client
//!   state's function lists when it makes the context, so `session::context` registers them
//!   again on the context it gets back, as for the local engine.
//! - `now()` is pinned to the as-of time by a function the client folds into a constant
//!   while it optimises, before the plan leaves it; the scheduler and the executors never see
//!   the function (a test checks the plan).
//! - `NOT IN (subquery)` is a null-aware anti join, which Ballista runs in one task: the
//!   library writes `NOT EXISTS` (and Ballista's own rewrite of `NOT IN` stays on for an
//!   analyst's SQL).
//! - Files are read by every process at the path the client named: datasets, the replay's
//!   tables and the report's temporary tables must be on storage every executor reads at the
//!   same path (one machine: any folder; a cluster: a shared mount). Temporary tables go under
//!   `--work-dir`.
//! - Ballista 55's adaptive planner (on by default) re-plans stages as their inputs finish;
//!   with it, `exemplar_drilldown` on a 2,000-cart generated export came back with its rows
//!   out of the query's `ORDER BY`, a total order (two sorted runs, one after the other).
//!   The static planner keeps the order: the adaptive one is turned off for every session.
//! - A job could wait for ever: on the real JS SDK's export (no metrics), `reference_correlation`
//!   hung in about half the runs, the scheduler logging "task metrics array size 8 does not
//!   equal the stage metrics array size 7" and dropping a finished task's status. Its stage
//!   read a union of an empty table's branch and a Parquet file's. The session's views leave
//!   a table that is empty by construction out of their unions (`session::present`): 0 hangs
//!   in the runs after. Ballista's errors now reach stderr (`env_logger`, `RUST_LOG` for more).
//! - Ballista sets some of DataFusion's options its own way (no Utf8View types, sort-merge
//!   joins rather than hash joins, no round-robin repartitioning); the rows are the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

/// `state` with cartscope's functions added to its own.
fn with_functions(mut state: SessionState) -> datafusion::common::Result<SessionState> {
    let (scalars, aggregates) = crate::sql::udf::shipped();
    for f in scalars {
        state.register_udf(Arc::new(f))?;
    }
    for f in aggregates {
        state.register_udaf(Arc::new(f))?;
    }
    Ok(state)
}

/// A state with DataFusion's functions and cartscope's, for a scheduler or an executor.
fn server_state(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    with_functions(
        SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .build(),
    )
}

/// The session's settings with Ballista's (applied first: Ballista applies its own only to
/// a config that has none yet), and without the adaptive planner (see the module header).
fn client_config(config: &SessionConfig) -> SessionConfig {
    config
        .clone()
        .upgrade_for_ballista()
        .set_bool("ballista.planner.adaptive.enabled", false)
}

/// A scheduler and an executor inside this process, running `state`'s queries across
/// its target partitions.
pub async fn standalone(state: SessionState) -> Result<SessionContext> {
    let threads = state.config().target_partitions();
    let config = client_config(state.config()).with_ballista_standalone_parallelism(threads);
    let state = with_functions(
        SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build(),
    )?;
    SessionContext::standalone_with_state(state)
        .await
        .context("cannot start Ballista in this process (--engine ballista-standalone)")
}

/// A context whose queries run on the scheduler at `host:port`. Ballista connects only when
/// the first query runs; this checks first that something listens there, to say so plainly.
pub async fn remote(host: &str, port: u16, state: SessionState) -> Result<SessionContext> {
    let reach = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await;
    match reach {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => anyhow::bail!(
            "cannot reach a Ballista scheduler at {host}:{port} ({e}) (--engine df://{host}:{port}): start one with `cartscope ballista scheduler --port {port}`, or check the host and port"
        ),
        Err(_) => anyhow::bail!(
            "no answer from {host}:{port} within 10 s (--engine df://{host}:{port}): is a Ballista scheduler running there?"
        ),
    }
    let config = client_config(state.config());
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    SessionContext::remote_with_state(&format!("df://{host}:{port}"), state)
        .await
        .with_context(|| format!("cannot use the Ballista scheduler at {host}:{port}"))
}

/// What `cartscope ballista scheduler` was asked for.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub bind_host: String,
    pub port: u16,
    /// The host executors and clients are told to reach this scheduler at.
    pub external_host: String,
    /// `/readyz` answers 200 once this many executors have joined.
    pub min_executors: usize,
}

/// Runs a Ballista scheduler that knows cartscope's functions, until the process is stopped.
pub async fn run_scheduler(o: &SchedulerOptions) -> Result<()> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let addr = resolve(&o.bind_host, o.port).await.context("--bind-host")?;
    let builder: ballista_scheduler::scheduler_server::SessionBuilder = Arc::new(server_state);
    let config = SchedulerConfig {
        bind_host: o.bind_host.clone(),
        bind_port: o.port,
        external_host: o.external_host.clone(),
        min_ready_executors: o.min_executors,
        override_session_builder: Some(builder),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("cannot set up the Ballista scheduler")?;
    eprintln!(
        "cartscope: Ballista scheduler on {addr}: start executors with `cartscope ballista executor --scheduler {}:{}`, then run commands with --engine df://{}:{}",
        o.external_host, o.port, o.external_host, o.port
    );
    ballista_scheduler::scheduler_process::start_server(cluster, addr, Arc::new(config))
        .await
        .with_context(|| format!("the Ballista scheduler on {addr} stopped"))
}

/// What `cartscope ballista executor` was asked for.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    pub bind_host: String,
    /// The host the scheduler and clients are told to reach this executor at [default: the
    /// address the scheduler sees it connect from].
    pub external_host: Option<String>,
    /// Arrow Flight: where clients and other executors fetch results.
    pub port: u16,
    /// gRPC: where the scheduler pushes tasks.
    pub grpc_port: u16,
    /// Shuffle files [default: a temporary folder, removed on exit].
    pub work_dir: Option<PathBuf>,
    /// Tasks at once [default: the number of cores].
    pub vcores: usize,
    /// The executor's memory pool, shared by its tasks.
    pub memory: usize,
}

/// Runs a Ballista executor that knows cartscope's functions, until the process is stopped
/// (Ctrl-C or SIGTERM: it finishes its tasks first) or its scheduler goes.
pub async fn run_executor(o: &ExecutorOptions) -> Result<()> {
    use ballista_core::registry::BallistaFunctionRegistry;
    use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
    let temporary;
    let work_dir = match &o.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("--work-dir: cannot create '{}'", d.display()))?;
            d.clone()
        }
        None => {
            temporary = tempfile::Builder::new()
                .prefix("cartscope-executor-")
                .tempdir()
                .context("cannot create a temporary folder for the executor's shuffle files: give --work-dir")?;
            temporary.path().to_path_buf()
        }
    };
    let state = server_state(SessionConfig::new_with_ballista())?;
    let config = ExecutorProcessConfig {
        bind_host: o.bind_host.clone(),
        external_host: o.external_host.clone(),
        port: o.port,
        grpc_port: o.grpc_port,
        scheduler_host: o.scheduler_host.clone(),
        scheduler_port: o.scheduler_port,
        // Started before its scheduler is up, it retries rather than exits.
        scheduler_connect_timeout_seconds: 60,
        vcores: o.vcores,
        work_dir: Some(work_dir.to_string_lossy().into_owned()),
        memory_pool_size: Some(o.memory as u64),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        ..Default::default()
    };
    eprintln!(
        "cartscope: Ballista executor on {}:{} (tasks on gRPC port {}), {} task slots, {} of memory, shuffle files in '{}'; scheduler {}:{}",
        o.bind_host,
        o.port,
        o.grpc_port,
        o.vcores,
        crate::output::human_bytes(o.memory as u64),
        work_dir.display(),
        o.scheduler_host,
        o.scheduler_port
    );
    start_executor_process(Arc::new(config))
        .await
        .context("the Ballista executor stopped")
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve '{host}'"))?
        .next()
        .with_context(|| format!("'{host}' resolves to no address"))
}

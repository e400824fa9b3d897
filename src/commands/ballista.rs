//! `cartscope ballista scheduler|executor`: the processes of an Apache DataFusion Ballista
//! cluster that `--engine df://HOST:PORT` runs queries on (`sql::ballista`).

use anyhow::Result;

use crate::cli::{BallistaArgs, BallistaRole};
use crate::commands::setup::Globals;

#[cfg(feature = "ballista")]
pub async fn run(a: &BallistaArgs, g: &Globals) -> Result<()> {
    use crate::sql::ballista::{run_executor, run_scheduler, ExecutorOptions, SchedulerOptions};
    match &a.role {
        BallistaRole::Scheduler(s) => {
            run_scheduler(&SchedulerOptions {
                bind_host: s.bind_host.clone(),
                port: s.port,
                external_host: s
                    .external_host
                    .clone()
                    .unwrap_or_else(|| s.bind_host.clone()),
                min_executors: s.min_executors,
            })
            .await
        }
        BallistaRole::Executor(e) => {
            run_executor(&ExecutorOptions {
                scheduler_host: e.scheduler.0.clone(),
                scheduler_port: e.scheduler.1,
                bind_host: e.bind_host.clone(),
                external_host: e.external_host.clone(),
                port: e.port,
                grpc_port: e.grpc_port,
                work_dir: e.work_dir.clone(),
                vcores: g.threads,
                memory: crate::sql::session::memory_limit(),
            })
            .await
        }
    }
}

#[cfg(not(feature = "ballista"))]
pub async fn run(a: &BallistaArgs, _: &Globals) -> Result<()> {
    let role = match a.role {
        BallistaRole::Scheduler(_) => "scheduler",
        BallistaRole::Executor(_) => "executor",
    };
    Err(crate::sql::engine::not_built(format_args!(
        "`cartscope ballista {role}`"
    )))
}

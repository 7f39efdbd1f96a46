//! `kmssh`: an OpenSSH certificate authority whose key stays in a KMS (or a local file).
//!
//! A thin shell over the libraries: `args` parses the command line, `commands` has one
//! file per command calling `kmssh-pki`, `kmssh-core` and the backends, `io` reads and
//! writes files, and `exit` turns errors into one line and an exit status (its table).

#![forbid(unsafe_code)]

mod args;
mod commands;
mod exit;
mod io;

use std::process::ExitCode;

// Linking a backend crate registers its URI scheme.
#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
#[cfg(feature = "local")]
use kmssh_backend_local as _;

use crate::args::{Cli, Command};
use crate::exit::{Class, Failure};

fn main() -> ExitCode {
    let cli = match Cli::parse_checked() {
        Ok(cli) => cli,
        Err(e) => return exit::usage(&e),
    };
    let verbose = cli.verbose;
    if verbose {
        // A write to a closed stderr is dropped rather than reported (which would panic).
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .init();
    }
    // The service and the agent answer many clients at once, on every core; any other
    // command is one job, and a runtime of worker threads (one per core, all started
    // before anything runs) would only add to its start-up.
    let mut builder = if matches!(cli.command, Command::Serve { .. } | Command::Agent(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Failure::new(Class::Other, format!("cannot start: {e}")).report(verbose),
    };
    let handle = runtime.handle().clone();
    let outcome = runtime.block_on(run_within(handle, cli.command, cli.timeout));
    // A command still blocked (reading a FIFO or a pipe that never ends) is not waited
    // for: its thread ends with the process.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(verbose),
    }
}

/// Runs the command within `timeout`. The command runs on a blocking thread of its own,
/// so that a read that blocks (stdin, a FIFO, a device given as an input) holds only that
/// thread: the deadline is kept by this task, whatever the command is doing. On a
/// current-thread runtime this task's thread drives I/O and timers for the command (it
/// waits in `Runtime::block_on` until the command ends).
async fn run_within(
    handle: tokio::runtime::Handle,
    command: Command,
    timeout: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let task = tokio::task::spawn_blocking(move || handle.block_on(commands::run(command)));
    let joined = match timeout {
        None => task.await,
        Some(limit) => match tokio::time::timeout(limit, task).await {
            Ok(joined) => joined,
            Err(_) => {
                return Err(Failure::new(
                    Class::Unavailable,
                    format!(
                        "gave up after --timeout {}s: the command did not finish in time \
                         (a provider still retrying, or an input that never ended; --verbose \
                         shows retries)",
                        limit.as_secs()
                    ),
                ));
            }
        },
    };
    joined.unwrap_or_else(|e| {
        Err(Failure::new(
            Class::Other,
            format!("the command failed: {e}"),
        ))
    })
}

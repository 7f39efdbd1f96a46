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

use clap::Parser;
// Linking a backend crate registers its URI scheme.
#[cfg(feature = "aws")]
use kmssh_backend_aws as _;
#[cfg(feature = "azure")]
use kmssh_backend_azure as _;
#[cfg(feature = "gcp")]
use kmssh_backend_gcp as _;
#[cfg(feature = "local")]
use kmssh_backend_local as _;

use crate::args::Cli;
use crate::exit::{Class, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    if verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return Failure::new(Class::Other, format!("cannot start: {e}")).report(verbose),
    };
    let timeout = cli.timeout;
    let outcome = runtime.block_on(async move {
        let Some(limit) = timeout else {
            return commands::run(cli.command).await;
        };
        tokio::time::timeout(limit, commands::run(cli.command))
            .await
            .unwrap_or_else(|_| {
                Err(Failure::new(
                    Class::Unavailable,
                    format!(
                        "gave up after --timeout {}s: the key's provider did not finish in time \
                         (--verbose shows its retries)",
                        limit.as_secs()
                    ),
                ))
            })
    });
    // Blocking reads (stdin, a FIFO) must not keep a timed-out command alive.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(verbose),
    }
}

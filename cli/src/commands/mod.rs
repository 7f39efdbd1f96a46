//! One file per command, each a few dozen lines over library calls; [`run`] dispatches.

mod agent;
mod backends;
mod inspect;
mod krl;
mod ledger;
mod pubkey;
mod request;
mod serve;
mod sign;
mod sign_message;
mod verify;
mod x509;

use crate::args::Command;
use crate::exit::Failure;

/// Runs one command.
pub async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Sign {
            sign,
            csr,
            csr_format,
            output,
        } => match csr {
            Some(csr) => {
                let format = csr_format.unwrap_or(crate::args::CsrFormat::Binary);
                sign::sign_csr(&sign, &csr, format, output.as_deref()).await
            }
            None => sign::sign(sign).await,
        },
        Command::Pubkey {
            ca,
            key,
            comment,
            format,
        } => pubkey::pubkey(&ca, &key, &comment, format).await,
        Command::Inspect { certificate, json } => inspect::inspect(&certificate, json),
        Command::Verify {
            ca,
            principal,
            cert_type,
            at,
            certificate,
        } => verify::verify(&ca, principal, cert_type, at.as_deref(), &certificate).await,
        Command::SignMessage {
            key,
            key_args,
            format,
            sig_alg,
            namespace,
            message,
        } => {
            sign_message::sign_message(&key, &key_args, format, sig_alg, &namespace, &message).await
        }
        Command::X509 { command } => x509::run(command).await,
        Command::Krl(args) => krl::run(args).await,
        Command::Backends => backends::backends(),
        Command::Serve {
            config,
            insecure_loopback,
        } => serve::serve(&config, insecure_loopback).await,
        Command::Request(args) => request::request(args).await,
        Command::Agent(args) => agent::agent(args).await,
        Command::Ledger { command } => ledger::run(command).await,
    }
}

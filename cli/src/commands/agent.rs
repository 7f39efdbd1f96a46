//! `kmssh agent`: an ssh-agent over KMS-held keys, in the foreground or detached.

use std::io::Write as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use kmssh_agent::{AgentError, AgentOptions, AgentSocket, Confirm, Renewal, open_agent};
use kmssh_pki::{Certificate, CertificateParameters};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::AgentArgs;
use crate::exit::{Class, Failure};

/// How long a detached agent may take to open its keys and listen.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the agent: detached (a child in the foreground mode, whose start this process
/// waits for and reports) unless `--foreground`.
pub async fn agent(args: AgentArgs) -> Result<(), Failure> {
    if args.foreground {
        foreground(args).await
    } else {
        detach().await
    }
}

async fn foreground(args: AgentArgs) -> Result<(), Failure> {
    // A detached agent's stderr is a pipe its parent closes once the agent listens: a log
    // line that cannot be written is dropped, not reported (reporting it would panic).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .log_internal_errors(false)
        .try_init();
    // Handlers first, so a signal during start-up stops the agent cleanly.
    let signal_failed = |e: std::io::Error| {
        Failure::new(Class::Other, format!("cannot handle SIGTERM/SIGINT: {e}"))
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_failed)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_failed)?;

    let options = AgentOptions {
        sign_timeout: args.sign_timeout,
        confirm: args.confirm.map(Confirm::new),
    };
    let agent = open_agent(&args.keys, options).await.map_err(failure)?;
    for path in &args.certificates {
        let text = crate::io::read_text(path)?;
        let certificate = Certificate::from_openssh(text.trim())
            .map_err(|e| Failure::from(e).about(path.display()))?;
        agent
            .add_certificate(certificate)
            .map_err(|e| failure(e).about(path.display()))?;
    }
    let renewal = match &args.ca {
        Some(ca) => {
            let ca = kmssh_core::open(ca).await?;
            let mut params = CertificateParameters::user();
            params.principals(&args.principals)?;
            let renewal = Renewal::new(ca, params, args.validity).map_err(failure)?;
            renewal.issue_all(&agent).await.map_err(failure)?;
            Some(renewal)
        }
        None => None,
    };
    let agent = Arc::new(agent);
    let socket = AgentSocket::bind(args.socket.as_deref())
        .map_err(|e| Failure::new(Class::Output, format!("agent socket: {e}")))?;
    announce(&socket);
    let stop = async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name} received: stopping");
    };
    let served = match renewal {
        Some(renewal) => {
            let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
            let renewing = {
                let agent = agent.clone();
                let mut stopped = stopped_rx.clone();
                tokio::spawn(async move {
                    renewal
                        .run(agent, async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await;
                })
            };
            let served = socket.serve(agent, stop).await;
            let _ = stopped_tx.send(true);
            let _ = renewing.await;
            served
        }
        None => socket.serve(agent, stop).await,
    };
    served.map_err(|e| Failure::new(Class::Other, format!("agent socket: {e}")))
}

/// The lines `ssh-agent -s` prints, for `eval`.
fn announce(socket: &AgentSocket) {
    let pid = std::process::id();
    let path = shell_quote(&socket.path().display().to_string());
    let mut stdout = std::io::stdout().lock();
    // Stdout gone (a detached agent's parent has read what it needed) is no reason to stop.
    let _ = write!(
        stdout,
        "SSH_AUTH_SOCK={path}; export SSH_AUTH_SOCK;\nSSH_AGENT_PID={pid}; export SSH_AGENT_PID;\necho Agent pid {pid};\n"
    );
    let _ = stdout.flush();
}

/// `text` as one shell word: as is when it holds only safe characters, else single-quoted.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Starts this same command in the foreground as a child in its own process group, waits
/// until it announces its socket, prints that and returns; the child serves on. If the
/// child fails to start, its error and exit status become this process's.
async fn detach() -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(Class::Other, format!("cannot find this program: {e}")))?;
    let mut child = tokio::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::new(Class::Other, format!("cannot start the agent: {e}")))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Failure::new(
            Class::Other,
            "the agent's output is not piped",
        ));
    };
    let mut lines = BufReader::new(stdout).lines();
    let mut announced = String::new();
    let mut errors = Vec::new();
    let started = tokio::time::timeout(START_TIMEOUT, async {
        let mut errors_done = false;
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        announced.push_str(&line);
                        announced.push('\n');
                        if line.starts_with("echo Agent pid") {
                            return true;
                        }
                    }
                    _ => return false,
                },
                read = stderr.read_buf(&mut errors), if !errors_done => {
                    errors_done = !matches!(read, Ok(n) if n > 0);
                }
            }
        }
    })
    .await;
    match started {
        Ok(true) => {
            print!("{announced}");
            let _ = std::io::stdout().flush();
            Ok(())
        }
        Ok(false) => {
            let _ = stderr.read_to_end(&mut errors).await;
            let status = child.wait().await.ok().and_then(|s| s.code());
            let text = String::from_utf8_lossy(&errors);
            let message = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("kmssh: "))
                .unwrap_or("the agent stopped before listening")
                .to_owned();
            Err(Failure::new(class_of_status(status), message))
        }
        Err(_) => {
            let _ = child.kill().await;
            Err(Failure::new(
                Class::Unavailable,
                format!("the agent did not listen within {START_TIMEOUT:?}"),
            ))
        }
    }
}

/// The class whose exit status is `status` (the child's own).
fn class_of_status(status: Option<i32>) -> Class {
    match status {
        Some(3) => Class::Input,
        Some(4) => Class::Key,
        Some(5) => Class::Unavailable,
        Some(6) => Class::Verification,
        Some(7) => Class::Output,
        _ => Class::Other,
    }
}

/// An agent error as a failure: a backend's by its kind, a certificate's as bad input.
fn failure(e: AgentError) -> Failure {
    match e {
        AgentError::Signing { uri, source } => Failure::from(source).about(uri),
        AgentError::Timeout { .. } => Failure::new(Class::Unavailable, e.to_string()),
        AgentError::Certificate(_) | AgentError::Key(_) => Failure::input(e.to_string()),
        AgentError::UnknownKey | AgentError::Refused(_) => {
            Failure::new(Class::Other, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn socket_paths_are_quoted_for_eval() {
        assert_eq!(
            shell_quote("/tmp/kmssh-agent-x/agent.1"),
            "/tmp/kmssh-agent-x/agent.1"
        );
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("/tmp/it's"), r"'/tmp/it'\''s'");
    }
}

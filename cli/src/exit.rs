//! Exit status, derived in one place from the kind of what went wrong.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | anything else (a bug) |
//! | 2 | usage |
//! | 3 | bad input: a file, a field, a key URI, a subject key kmssh does not certify, an output that exists (without `--force`) or is an input; a service configuration (`serve`) or a request the service calls invalid (`request`) |
//! | 4 | the CA key: not found, no credentials or no permission, unusable, an unprotected or non-regular key file, backend not compiled in; a signing service refused the credentials or its policy refused the request (`request`: the message names the rule) |
//! | 5 | the provider is unavailable, throttling or timed out, or `--timeout` passed: retry later; also a signing service or a ledger unreachable, busy or timed out, an address `serve` cannot bind |
//! | 6 | verification failed (also a certificate from a signing service that does not verify against its CA) |
//! | 7 | an output could not be written (also `serve`'s audit log) |
//! | 8 | revoked: `krl --check` found a key or certificate in the KRL |

use std::process::ExitCode;

use kmssh_core::ErrorKind;
use kmssh_pki::{Field, escape_for_display};

/// What a command failed at: the exit class, and the error as one line and in full.
pub struct Failure {
    class: Class,
    line: String,
    full: String,
}

/// The exit classes (see the module table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 3.
    Input,
    /// 4.
    Key,
    /// 5.
    Unavailable,
    /// 6.
    Verification,
    /// 7.
    Output,
    /// 8.
    Revoked,
    /// 1.
    Other,
}

impl Class {
    fn of(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidInput | ErrorKind::InvalidUri => Self::Input,
            ErrorKind::NotFound
            | ErrorKind::Unauthenticated
            | ErrorKind::PermissionDenied
            | ErrorKind::InvalidKey
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::BackendNotCompiled
            | ErrorKind::Config => Self::Key,
            ErrorKind::Throttled | ErrorKind::Unavailable | ErrorKind::Timeout => Self::Unavailable,
            ErrorKind::BadSignature => Self::Verification,
            ErrorKind::Unexpected => Self::Other,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Other => 1,
            Self::Input => 3,
            Self::Key => 4,
            Self::Unavailable => 5,
            Self::Verification => 6,
            Self::Output => 7,
            Self::Revoked => 8,
        }
    }
}

impl Failure {
    /// A failure with a message of the CLI's own (a file it cannot read, an output it
    /// cannot write).
    pub fn new(class: Class, message: impl Into<String>) -> Self {
        let line = message.into();
        Self {
            class,
            full: line.clone(),
            line,
        }
    }

    /// Bad input.
    pub fn input(message: impl Into<String>) -> Self {
        Self::new(Class::Input, message)
    }

    /// The same failure, prefixed with what it is about (a file name).
    pub fn about(self, what: impl std::fmt::Display) -> Self {
        Self {
            line: format!("{what}: {}", self.line),
            full: format!("{what}: {}", self.full),
            ..self
        }
    }

    /// Prints the failure on stderr (one line, or every cause on its own line when
    /// `verbose`) and gives the exit status. Control characters a request or a provider
    /// put in the text are shown as escapes ([`escape_for_display`]), never raw.
    pub fn report(&self, verbose: bool) -> ExitCode {
        if verbose {
            for line in self.full.lines() {
                eprintln!("kmssh: {}", escape_for_display(line));
            }
        } else {
            // Some providers' errors span lines; the default report stays one line.
            let parts: Vec<&str> = self
                .line
                .lines()
                .map(str::trim)
                .filter(|part| !part.is_empty())
                .collect();
            eprintln!("kmssh: {}", escape_for_display(&parts.join("; ")));
        }
        ExitCode::from(self.class.code())
    }
}

impl From<kmssh_core::Error> for Failure {
    fn from(e: kmssh_core::Error) -> Self {
        Self {
            class: Class::of(e.kind()),
            line: e.to_string(),
            full: format!("{e:#}"),
        }
    }
}

impl From<kmssh_pki::Error> for Failure {
    fn from(e: kmssh_pki::Error) -> Self {
        let full = match &e {
            kmssh_pki::Error::Signing(inner) => format!("signing failed: {inner:#}"),
            other => other.to_string(),
        };
        // A key the request names that kmssh cannot certify is bad input; only the CA's
        // own key is a key problem.
        let class = match &e {
            kmssh_pki::Error::UnsupportedKey { field, .. } if *field != Field::CaKey => {
                Class::Input
            }
            other => Class::of(other.kind()),
        };
        Self {
            class,
            line: e.to_string(),
            full,
        }
    }
}

impl From<kmssh_server::ConfigError> for Failure {
    fn from(e: kmssh_server::ConfigError) -> Self {
        Self::input(e.to_string())
    }
}

impl From<kmssh_server::ServerError> for Failure {
    fn from(e: kmssh_server::ServerError) -> Self {
        use kmssh_server::ServerError as E;
        let class = match &e {
            E::Config(_) | E::Tls(_) => Class::Input,
            // A key that will not open is a key problem (4), unless its provider is
            // only unavailable (5), as for every other command.
            E::Key { source, .. } => Class::of(source.kind()),
            E::Ledger(inner) => ledger_class(inner),
            E::Audit { .. } => Class::Output,
            E::Bind { .. } | E::Serve(_) => Class::Unavailable,
            _ => Class::Other,
        };
        Self {
            class,
            line: e.to_string(),
            full: error_chain(&e),
        }
    }
}

impl From<kmssh_server::client::ClientError> for Failure {
    fn from(e: kmssh_server::client::ClientError) -> Self {
        use kmssh_server::client::ClientError as E;
        use tonic::Code;
        match e {
            // The service's own message: for a policy refusal it names the rule.
            E::Refused { code, message } => {
                let class = match code {
                    Code::Unauthenticated | Code::PermissionDenied => Class::Key,
                    Code::InvalidArgument
                    | Code::AlreadyExists
                    | Code::OutOfRange
                    | Code::NotFound
                    | Code::FailedPrecondition => Class::Input,
                    Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                        Class::Unavailable
                    }
                    _ => Class::Other,
                };
                Self::new(class, format!("the service refused ({code:?}): {message}"))
            }
            E::Options(_) => Self::input(e.to_string()),
            E::Connect { .. } => Self {
                class: Class::Unavailable,
                line: e.to_string(),
                full: error_chain(&e),
            },
            E::BadAnswer(_) => Self::new(Class::Verification, e.to_string()),
        }
    }
}

impl From<kmssh_server::ledger::LedgerError> for Failure {
    fn from(e: kmssh_server::ledger::LedgerError) -> Self {
        Self {
            class: ledger_class(&e),
            line: e.to_string(),
            full: error_chain(&e),
        }
    }
}

fn ledger_class(e: &kmssh_server::ledger::LedgerError) -> Class {
    use kmssh_server::ledger::LedgerError as E;
    match e {
        E::UnsupportedUrl(_) => Class::Input,
        E::Open { .. } | E::Migrate(_) | E::Database(_) | E::Closed => Class::Unavailable,
        _ => Class::Other,
    }
}

/// An error and its causes, one per line (what `--verbose` shows).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let line = inner.to_string();
        // thiserror's `{0}` messages often repeat their source; show each text once.
        if !text.contains(&line) {
            text.push('\n');
            text.push_str(&line);
        }
        cause = inner.source();
    }
    text
}

/// Reports a command-line error as one line and a `--help` hint (help and version go to
/// stdout as clap prints them) and gives the exit status: 2 for usage, 0 for help.
pub fn usage(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Usage;
    match error.kind() {
        Usage::DisplayHelp | Usage::DisplayVersion => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Usage::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("kmssh: a command is required");
        }
        _ => {
            // clap's text: `error: …`, perhaps a tip or the possible values, then the
            // usage and a hint; the lines before the usage become one line.
            let text = error.render().to_string();
            let parts: Vec<&str> = text
                .lines()
                .take_while(|line| !line.starts_with("Usage:"))
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
                .collect();
            let mut line = String::new();
            for part in parts {
                if !line.is_empty() {
                    line.push_str(if line.ends_with(':') { " " } else { "; " });
                }
                line.push_str(part);
            }
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            eprintln!("kmssh: {}", escape_for_display(line));
        }
    }
    eprintln!(
        "Try '{} --help'.",
        escape_for_display(&crate::args::command_path(
            std::env::args_os().map(|arg| arg.to_string_lossy().into_owned())
        ))
    );
    ExitCode::from(2)
}

impl Failure {
    /// The same failure, saying how many more failed beside it.
    pub fn about_more(self, more: usize) -> Self {
        Self {
            line: format!("{} (and {more} more failed)", self.line),
            full: format!("{} (and {more} more failed)", self.full),
            ..self
        }
    }
}

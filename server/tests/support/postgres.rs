//! A throwaway PostgreSQL server for tests: `initdb` in a temporary directory, listening on a
//! free 127.0.0.1 port (and a Unix socket inside that directory), stopped with
//! `pg_ctl stop -m fast` when the last test using it drops it.
//!
//! The binaries come from `KMSSH_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else
//! `PATH`. Without them the tests using the server are skipped with a loud message, unless
//! `KMSSH_REQUIRE_POSTGRES` is set (CI sets it), in which case they fail. PostgreSQL refuses to run
//! as root, so as root every command runs as user `postgres` through `runuser`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, Weak};

/// A running PostgreSQL server.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());

impl Postgres {
    /// The server shared by every test of this binary currently holding it, started if none is
    /// running; `None` (after a loud message) if PostgreSQL is not installed and not required.
    pub fn shared() -> Option<Arc<Postgres>> {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(running) = shared.upgrade() {
            return Some(running);
        }
        let started = Arc::new(Postgres::start()?);
        *shared = Arc::downgrade(&started);
        Some(started)
    }

    /// Starts a new server; `None` if PostgreSQL is absent and not required.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = find_binaries() else {
            if std::env::var_os("KMSSH_REQUIRE_POSTGRES").is_some() {
                panic!("KMSSH_REQUIRE_POSTGRES is set but no initdb/pg_ctl was found");
            }
            eprintln!(
                "\n*** SKIPPING PostgreSQL tests: no initdb/pg_ctl found (set KMSSH_POSTGRES_BIN, \
                 or KMSSH_REQUIRE_POSTGRES=1 to make this an error) ***\n"
            );
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("kmssh-pg-")
            .tempdir()
            .expect("temporary directory");
        if as_postgres {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let mut server = Postgres {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = server.data_dir();
        server.run_pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        // The port is free when probed; another process may take it before the server binds, so
        // a few attempts.
        for attempt in 1..=3 {
            server.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
                server.port,
                server.dir.path().display()
            );
            let log = server.dir.path().join("server.log");
            let started = server.pg(
                "pg_ctl",
                &[
                    "start".as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    options.as_ref(),
                ],
            );
            if started.status.success() {
                return Some(server);
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempt < 3,
                "pg_ctl start failed: {}\n{log}",
                describe(&started)
            );
        }
        unreachable!("the loop returns or panics")
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let port = self.port.to_string();
        self.run_pg(
            "createdb",
            &[
                "-h".as_ref(),
                self.dir.path().as_os_str(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                name.as_ref(),
            ],
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg(&self, program: &str, args: &[&std::ffi::OsStr]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The server inherits these pipes; pg_ctl -l sends its output to the log instead.
        command.args(args).current_dir(self.dir.path());
        command.output().expect("run a PostgreSQL command")
    }

    fn run_pg(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let out = self.pg(program, args);
        assert!(out.status.success(), "{program} failed: {}", describe(&out));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let out = self.pg(
            "pg_ctl",
            &[
                "stop".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
            ],
        );
        if !out.status.success() {
            eprintln!("pg_ctl stop failed: {}", describe(&out));
        }
    }
}

fn find_binaries() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("KMSSH_POSTGRES_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| has(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has(d))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn run(command: &mut Command) {
    let out = command.output().expect("run command");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        describe(&out)
    );
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

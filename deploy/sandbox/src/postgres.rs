//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` on a temporary folder, listening on a
//! Unix socket in that folder only (no TCP port, so runs never collide), stopped at once when
//! dropped. For the hub's PostgreSQL store engine: the tests' own clusters
//! (`caravan_tests::postgres`) and `caravan-bench --engine postgres`. A program that fails
//! here is a broken installation, and panics with its output.
//!
//! Debian's `postgresql` package keeps the server's programs in `/usr/lib/postgresql/<major>/bin`,
//! off the `PATH`; they are looked up there, newest major first, after the `PATH`. `initdb`
//! refuses to run as root: under root (CI machines) every server program runs as the `postgres`
//! user the package creates (`runuser`), and the cluster's folder is made that user's.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// A running cluster; stopped (immediate mode) and its folder removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The user the server programs run as, when the tests run as root.
    run_as: Option<&'static str>,
}

/// Where the server's programs are: the folder holding `pg_ctl` and `initdb`.
fn server_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest major first: "16" before "15" (numerically, so "9.6" comes last).
    debian.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.split('.').next())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    on_path
        .into_iter()
        .chain(debian)
        .find(|d| d.join("pg_ctl").is_file() && d.join("initdb").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Whether PostgreSQL's server programs are installed here.
pub fn installed() -> bool {
    server_bin().is_some()
}

impl Cluster {
    /// Start a cluster, or say why not.
    pub fn start() -> anyhow::Result<Self> {
        let Some(bin) = server_bin() else {
            anyhow::bail!(
                "PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql"
            );
        };
        let dir = tempfile::tempdir()?;
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            // The server's user must own its folder, and reach it through the temporary one.
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(status.success(), "chown {user} {}", dir.path().display());
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        }
        let pg = Self { dir, bin, run_as };
        pg.run_ok(
            "initdb",
            &[
                "--pgdata",
                pg.data().to_str().expect("UTF-8 path"),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.restart();
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder of the server's Unix socket (`host=` in a connection string).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A connection string for database `db` as the superuser `postgres`, over the socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres@/{db}?host={}",
            self.socket_dir().display()
        )
    }

    /// Run one of the cluster's programs (`psql` too) as the server's user.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let path = if path.is_file() {
            path
        } else {
            PathBuf::from(program)
        };
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program} does not run: {e}"))
    }

    fn run_ok(&self, program: &str, args: &[&str]) -> Output {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        out
    }

    /// Run SQL with `psql` on database `db`; its output (unaligned, tuples only).
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let host = self.socket_dir().display().to_string();
        let out = self.run_ok(
            "psql",
            &[
                "--host",
                &host,
                "--username",
                "postgres",
                "--dbname",
                db,
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--set",
                "ON_ERROR_STOP=1",
                "--command",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The server's process id (from `postmaster.pid`), while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stop the server as a crash would leave it (`immediate`): what is committed must survive.
    pub fn stop(&self) {
        self.run_ok(
            "pg_ctl",
            &[
                "stop",
                "--wait",
                "--mode",
                "immediate",
                "--pgdata",
                self.data().to_str().expect("UTF-8 path"),
            ],
        );
    }

    /// Start the (stopped) server: only the Unix socket, in the cluster's own folder; fsync
    /// stays on, since the engine's durability is what is under test.
    pub fn restart(&self) {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}'",
            self.socket_dir().display()
        );
        self.run_ok(
            "pg_ctl",
            &[
                "start",
                "--wait",
                "--timeout",
                "60",
                "--pgdata",
                self.data().to_str().expect("UTF-8 path"),
                "--log",
                self.log().to_str().expect("UTF-8 path"),
                "-o",
                &options,
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run(
            "pg_ctl",
            &[
                "stop",
                "--mode",
                "immediate",
                "--pgdata",
                data.to_str().unwrap_or_default(),
            ],
        );
    }
}

//! A private PostgreSQL cluster in a temporary folder, so that a test can stop and start the
//! database without touching the server other tests use.
//!
//! The tests run as root and `initdb` and `pg_ctl` refuse root, so the cluster belongs to the
//! `postgres` user and each command runs through `runuser -u postgres`. Authentication is
//! `trust` for a superuser named `root`, on 127.0.0.1 only.

use std::path::PathBuf;
use std::process::{Command, Output};

use sqlx::Connection;

/// Owner of the cluster's files and processes.
const OWNER: &str = "postgres";
/// Where Debian and Ubuntu install the server binaries, one folder per major version.
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

pub struct PrivateCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Creates and starts a cluster on a free port with an empty database `test`.
    ///
    /// # Panics
    ///
    /// Panics naming the command that failed, with its output.
    pub async fn create() -> PrivateCluster {
        let bin = server_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("nudge-private-pg-")
            .tempdir()
            .expect("create a folder for the private cluster");
        run(Command::new("chown")
            .arg(format!("{OWNER}:"))
            .arg(dir.path()));
        let data = dir.path().join("data");
        let cluster = PrivateCluster {
            port: super::free_port(),
            data,
            log: dir.path().join("postgres.log"),
            bin,
            dir,
        };
        run(cluster
            .as_owner("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-A", "trust", "-U", "root"]));
        cluster.start();
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .expect("connect to the private cluster");
        sqlx::query("CREATE DATABASE test")
            .execute(&mut admin)
            .await
            .expect("create database test on the private cluster");
        let _ = admin.close().await;
        cluster
    }

    /// Returns the URL of a database on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    pub fn start(&self) {
        let options = format!("-p {} -k {}", self.port, self.dir.path().display());
        run(self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(&self.log)
            .args(["-w", "start"]));
    }

    /// Stops the server in fast mode: open transactions are rolled back and clients are
    /// disconnected.
    pub fn stop(&self) {
        run(self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]));
    }

    fn as_owner(&self, program: &str) -> Command {
        let mut command = Command::new("runuser");
        command
            .args(["-u", OWNER, "--"])
            .arg(self.bin.join(program));
        command
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Finds the `bin` folder of the newest PostgreSQL installed under `/usr/lib/postgresql`.
fn server_bin_dir() -> PathBuf {
    let entries = std::fs::read_dir(INSTALL_ROOT)
        .unwrap_or_else(|error| panic!("cannot list {INSTALL_ROOT}: {error}"));
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no {INSTALL_ROOT}/*/bin/initdb found"))
}

/// Runs a command and panics with its command line and output when it fails.
fn run(command: &mut Command) -> Output {
    let line = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {line}: {error}"));
    assert!(
        output.status.success(),
        "command failed ({}): {line}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

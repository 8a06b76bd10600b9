//! Worker processes for the end-to-end tests: `smmctl run` started the way
//! an operator would, with its metrics address to watch it by.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const API_KEY: &str = "e2e-cryptomus-key";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Running {
    pub child: Child,
    pub metrics: String,
}

/// How to start one `smmctl run`: connection flags (`--brokers`, `-X …`)
/// before `run`, the workers, and what goes after them.
#[derive(Default)]
pub struct Launch<'a> {
    pub connection: &'a [String],
    pub workers: &'a [&'a str],
    pub database_url: &'a str,
    pub gateway_port: Option<u16>,
    pub env: &'a [(&'a str, String)],
    /// Flags after the workers (`--instance …`).
    pub args: &'a [&'a str],
    /// Where its stderr goes; otherwise SMM_TEST_WORKER_LOG, or nowhere.
    pub log: Option<&'a std::path::Path>,
}

impl Running {
    pub fn start(workers: &[&str], database_url: &str, gateway_port: Option<u16>) -> Running {
        Running::start_with(&[], workers, database_url, gateway_port)
    }

    /// [`Running::start`] with connection flags (`--brokers`, `-X …`) first.
    pub fn start_with(
        connection: &[String],
        workers: &[&str],
        database_url: &str,
        gateway_port: Option<u16>,
    ) -> Running {
        Running::start_full(connection, workers, database_url, gateway_port, &[])
    }

    /// [`Running::start_with`] with extra environment (provider settings).
    /// SMM_TEST_WORKER_LOG=FILE keeps the workers' log there.
    pub fn start_full(
        connection: &[String],
        workers: &[&str],
        database_url: &str,
        gateway_port: Option<u16>,
        env: &[(&str, String)],
    ) -> Running {
        Running::launch(&Launch {
            connection,
            workers,
            database_url,
            gateway_port,
            env,
            ..Launch::default()
        })
    }

    pub fn launch(launch: &Launch<'_>) -> Running {
        let metrics_port = free_port();
        let mut cmd: Command = super::smmctl();
        cmd.args(launch.connection)
            .arg("run")
            .args(launch.workers)
            .args(["--database-url", launch.database_url])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--drain-timeout", "10s"])
            .args(launch.args)
            .env("SMM_CRYPTOMUS_API_KEY", API_KEY)
            .envs(launch.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null());
        let log = launch
            .log
            .map(std::path::Path::to_path_buf)
            .or_else(|| std::env::var_os("SMM_TEST_WORKER_LOG").map(Into::into));
        cmd.stderr(match log {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_or_else(|_| Stdio::null(), Stdio::from),
            None => Stdio::null(),
        });
        if let Some(port) = launch.gateway_port {
            cmd.args(["--gateway-addr", &format!("127.0.0.1:{port}")]);
        }
        Running {
            child: cmd.spawn().expect("start smmctl run"),
            metrics: format!("http://127.0.0.1:{metrics_port}"),
        }
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.metrics)).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((200, _)) = self.get("/health/ready").await {
                return;
            }
            assert!(Instant::now() < deadline, "the workers never became ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A counter's value summed over its label sets.
    pub async fn counter(&self, family: &str, label: &str) -> u64 {
        let Some((_, text)) = self.get("/metrics").await else {
            return 0;
        };
        text.lines()
            .filter(|l| l.starts_with(family) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "smmctl run did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    /// Leaves the group cleanly when it can, so the next test's offset
    /// reset does not find a lingering member.
    fn drop(&mut self) {
        smm_test_support::command::terminate(&mut self.child, Duration::from_secs(15));
    }
}

/// Moves `group` to the end of `topics`, so records earlier tests left
/// there are not this test's business.
pub fn skip_old_records(group: &str, topics: &[&str]) {
    skip_old_records_with(super::smmctl, group, topics);
}

/// [`skip_old_records`] with smmctl as `smmctl` sets it up (another
/// cluster's profile).
pub fn skip_old_records_with(smmctl: impl Fn() -> Command, group: &str, topics: &[&str]) {
    let mut args = vec![
        "offsets",
        "reset",
        "--group",
        group,
        "--to-latest",
        "--execute",
        "--yes",
    ];
    for t in topics {
        args.extend(["--topic", t]);
    }
    // Waits out members a killed worker left behind, and static members
    // that never leave, until their session expires.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = super::run_with(smmctl(), &args);
        if run.code == 0 {
            return;
        }
        assert!(
            run.stderr.contains("live member") && Instant::now() < deadline,
            "offsets reset failed: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

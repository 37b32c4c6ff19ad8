//! The real signer binary as a child process on 127.0.0.1, and what `/proc` says about it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::http;

/// A running `ferrosigner run` child.
pub struct Server {
    child: Child,
    /// The child's process id.
    pub pid: u32,
    /// `127.0.0.1:<port>` of the signing API.
    pub addr: String,
    /// When the process was spawned.
    pub spawned: Instant,
    log: PathBuf,
}

/// CPU and memory of a process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime in seconds.
    pub cpu_s: f64,
    /// Resident set size in MiB.
    pub rss_mib: f64,
    /// Peak resident set size in MiB.
    pub hwm_mib: f64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Samples `/proc/<pid>` (`"self"` for this process).
pub fn sample(pid: &str) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    // fields after the command name (which may contain spaces) start at ") "
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kib = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(ProcSample {
        cpu_s: (utime + stime) / clock_ticks(),
        rss_mib: kib("VmRSS:") / 1024.0,
        hwm_mib: kib("VmHWM:") / 1024.0,
    })
}

/// CPU seconds spent busy by the whole machine (all cores) since boot, from `/proc/stat`.
pub fn machine_busy_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    Ok(busy / clock_ticks())
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Spawns `bin run --data-dir data_dir …extra` on free ports, its output in `data_dir/../<name>.log`.
    pub fn spawn(bin: &Path, data_dir: &Path, extra: &[OsString]) -> anyhow::Result<Server> {
        let port = free_port()?;
        let metrics = free_port()?;
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-listen-host")
            .arg("127.0.0.1")
            .arg("--http-listen-port")
            .arg(port.to_string())
            .arg("--metrics-listen-host")
            .arg("127.0.0.1")
            .arg("--metrics-listen-port")
            .arg(metrics.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Server {
            pid: child.id(),
            child,
            addr: format!("127.0.0.1:{port}"),
            spawned,
            log,
        })
    }

    /// Polls `/healthcheck` every `poll` until it answers 200; returns the time since spawn.
    pub async fn wait_healthy(
        &mut self,
        timeout: Duration,
        poll: Duration,
    ) -> anyhow::Result<Duration> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "the signer exited with {status} before it was healthy; log: {}",
                    self.log_tail()
                );
            }
            if let Ok((200, _)) = http::get(&self.addr, "/healthcheck").await {
                return Ok(self.spawned.elapsed());
            }
            if self.spawned.elapsed() > timeout {
                bail!(
                    "the signer was not healthy after {timeout:?}; log: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// `/proc` figures of the server.
    pub fn sample(&self) -> anyhow::Result<ProcSample> {
        sample(&self.pid.to_string())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 10 s; waits for the exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.pid).context("pid out of range")?;
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

//! The in-memory job table and the process supervisor: at most `max_jobs` trainers run at once,
//! the others wait `queued`; each running job is a child `sightline train --json` whose stdout
//! lines are decoded as [`TrainEvent`]s ([`super::progress`]) and whose stderr tail is kept;
//! cancel (SIGINT, or SIGKILL with `force`) and graceful shutdown (SIGINT, bounded wait, kill).

use super::progress::apply_event;
use super::*;

/// What a job task needs to start its trainer.
pub(super) struct Launch {
    pub(super) exe: PathBuf,
    pub(super) args: Vec<OsString>,
    pub(super) env: Vec<(String, String)>,
    pub(super) dir: PathBuf,
}

struct Table {
    jobs: HashMap<String, Job>,
    /// Ids, oldest first.
    order: VecDeque<String>,
    /// Jobs waiting for a slot, in submission order (cancelled ones are skipped).
    queue: VecDeque<(String, Launch)>,
    /// Trainers running now.
    running: usize,
    /// Most trainers at once.
    max: usize,
    shutting_down: bool,
}

struct JobsInner {
    table: Mutex<Table>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The in-memory job registry (cheap to clone).
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<JobsInner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// A registry running at most `max_concurrent` trainers at once (at least one).
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            inner: Arc::new(JobsInner {
                table: Mutex::new(Table {
                    jobs: HashMap::new(),
                    order: VecDeque::new(),
                    queue: VecDeque::new(),
                    running: 0,
                    max: max_concurrent.max(1),
                    shutting_down: false,
                }),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // a panic while holding the lock leaves plain data behind: keep using it
        self.inner
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(j) = self.table().jobs.get_mut(id) {
            f(j);
        }
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.table().jobs.get(id).cloned()
    }

    /// Jobs, newest first, optionally of one project.
    pub fn list(&self, project: Option<&str>) -> Vec<Job> {
        let t = self.table();
        t.order
            .iter()
            .rev()
            .filter_map(|id| t.jobs.get(id))
            .filter(|j| project.is_none_or(|p| j.project == p))
            .cloned()
            .collect()
    }

    /// Accept a job: queued, then started in submission order as slots free up.
    pub(super) fn submit(&self, job: Job, launch: Launch) -> Result<(), ApiError> {
        self.insert(job, launch)?;
        self.pump();
        Ok(())
    }

    fn insert(&self, job: Job, launch: Launch) -> Result<(), ApiError> {
        let mut t = self.table();
        if t.shutting_down {
            return Err(ApiError::Unavailable(
                "the server is shutting down and accepts no training job".into(),
            ));
        }
        // forget the oldest finished jobs beyond the limit
        let finished = t
            .order
            .iter()
            .filter(|id| t.jobs.get(*id).is_some_and(|j| j.status.is_final()))
            .count();
        if finished >= KEEP_FINISHED {
            let drop_id = t
                .order
                .iter()
                .find(|id| t.jobs.get(*id).is_some_and(|j| j.status.is_final()))
                .cloned();
            if let Some(d) = drop_id {
                t.jobs.remove(&d);
                t.order.retain(|i| i != &d);
            }
        }
        t.order.push_back(job.id.clone());
        t.queue.push_back((job.id.clone(), launch));
        t.jobs.insert(job.id.clone(), job);
        Ok(())
    }

    /// Start queued jobs (oldest first) while slots are free.
    fn pump(&self) {
        let mut start = Vec::new();
        {
            let mut t = self.table();
            while t.running < t.max && !t.shutting_down {
                let Some((id, launch)) = t.queue.pop_front() else {
                    break;
                };
                let Some(j) = t.jobs.get_mut(&id) else {
                    continue;
                };
                if j.status != JobStatus::Queued {
                    continue;
                }
                j.status = JobStatus::Running;
                j.started_at = Some(Utc::now());
                t.running += 1;
                start.push((id, launch));
            }
        }
        for (id, launch) in start {
            let jobs = self.clone();
            let handle = tokio::spawn(async move {
                jobs.run(id, launch).await;
                {
                    let mut t = jobs.table();
                    t.running = t.running.saturating_sub(1);
                }
                jobs.pump();
            });
            let mut tasks = self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tasks.retain(|h| !h.is_finished());
            tasks.push(handle);
        }
    }

    async fn run(&self, id: String, launch: Launch) {
        let mut cmd = tokio::process::Command::new(&launch.exe);
        cmd.args(&launch.args)
            .current_dir(&launch.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &launch.env {
            cmd.env(k, v);
        }
        // its own process group: a Ctrl-C at the server's terminal reaches the server, which
        // then stops the trainer itself (SIGINT, bounded wait)
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.update(&id, |j| {
                    finish(
                        j,
                        JobStatus::Failed,
                        Some(format!(
                            "cannot start the trainer {}: {e}",
                            launch.exe.display()
                        )),
                    );
                });
                return;
            }
        };
        let pid = child.id();
        self.update(&id, |j| {
            j.pid = pid;
            // a cancel that arrived between the slot and the spawn
            if j.cancel_requested
                && let Some(p) = pid
            {
                let _ = signal(p, false);
            }
        });
        tracing::info!(job = %id, pid = ?pid, "training job started");
        let stderr_task = child.stderr.take().map(|err| {
            tokio::spawn(async move {
                let mut tail: VecDeque<String> = VecDeque::new();
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "sightline_server::jobs::trainer", "{line}");
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                tail
            })
        });
        let mut started: Option<(Instant, u64)> = None;
        let mut done_status: Option<ExperimentStatus> = None;
        if let Some(out) = child.stdout.take() {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // anything that is not an event (a stray print, a garbled line) is skipped
                let Some(ev) = TrainEvent::from_line(&line) else {
                    tracing::debug!(
                        target: "sightline_server::jobs::trainer",
                        "not a progress event: {line}"
                    );
                    continue;
                };
                match &ev {
                    TrainEvent::Start(s) => {
                        started = Some((Instant::now(), s.resume_from_epoch as u64));
                    }
                    TrainEvent::Done(d) => done_status = Some(d.status),
                    TrainEvent::Batch(_) | TrainEvent::Epoch(_) => {}
                }
                self.update(&id, |j| apply_event(j, &ev, started));
            }
        }
        let waited = child.wait().await;
        let tail: Vec<String> = match stderr_task {
            Some(t) => t.await.map(Vec::from).unwrap_or_default(),
            None => Vec::new(),
        };
        self.update(&id, |j| {
            j.pid = None;
            let (code, signal) = match &waited {
                Ok(s) => (s.code(), exit_signal(s)),
                Err(_) => (None, None),
            };
            j.exit_code = code;
            let status = if j.cancel_requested {
                JobStatus::Cancelled
            } else if code == Some(0) && done_status == Some(ExperimentStatus::Completed) {
                JobStatus::Succeeded
            } else if done_status == Some(ExperimentStatus::Stopped) {
                // stopped by a SIGINT from outside the server (the trainer exits 130)
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            };
            let error = match status {
                JobStatus::Failed => Some(match (&waited, code, signal) {
                    (Err(e), _, _) => format!("waiting for the trainer: {e}"),
                    (_, Some(c), _) => format!(
                        "the trainer exited with code {c}: {}",
                        tail.last().map_or("(no message)", String::as_str)
                    ),
                    (_, None, Some(s)) => format!("the trainer was killed by signal {s}"),
                    _ => "the trainer ended without reporting".to_string(),
                }),
                JobStatus::Cancelled => Some(match j.error.take() {
                    Some(e) => e,
                    None => "cancelled".to_string(),
                }),
                _ => None,
            };
            if status == JobStatus::Failed {
                j.stderr_tail = tail.clone();
            }
            finish(j, status, error);
        });
        tracing::info!(job = %id, "training job ended");
    }

    /// Cancel a job: a queued one ends at once, a running trainer gets SIGINT (`force`:
    /// SIGKILL). Refused for a finished job.
    pub fn cancel(&self, id: &str, force: bool, reason: &str) -> Result<Job, ApiError> {
        let mut t = self.table();
        let j = t
            .jobs
            .get_mut(id)
            .ok_or_else(|| ApiError::NotFound(format!("job `{id}` not found")))?;
        match j.status {
            JobStatus::Queued => {
                finish(j, JobStatus::Cancelled, Some(reason.to_string()));
            }
            JobStatus::Running => {
                // a second SIGINT would make the trainer abort without recording the end:
                // only the first cancel (or a forced one) signals
                let first = !j.cancel_requested;
                if first {
                    j.error = Some(reason.to_string());
                }
                j.cancel_requested = true;
                if let Some(pid) = j.pid
                    && (first || force)
                {
                    signal(pid, force).map_err(|e| {
                        ApiError::internal(format!("cannot signal the trainer (pid {pid})"), e)
                    })?;
                }
            }
            s => {
                return Err(ApiError::Conflict(format!(
                    "job `{id}` has already ended ({})",
                    s.as_str()
                )));
            }
        }
        Ok(j.clone())
    }

    /// Graceful shutdown: accept no new job, cancel the queued ones, send SIGINT to every
    /// running trainer and wait up to `grace` for them (then SIGKILL and a short wait).
    pub async fn shutdown(&self, grace: Duration) {
        let running: Vec<String> = {
            let mut t = self.table();
            t.shutting_down = true;
            t.queue.clear();
            t.jobs
                .values()
                .filter(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running))
                .map(|j| j.id.clone())
                .collect()
        };
        for id in &running {
            let _ = self.cancel(id, false, "the server shut down");
        }
        let handles: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if handles.is_empty() {
            return;
        }
        tracing::info!(jobs = running.len(), "waiting for training jobs to stop");
        let deadline = tokio::time::Instant::now() + grace;
        let mut left = Vec::new();
        for mut h in handles {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                left.push(h);
            }
        }
        if left.is_empty() {
            return;
        }
        tracing::warn!(
            jobs = left.len(),
            "training jobs did not stop within {grace:?}; killing them"
        );
        let pids: Vec<u32> = self.table().jobs.values().filter_map(|j| j.pid).collect();
        for pid in pids {
            let _ = signal(pid, true);
        }
        for h in left {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }
}

fn finish(j: &mut Job, status: JobStatus, error: Option<String>) {
    j.status = status;
    j.error = error;
    j.finished_at = Some(Utc::now());
    j.progress.eta_s = None;
}

#[cfg(unix)]
fn exit_signal(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

#[cfg(not(unix))]
fn exit_signal(_: &std::process::ExitStatus) -> Option<i32> {
    None
}

#[cfg(unix)]
fn signal(pid: u32, kill: bool) -> std::io::Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::other(format!("invalid pid {pid}")))?;
    kill_process(pid, if kill { Signal::KILL } else { Signal::INT }).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn signal(_pid: u32, _kill: bool) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "cancelling a training job needs a Unix signal (SIGINT)",
    ))
}

//! The coordinator's in-memory state and the operations on it: every job's [`Board`] is held in
//! memory behind one lock and written through to SQLite before an answer is sent, so a crash
//! loses nothing that was acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use idlefarm_protocol::{
    FailureInfo, FrameCounts, JobState, Lease, LeaseOutcome, PresenceState, Renderer,
};
use tokio::sync::{Mutex, RwLock, mpsc};
use tokio::task::JoinHandle;

use super::ServerConfig;
use super::declines::Declines;
use super::leases::LeaseOwner;
use crate::assemble;
use crate::error::ApiError;
use crate::files::DataDir;
use crate::schedule::{
    self, AgentView, Board, FailureRecord, FrameReject, Health, JobStatus, JobView, LeaseEnding,
    LeaseId, NoWork, Speeds,
};
use crate::store::{AgentRow, JobRow, LeaseTicket, Store};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// A job and its board.
pub(crate) struct JobEntry {
    pub row: JobRow,
    pub board: Board,
    /// Measured seconds per frame on this job, by agent.
    pub speeds: Speeds,
}

impl JobEntry {
    /// What the scheduling core needs to know of this job to pick work.
    pub fn view(&self) -> JobView<'_> {
        let status = match self.row.state {
            JobState::Rendering => JobStatus::Runnable,
            JobState::Paused => JobStatus::Paused,
            JobState::Cancelled => JobStatus::Cancelled,
            JobState::Assembling | JobState::Done | JobState::Failed => JobStatus::Finished,
        };
        JobView {
            id: self.row.id,
            owner: self.row.owner_id,
            priority: self.row.priority,
            status,
            renderer: self.row.settings.renderer,
            required_tags: &self.row.required_tags,
            queued: self.board.counts().queued,
            running: self.board.leases.len(),
        }
    }

    /// The lease `id` of frame indices `taken` as sent to its agent.
    pub fn lease_message(&self, id: LeaseId, taken: &[usize], config: &ServerConfig) -> Lease {
        let row = &self.row;
        Lease {
            id,
            job_id: row.id,
            frames: taken.iter().map(|&i| self.board.frames[i].frame).collect(),
            input_hash: row.input_hash.clone(),
            input_kind: row.input_kind,
            input_name: row.input_name.clone(),
            settings: row.settings.clone(),
            ttl_secs: config.lease_ttl.as_secs(),
        }
    }

    pub fn counts(&self) -> FrameCounts {
        let c = self.board.counts();
        FrameCounts {
            queued: c.queued as u64,
            rendering: c.leased as u64,
            done: c.done as u64,
            failed: c.failed as u64,
        }
    }
}

/// Scheduling state: all jobs, and which job each lease belongs to.
#[derive(Default)]
pub(crate) struct Sched {
    pub jobs: BTreeMap<i64, JobEntry>,
    /// Every lease handed out, kept after it ends, so late frames of an expired lease are still
    /// accepted.
    pub lease_owner: HashMap<LeaseId, LeaseOwner>,
    pub next_lease: LeaseId,
    /// Each agent's failed leases since its last release, for blocklists and quarantine.
    pub failures: HashMap<i64, Vec<FailureRecord>>,
    /// Why each agent got no work at its last request, for the dashboard.
    pub no_work: HashMap<i64, NoWork>,
    /// Leases agents declined, so a job is not offered again to a PC that cannot hold it.
    pub declines: Declines,
}

/// What the coordinator last heard from an agent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub at: Instant,
    pub presence: PresenceState,
    /// Chunks it may render at once, as its last lease request said.
    pub slots: u32,
}

impl Liveness {
    /// What it adds to [`Tally`]: available agents, their chunk slots, and the slots of every
    /// agent heard from within `window`.
    fn tally(&self, window: Duration) -> [usize; 3] {
        let online = self.at.elapsed() < window;
        let free = online && self.presence.may_take_work();
        let slots = self.slots.max(1) as usize;
        [
            usize::from(free),
            if free { slots } else { 0 },
            if online { slots } else { 0 },
        ]
    }
}

/// Counts over [`Coordinator::liveness`] kept up to date as agents are heard from (and
/// recounted by the background task, for agents falling silent), so a request never counts
/// over every agent: available agents, their chunk slots, the slots of every agent heard from.
#[derive(Debug, Default)]
pub(crate) struct Tally([std::sync::atomic::AtomicUsize; 3]);

impl Tally {
    fn change(&self, before: [usize; 3], after: [usize; 3]) {
        for ((count, b), a) in self.0.iter().zip(before).zip(after) {
            if a > b {
                count.fetch_add(a - b, Ordering::Relaxed);
            } else if b > a {
                count.fetch_sub(b - a, Ordering::Relaxed);
            }
        }
    }

    fn get(&self, i: usize) -> usize {
        self.0[i].load(Ordering::Relaxed)
    }

    /// Chunk slots of the available agents.
    pub fn free_slots(&self) -> usize {
        self.get(1)
    }

    /// Chunk slots of every agent heard from within a lease's lifetime.
    pub fn online_slots(&self) -> usize {
        self.get(2)
    }
}

/// The running coordinator.
pub struct Coordinator {
    pub(crate) config: ServerConfig,
    pub(crate) store: Store,
    pub(crate) data: DataDir,
    pub(crate) sched: Mutex<Sched>,
    pub(crate) agents: RwLock<HashMap<i64, AgentRow>>,
    pub(crate) liveness: std::sync::Mutex<HashMap<i64, Liveness>>,
    /// Counts over `liveness`: kept up to date by `touch` and `offer_slots`, recounted by the
    /// background task (agents falling silent).
    pub(crate) tally: Tally,
    /// "Last seen" times of heartbeats not written to the database yet.
    pub(crate) unsaved_seen: super::heard::Unsaved,
    pub(super) assemble_tx: mpsc::UnboundedSender<i64>,
    assemble_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<i64>>>,
    /// Wakes agents waiting in a long-polled lease request when frames become queued.
    pub(crate) work: super::bell::WorkBell,
    /// The live event stream's hub.
    pub(crate) events: crate::events::EventHub,
    /// Each agent's last reported presence, to record only changes.
    pub(crate) last_presence: std::sync::Mutex<HashMap<i64, PresenceState>>,
    /// Cancelled when the server shuts down, so long polls end at once.
    pub(crate) closing: tokio_util::sync::CancellationToken,
    /// What `/metrics` shows.
    pub(crate) metrics: super::metrics::Metrics,
    /// How long each PC is likely to stay free, from its presence history.
    pub(crate) spells: super::placement::Spells,
}

impl Coordinator {
    /// Opens the data directory and database and loads every job's state.
    pub async fn open(config: ServerConfig) -> anyhow::Result<Arc<Coordinator>> {
        let data = DataDir::create(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot use data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
        let store = Store::open(data.root()).await?;
        let mut sched = Sched {
            next_lease: store.max_lease_id().await? + 1,
            ..Sched::default()
        };
        for row in store.jobs().await? {
            let board = store.board(row.id).await?;
            for &lease in board.leases.keys() {
                if let Some(owner) = LeaseOwner::of_live(row.id, lease, &board) {
                    sched.lease_owner.insert(lease, owner);
                }
            }
            sched.jobs.insert(
                row.id,
                JobEntry {
                    row,
                    board,
                    speeds: Speeds::default(),
                },
            );
        }
        for (agent, record) in store.failure_records().await? {
            sched.failures.entry(agent).or_default().push(record);
        }
        let agents = store
            .agents()
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let (assemble_tx, assemble_rx) = mpsc::unbounded_channel();
        // Jobs interrupted while assembling, or complete but not yet assembled, are picked up again.
        for entry in sched.jobs.values() {
            let pending = entry.row.state == JobState::Assembling
                || (entry.row.state == JobState::Rendering && entry.board.is_complete());
            if pending {
                let _ = assemble_tx.send(entry.row.id);
            }
        }
        Ok(Arc::new(Coordinator {
            config,
            store,
            data,
            sched: Mutex::new(sched),
            agents: RwLock::new(agents),
            liveness: std::sync::Mutex::new(HashMap::new()),
            tally: Tally::default(),
            unsaved_seen: super::heard::Unsaved::default(),
            assemble_tx,
            assemble_rx: std::sync::Mutex::new(Some(assemble_rx)),
            work: Default::default(),
            events: crate::events::EventHub::default(),
            last_presence: std::sync::Mutex::new(HashMap::new()),
            closing: tokio_util::sync::CancellationToken::new(),
            metrics: super::metrics::Metrics::new(),
            spells: super::placement::Spells::default(),
        }))
    }

    /// The enrolment token agents register with; created on first use. The flag says whether
    /// it was just created.
    pub async fn enrolment_token(&self) -> anyhow::Result<(String, bool)> {
        Ok(self
            .store
            .enrolment_token(crate::auth::new_secret, now_secs())
            .await?)
    }

    /// The database (for account set-up on the coordinator's own machine, and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.root()
    }

    /// Starts lease expiry, offline detection and assembly in the background.
    pub(crate) fn start_background(self: Arc<Self>) -> JoinHandle<()> {
        let rx = self.assemble_rx.lock().expect("not poisoned").take();
        tokio::spawn(async move {
            let assembler = rx.map(|rx| tokio::spawn(self.clone().assemble_loop(rx)));
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut pruned = Instant::now() - Duration::from_secs(3600);
            loop {
                tick.tick().await;
                if pruned.elapsed() >= Duration::from_secs(3600) {
                    pruned = Instant::now();
                    if let Err(e) = self.prune_history().await {
                        tracing::warn!("pruning presence history: {}", e.message);
                    }
                }
                self.count_available();
                if let Err(e) = self.save_last_seen().await {
                    tracing::warn!("saving when agents were last seen: {}", e.message);
                }
                if let Err(e) = self.expire_leases().await {
                    tracing::warn!("expiring leases: {}", e.message);
                }
                if let Err(e) = self.mark_silent_offline().await {
                    tracing::warn!("marking silent agents offline: {}", e.message);
                }
                if assembler.as_ref().is_some_and(|a| a.is_finished()) {
                    tracing::error!("assembler stopped");
                }
            }
        })
    }

    pub(crate) fn touch(&self, agent: i64, presence: Option<PresenceState>) {
        let window = self.config.lease_ttl;
        let mut live = self.liveness.lock().expect("not poisoned");
        let before = live.get(&agent).map_or([0; 3], |l| l.tally(window));
        let entry = live.entry(agent).or_insert(Liveness {
            at: Instant::now(),
            presence: PresenceState::Idle,
            slots: 1,
        });
        entry.at = Instant::now();
        if let Some(p) = presence {
            entry.presence = p;
        }
        self.tally.change(before, entry.tally(window));
    }

    /// Records how many chunks `agent` may render at once (its lease request says so).
    pub(crate) fn offer_slots(&self, agent: i64, slots: u32) {
        let window = self.config.lease_ttl;
        if let Some(entry) = self.liveness.lock().expect("not poisoned").get_mut(&agent) {
            let before = entry.tally(window);
            entry.slots = slots.max(1);
            self.tally.change(before, entry.tally(window));
        }
    }

    /// Agents heard from recently that may take work. Read by the views, so kept as a count
    /// rather than counted over every agent each time.
    pub(crate) fn available_agents(&self) -> usize {
        self.tally.get(0)
    }

    /// Counts the available agents again, so those that fell silent no longer count.
    fn count_available(&self) {
        let window = self.config.lease_ttl;
        let live = self.liveness.lock().expect("not poisoned");
        let mut sums = [0; 3];
        for l in live.values() {
            for (sum, n) in sums.iter_mut().zip(l.tally(window)) {
                *sum += n;
            }
        }
        for (count, sum) in self.tally.0.iter().zip(sums) {
            count.store(sum, Ordering::Relaxed);
        }
    }

    async fn expire_leases(&self) -> Result<(), ApiError> {
        let now = now_ms();
        let mut changed = Vec::new();
        let mut sched = self.sched.lock().await;
        for entry in sched.jobs.values_mut() {
            for lease in entry.board.expired(now) {
                tracing::info!(
                    job = entry.row.id,
                    lease,
                    "lease expired; its frames are queued again"
                );
                self.finish_lease(entry, lease, LeaseEnding::Expired)
                    .await?;
                changed.push(entry.row.id);
            }
        }
        drop(sched);
        changed.dedup();
        for job in changed {
            self.job_changed(job).await;
        }
        Ok(())
    }

    /// Ends a lease on a job and persists what changed.
    pub(crate) async fn finish_lease(
        &self,
        entry: &mut JobEntry,
        lease: LeaseId,
        how: LeaseEnding,
    ) -> Result<(), ApiError> {
        let Some((_, changed)) = entry.board.end_lease(lease, how) else {
            return Ok(());
        };
        self.metrics.lease_ended(how, changed.len());
        self.store
            .end_leases(entry.row.id, &[lease], &entry.board, &changed)
            .await?;
        self.work.ring(changed.len());
        if entry.row.state == JobState::Rendering && entry.board.is_stuck() {
            let reason = self.store.last_failure(entry.row.id).await?;
            let failed = entry
                .board
                .frames
                .iter()
                .filter(|f| f.state == schedule::FrameState::Failed);
            let list: Vec<String> = failed.map(|f| f.frame.to_string()).collect();
            let why = reason
                .map(|(m, _)| m)
                .unwrap_or_else(|| "renderer failures".into());
            let error = format!(
                "frame(s) {} failed on {} different PCs; last error: {why}",
                list.join(", "),
                schedule::MAX_FRAME_FAILURES
            );
            self.set_state(entry, JobState::Failed, Some(error)).await?;
        }
        Ok(())
    }

    pub(crate) async fn set_state(
        &self,
        entry: &mut JobEntry,
        state: JobState,
        error: Option<String>,
    ) -> Result<(), ApiError> {
        let mut row = entry.row.clone();
        row.state = state;
        row.error = error;
        row.finished_at = state.is_final().then(now_secs);
        self.store.set_job_state(&row).await?;
        entry.row = row;
        Ok(())
    }

    /// Hands the agent a chunk of the job the scheduling core picks for it (priority, fair share
    /// between users, tags, pause, drain, blocklist, quarantine), if any; otherwise remembers why
    /// it gets nothing. A request `woken` by queued work wakes the next waiting one once it
    /// has looked (see [`super::bell`]).
    pub(crate) async fn lease_for(
        &self,
        agent: i64,
        presence: PresenceState,
        woken: bool,
    ) -> Result<Option<Lease>, ApiError> {
        let ttl = self.config.lease_ttl.as_millis() as i64;
        let now = now_ms();
        // Outside the scheduler lock: the PC's presence history may have to be read.
        let spell = self.likely_free(agent, now).await;
        // A job's end is split between chunk slots: a PC rendering two chunks at once gets a
        // share for each.
        let agents = self.tally.free_slots().max(1);
        // Declared before the lock's guard, so it passes the wake-up on after the lock is let go.
        let mut relay = woken.then_some(Relay {
            bell: &self.work,
            unfit: false,
        });
        let mut guard = self.sched.lock().await;
        let sched = &mut *guard;
        // Read under the scheduler lock: a drain or disable (which takes it too) is never missed.
        let Some(row) = self.agents.read().await.get(&agent).cloned() else {
            return Err(ApiError::unauthorized("unknown agent"));
        };
        let renderers: Vec<Renderer> = row.renderers.iter().map(|r| r.renderer).collect();
        let health = self.health_of(sched, agent, now);
        let mut running: HashMap<Option<i64>, usize> = HashMap::new();
        for entry in sched.jobs.values() {
            *running.entry(entry.row.owner_id).or_default() += entry.board.leases.len();
        }
        let views: Vec<JobView> = sched.jobs.values().map(JobEntry::view).collect();
        let view = AgentView {
            id: agent,
            renderers: &renderers,
            tags: &row.tags,
            mode: row.mode,
            may_take_work: presence.may_take_work(),
            health: &health,
        };
        let order = match schedule::pick_order(&views, &view, &running, now) {
            Ok(order) => order,
            Err(NoWork::NothingToDo) => {
                let backup = self.lease_backup(sched, &view, now).await?;
                if backup.is_none() {
                    sched.no_work.insert(agent, NoWork::NothingToDo);
                } else {
                    sched.no_work.remove(&agent);
                }
                drop(guard);
                return self.saved(backup).await;
            }
            Err(why) => {
                sched.no_work.insert(agent, why);
                if let Some(relay) = &mut relay {
                    relay.unfit = true;
                }
                return Ok(None);
            }
        };
        sched.no_work.remove(&agent);
        let mut left_to_faster = false;
        // An agent asking while it renders asks for a further chunk of its own: that never
        // counts as "no other PC could check this frame" (its next first chunk may).
        let busy = (sched.jobs.values()).any(|e| e.board.leases.values().any(|l| l.agent == agent));
        for job in order {
            if sched.declines.holds(agent, job, now) {
                continue;
            }
            let Some(entry) = sched.jobs.get_mut(&job) else {
                continue;
            };
            let queued = entry.board.counts().queued;
            if self.leave_to_faster(entry, agent, queued, now) {
                left_to_faster = true;
                continue;
            }
            let policy = self.chunk_policy(entry, queued, spell);
            let want = schedule::chunk_size(&policy, entry.speeds.of(agent), queued, agents);
            let id = sched.next_lease;
            let alone = entry.board.has_checks()
                && !busy
                && !self
                    .others_could_render(&sched.failures, entry, agent, now)
                    .await;
            let Some(taken) = entry.board.take_chunk(id, agent, want, now, ttl, alone) else {
                continue;
            };
            sched.next_lease += 1;
            // The job's first lease also records when the job started, in the same commit.
            let first = entry.row.started_at.is_none();
            let started = first.then_some(now / 1000);
            let slot = &entry.board.leases[&id];
            let saved = self
                .store
                .queue_lease(job, id, slot, &entry.board, started)?;
            entry.row.started_at = entry.row.started_at.or(started);
            if let Some(owner) = LeaseOwner::of_live(job, id, &entry.board) {
                sched.lease_owner.insert(id, owner);
            }
            let lease = entry.lease_message(id, &taken, &self.config);
            // Its frames are rendering now: pages following the job show it (taken now, so
            // the lock is not waited for again by every PC a burst of leases goes to).
            let event = super::publish::job_event(entry);
            drop(guard);
            drop(relay);
            // Committed with every other lease taken meanwhile, outside the lock.
            self.store.lease_saved(saved).await?;
            self.events.publish(event);
            return Ok(Some(lease));
        }
        // Queued frames, but none this PC should take (left to faster PCs) or may take (held
        // for another PC's opinion).
        let backup = self.lease_backup(sched, &view, now).await?;
        if backup.is_none() && left_to_faster {
            sched.no_work.insert(agent, NoWork::LeftToFaster);
        }
        if let Some(relay) = &mut relay {
            relay.unfit = backup.is_none();
        }
        drop(guard);
        self.saved(backup).await
    }

    /// A backup lease once it is saved.
    async fn saved(&self, backup: Option<(Lease, LeaseTicket)>) -> Result<Option<Lease>, ApiError> {
        let Some((lease, saved)) = backup else {
            return Ok(None);
        };
        self.store.lease_saved(saved).await?;
        Ok(Some(lease))
    }

    /// An agent's blocklists and quarantine as of `now`, from its failures since its release.
    pub(crate) fn health_of(&self, sched: &Sched, agent: i64, now: i64) -> Health {
        let records = sched.failures.get(&agent).map_or(&[][..], Vec::as_slice);
        schedule::assess(records, now, &self.config.health)
    }

    /// Renews the agent's leases; returns the ones it no longer holds.
    pub(crate) async fn renew(
        &self,
        agent: i64,
        leases: &[LeaseId],
    ) -> Result<Vec<LeaseId>, ApiError> {
        if leases.is_empty() {
            // Most heartbeats of a big farm: nothing to renew, no need to wait for the lock.
            return Ok(Vec::new());
        }
        let now = now_ms();
        let ttl = self.config.lease_ttl.as_millis() as i64;
        let mut guard = self.sched.lock().await;
        let sched = &mut *guard;
        let mut revoked = Vec::new();
        let mut renewals = Vec::new();
        for &lease in leases {
            let owner = sched.lease_owner.get_mut(&lease);
            let (entry, owner) = match owner {
                Some(o) if o.agent == agent => (sched.jobs.get_mut(&o.job), Some(o)),
                _ => (None, None),
            };
            let renewed = match (entry, owner) {
                (Some(entry), Some(owner)) if entry.row.state == JobState::Rendering => {
                    let renewed = entry.board.renew(lease, now, ttl);
                    if renewed {
                        let expires = entry.board.leases[&lease].expires_at;
                        renewals.push((lease, expires));
                        owner.held_until = expires;
                    }
                    renewed
                }
                _ => false,
            };
            if !renewed {
                revoked.push(lease);
            }
        }
        // Written with the next batch (a lease ended meanwhile is deleted, and the update then
        // changes nothing): the running coordinator's own expiry is the one that counts, and a
        // restart that finds one half a second older only ends that lease as much earlier.
        drop(guard);
        self.unsaved_seen.note_renewals(&renewals);
        Ok(revoked)
    }

    /// An agent ends a lease: complete, yield or failure.
    pub(crate) async fn end_lease(
        &self,
        agent: i64,
        lease: LeaseId,
        outcome: LeaseOutcome,
        message: Option<String>,
        log_tail: Option<String>,
    ) -> Result<(), ApiError> {
        let mut guard = self.sched.lock().await;
        let sched = &mut *guard;
        let Some((job, owner)) = sched.lease_owner.get(&lease).map(|o| (o.job, o.agent)) else {
            return Err(ApiError::not_found(format!("no lease {lease}")));
        };
        if owner != agent {
            return Err(ApiError::conflict(format!(
                "lease {lease} is not held by this agent"
            )));
        }
        let Some(entry) = sched.jobs.get(&job) else {
            return Ok(());
        };
        let now = now_ms();
        match outcome {
            LeaseOutcome::Failed => {
                let frames = entry
                    .board
                    .leases
                    .get(&lease)
                    .map_or_else(Vec::new, |slot| {
                        slot.frames
                            .iter()
                            .map(|&i| entry.board.frames[i].frame)
                            .collect()
                    });
                let failure = FailureInfo {
                    at: now / 1000,
                    agent_id: agent,
                    lease_id: lease,
                    frames,
                    message: message.unwrap_or_else(|| "the renderer failed".into()),
                    log_tail,
                };
                tracing::warn!(job, lease, agent, "lease failed: {}", failure.message);
                self.store.record_failure(&failure, job, now, false).await?;
                sched
                    .failures
                    .entry(agent)
                    .or_default()
                    .push(FailureRecord {
                        job,
                        at: now,
                        wrong_frame: false,
                    });
            }
            LeaseOutcome::Yield => self.store.count_yield(agent).await?,
            LeaseOutcome::Declined => {
                let reason = message.unwrap_or_else(|| "the agent cannot take it on".into());
                tracing::info!(job, lease, agent, "lease declined: {reason}");
                sched.declines.record(agent, job, reason, now);
            }
            LeaseOutcome::Complete => {}
        }
        let how = match outcome {
            LeaseOutcome::Complete => LeaseEnding::Complete,
            // The frames go back to the queue as for a person, without counting anything.
            LeaseOutcome::Yield | LeaseOutcome::Declined => LeaseEnding::Yield,
            LeaseOutcome::Failed => LeaseEnding::Failed,
        };
        let Some(entry) = sched.jobs.get_mut(&job) else {
            return Ok(());
        };
        self.finish_lease(entry, lease, how).await?;
        if outcome == LeaseOutcome::Failed {
            self.fail_if_hopeless(sched, job, now).await?;
        }
        drop(guard);
        self.job_changed(job).await;
        self.agent_changed(agent);
        Ok(())
    }

    /// Fails a job that still has frames to render when every agent able to render it is
    /// blocklisted for it: nobody will ever take it. With no capable agent at all it waits.
    async fn fail_if_hopeless(
        &self,
        sched: &mut Sched,
        job: i64,
        now: i64,
    ) -> Result<(), ApiError> {
        let Some(entry) = sched.jobs.get(&job) else {
            return Ok(());
        };
        if !matches!(entry.row.state, JobState::Rendering | JobState::Paused)
            || entry.board.is_complete()
        {
            return Ok(());
        }
        let renderer = entry.row.settings.renderer;
        let capable: Vec<i64> = self
            .agents
            .read()
            .await
            .values()
            .filter(|a| a.renderers.iter().any(|r| r.renderer == renderer))
            .map(|a| a.id)
            .collect();
        let healths: Vec<Health> = capable
            .iter()
            .map(|&a| self.health_of(sched, a, now))
            .collect();
        if !schedule::all_blocklisted(job, &healths) {
            return Ok(());
        }
        let reason = self.store.last_failure(job).await?;
        let why = reason.map_or_else(|| "renderer failures".into(), |(m, _)| m);
        let error = format!(
            "every PC that can render it failed on it {} times; last error: {why}",
            self.config.health.blocklist_after
        );
        let Some(entry) = sched.jobs.get_mut(&job) else {
            return Ok(());
        };
        let (leases, changed) = entry.board.revoke_all_changed();
        if !leases.is_empty() {
            self.store
                .end_leases(job, &leases, &entry.board, &changed)
                .await?;
        }
        self.set_state(entry, JobState::Failed, Some(error)).await
    }

    async fn assemble_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<i64>) {
        while let Some(job) = rx.recv().await {
            if let Err(e) = self.assemble(job).await {
                tracing::error!(job, "assembly bookkeeping failed: {}", e.message);
            }
        }
    }

    /// Makes the MP4 and the frames zip of a finished job.
    async fn assemble(&self, job: i64) -> Result<(), ApiError> {
        let fps = {
            let sched = self.sched.lock().await;
            match sched.jobs.get(&job) {
                Some(e) => e.row.settings.fps,
                None => return Ok(()),
            }
        };
        let dir = self.data.frames_dir(job);
        let frames: Vec<PathBuf> = self
            .store
            .frame_files(job)
            .await?
            .into_iter()
            .map(|(_, f)| dir.join(f))
            .collect();
        let started = Instant::now();
        tracing::info!(job, frames = frames.len(), "assembling video");
        let zip_frames = frames.clone();
        let zip_out = self.data.frames_zip(job);
        let zipped =
            tokio::task::spawn_blocking(move || assemble::zip_frames(&zip_frames, &zip_out))
                .await
                .map_err(ApiError::internal)?;
        let ffmpeg_started = Instant::now();
        let video =
            assemble::encode_video(&self.config.ffmpeg, &frames, fps, &self.data.video(job)).await;
        self.metrics
            .assembled(ffmpeg_started.elapsed(), video.is_ok());
        let mut sched = self.sched.lock().await;
        let Some(entry) = sched.jobs.get_mut(&job) else {
            return Ok(());
        };
        if entry.row.state != JobState::Assembling {
            // Cancelled or changed while ffmpeg ran: the outputs stay, the state is not touched.
            return Ok(());
        }
        let result = zipped.and(video);
        let result = match result {
            Ok(()) => {
                entry.row.has_video = true;
                tracing::info!(job, secs = started.elapsed().as_secs_f64(), "job done");
                self.set_state(entry, JobState::Done, None).await
            }
            Err(e) => {
                let error = format!("the frames are ready, but the video could not be made: {e}");
                self.set_state(entry, JobState::Failed, Some(error)).await
            }
        };
        drop(sched);
        self.job_changed(job).await;
        result
    }
}

/// Frames are accepted while their job renders or is paused (a frame finished just as the job
/// was paused is not thrown away).
pub(super) fn check_rendering(entry: &JobEntry) -> Result<(), ApiError> {
    match entry.row.state {
        JobState::Rendering | JobState::Paused => Ok(()),
        state => Err(ApiError::conflict(format!(
            "job {} is {}",
            entry.row.id,
            state.as_str()
        ))),
    }
}

pub(super) fn reject_message(r: Result<usize, FrameReject>, frame: i64) -> Result<usize, ApiError> {
    r.map_err(|reason| match reason {
        FrameReject::Unknown => {
            ApiError::conflict(format!("frame {frame} is not part of this job"))
        }
        FrameReject::AlreadyDone => ApiError::conflict(format!("frame {frame} is already done")),
        FrameReject::Failed => ApiError::conflict(format!("frame {frame} has failed for good")),
    })
}

/// Passes a woken request's wake-up on when dropped, on every way out of a lease request;
/// `unfit` when the request could not take the queued frames (see [`super::bell`]).
struct Relay<'a> {
    bell: &'a super::bell::WorkBell,
    unfit: bool,
}

impl Drop for Relay<'_> {
    fn drop(&mut self) {
        self.bell.pass_on(self.unfit);
    }
}

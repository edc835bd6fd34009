//! One Orb as Mission Control sees it: its repository (fetched at most every
//! [`FETCH_EVERY`], so a page never waits on the Git host more than that), and the view of
//! its newest commit, built once per commit and shared by every request.

use anyhow::{Result, anyhow};
use orb_model::{ORBITER_YML, Orb};
use orb_repo::{CommitInfo, OrbRepo};
use orbiter::state::{self, OrbCurrent};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How old a fetch may be before a request fetches again.
pub const FETCH_EVERY: Duration = Duration::from_secs(2);
/// Commits a view keeps for the overview and the history page.
pub const LOG_DEPTH: usize = 500;
/// A commit's diff is cut here.
pub const MAX_DIFF: usize = 512 * 1024;

/// What orbiter.yml says, in short, or why it is not valid (with its line and column).
#[derive(Clone, Debug)]
pub enum Desired {
    Valid {
        providers: usize,
        clusters: usize,
        software: usize,
        /// Pools a person may scale here (of providers that create machines): provider,
        /// pool, nodes.
        scalable: Vec<(String, String, u32)>,
    },
    Invalid(String),
    Missing,
}

/// Everything the pages show of one commit of an Orb.
#[derive(Debug)]
pub struct View {
    pub name: String,
    pub head: Option<String>,
    pub desired: Desired,
    pub current: OrbCurrent,
    /// Why `orbiter/current.yml` could not be read (then `current` is empty).
    pub current_error: Option<String>,
    /// Newest first, at most [`LOG_DEPTH`].
    pub log: Vec<CommitInfo>,
    /// The last fetch failed (the view is of the last good one).
    pub fetch_error: Option<String>,
    /// Each etcd cluster's record (`orbiter/clusters/<id>/current.yml`), by id.
    pub etcd: Vec<(String, Result<orb_etcd::record::ClusterRecord, String>)>,
    /// Each load balancer's record (`orbiter/loadbalancers/<provider>.<pool>.yml`).
    pub lbs: Vec<(String, Result<orb_lb::LoadBalancerRecord, String>)>,
}

impl View {
    pub fn ready(&self) -> usize {
        self.current
            .machines
            .values()
            .filter(|m| m.state == "ready")
            .count()
    }
}

struct State {
    repo: OrbRepo,
    fetched: Option<Instant>,
    fetch_error: Option<String>,
    view: Option<Arc<View>>,
}

pub struct OrbSource {
    name: String,
    state: Mutex<State>,
}

impl OrbSource {
    /// `name`: how pages call it (and its URL part).
    pub fn new(name: impl Into<String>, repo: OrbRepo) -> OrbSource {
        OrbSource {
            name: name.into(),
            state: Mutex::new(State {
                repo,
                fetched: None,
                fetch_error: None,
                view: None,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The view of the newest commit, fetching first when the last fetch is older than
    /// [`FETCH_EVERY`]. A failed fetch keeps the last view and says so.
    pub fn view(&self) -> Result<Arc<View>> {
        let mut s = self.lock();
        if s.fetched.is_none_or(|t| t.elapsed() >= FETCH_EVERY) {
            s.fetch_error = s.repo.fetch().err().map(|e| e.to_string());
            s.fetched = Some(Instant::now());
        }
        let head = s.repo.snapshot().head().map(str::to_owned);
        if let Some(v) = &s.view
            && v.head == head
            && v.fetch_error == s.fetch_error
        {
            return Ok(v.clone());
        }
        let view = Arc::new(build(&self.name, &s.repo, head, s.fetch_error.clone())?);
        s.view = Some(view.clone());
        Ok(view)
    }

    /// A file of the newest fetched commit, as text.
    pub fn file(&self, path: &str) -> Result<Option<String>> {
        let s = self.lock();
        let bytes = s.repo.snapshot().read(path)?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Commits `edit` as the configured person (fetching first, retrying on a lost race);
    /// the next view shows it.
    pub fn commit(&self, edit: &crate::edits::Edit) -> Result<orb_repo::UpdateOutcome> {
        let mut s = self.lock();
        let outcome = orbiter::engine::update(&mut s.repo, &edit.message(), |snap| {
            let text = snap
                .read(ORBITER_YML)?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let new = edit.apply(text.as_deref())?;
            Ok(vec![orb_repo::FileChange::write(ORBITER_YML, new)])
        })?;
        s.fetched = None;
        Ok(outcome)
    }

    /// What commit `id` changed (see [`OrbRepo::commit_diff`]).
    pub fn commit_diff(&self, id: &str) -> Result<String> {
        Ok(self.lock().repo.commit_diff(id, MAX_DIFF)?)
    }
}

fn scalable(orb: &Orb) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    for (pid, node) in &orb.providers {
        if let orb_model::registry::ProviderSpec::Local(l) = &node.spec {
            for (pool, p) in &l.pools {
                out.push((pid.to_string(), pool.to_string(), p.nodes.value));
            }
        }
    }
    out
}

fn build(
    name: &str,
    repo: &OrbRepo,
    head: Option<String>,
    fetch_error: Option<String>,
) -> Result<View> {
    let snap = repo.snapshot();
    let text = |path: &str| -> Result<Option<String>> {
        Ok(snap
            .read(path)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let desired = match text(ORBITER_YML)? {
        None => Desired::Missing,
        Some(t) => match Orb::parse(&t, ORBITER_YML) {
            Ok(orb) => Desired::Valid {
                providers: orb.providers.len(),
                clusters: orb.clusters.len(),
                software: orb.software.len(),
                scalable: scalable(&orb),
            },
            Err(e) => Desired::Invalid(e.to_string()),
        },
    };
    let (current, current_error) = match text(state::CURRENT)? {
        None => (OrbCurrent::new(), None),
        Some(t) => match state::parse::<OrbCurrent>(&t, state::CURRENT) {
            Ok(c) => (c, None),
            Err(e) => (OrbCurrent::new(), Some(e.to_string())),
        },
    };
    let (mut etcd, mut lbs) = (Vec::new(), Vec::new());
    for path in snap.list()? {
        let Some(t) = text(&path)? else { continue };
        if let Some(id) = path
            .strip_prefix("orbiter/clusters/")
            .and_then(|r| r.strip_suffix("/current.yml"))
        {
            let r = orbiter::clusters::etcd::read_record(&t, &path).map_err(|e| e.to_string());
            etcd.push((id.to_owned(), r));
        } else if let Some(pool) = orbiter::clusters::load_balancer::record_pool(&path) {
            let r = state::parse_yaml::<orb_lb::LoadBalancerRecord>(&t, &path)
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    r.check_version()
                        .map(|()| r)
                        .map_err(|e| format!("{path}: {e}"))
                });
            lbs.push((pool, r));
        }
    }
    let log = repo
        .log(LOG_DEPTH)
        .map_err(|e| anyhow!("history of {name}: {e}"))?;
    Ok(View {
        name: name.to_owned(),
        head,
        desired,
        current,
        current_error,
        log,
        fetch_error,
        etcd,
        lbs,
    })
}

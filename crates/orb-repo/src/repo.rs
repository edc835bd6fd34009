//! [`OrbRepo`]: a persistent local (bare) clone of one Orb repository, kept current with
//! incremental fetches, plus the read-only operations on it.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::config::OrbConfig;
use crate::error::RepoError;
use crate::git::{Git, SshHost, clean_env, ssh_command};
use crate::hostkey::{ensure_known, known_hosts_name};
use crate::lock::FileLock;
use crate::private::PrivateDir;
use crate::snapshot::Snapshot;
use crate::url::{RepoUrl, parse};
use crate::{Author, CommitInfo, RepoOptions};

/// The branch a first commit into an empty repository creates.
const DEFAULT_BRANCH: &str = "main";

/// Handle on one Orb repository. Reads come from the local clone (see [`OrbRepo::snapshot`]);
/// writes go through [`OrbRepo::update`].
pub struct OrbRepo {
    pub(crate) url: RepoUrl,
    /// What git is given as remote (credentials removed, local paths absolute).
    pub(crate) remote: String,
    pub(crate) git: Git,
    pub(crate) branch: String,
    pub(crate) head: Option<String>,
    pub(crate) lock_path: PathBuf,
    pub(crate) author: Author,
    pub(crate) max_push_attempts: u32,
    /// Holds git's HOME and the deploy key; removed when the handle drops.
    pub(crate) private: PrivateDir,
}

impl std::fmt::Debug for OrbRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrbRepo")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("head", &self.head)
            .field("clone", &self.git.git_dir())
            .finish_non_exhaustive()
    }
}

impl OrbRepo {
    /// Connects to the repository of `cfg`: pins or verifies the SSH host key, creates the
    /// persistent clone in `opts.cache_dir/<orb_id>` (or reuses it) and fetches.
    pub fn open(cfg: &OrbConfig, opts: RepoOptions) -> Result<OrbRepo, RepoError> {
        let mut repo = Self::connect(cfg, opts)?;
        repo.fetch()?;
        Ok(repo)
    }

    /// [`OrbRepo::open`] for a person who accepts a rewritten history (see
    /// [`OrbRepo::accept_history`]); returns the heads before and now.
    pub fn open_accepting_history(
        cfg: &OrbConfig,
        opts: RepoOptions,
    ) -> Result<(OrbRepo, Option<String>, Option<String>), RepoError> {
        let mut repo = Self::connect(cfg, opts)?;
        let (seen, now) = repo.accept_history()?;
        Ok((repo, seen, now))
    }

    fn connect(cfg: &OrbConfig, opts: RepoOptions) -> Result<OrbRepo, RepoError> {
        let url = parse(&cfg.url)?;
        check_author(&opts.author)?;
        let mut private = PrivateDir::new()?;
        let mut env = clean_env(&private.home());
        let mut secrets: Vec<Zeroizing<String>> = Vec::new();
        let mut ssh = None;
        let known_hosts = absolute(&opts.known_hosts)?;
        let mut remote = url.git_url();
        match &url {
            RepoUrl::Ssh { host, port, .. } => {
                let key = cfg
                    .repokey
                    .as_ref()
                    .filter(|k| !k.expose().trim().is_empty());
                let Some(key) = key else {
                    return Err(RepoError::Url {
                        url: url.to_string(),
                        reason: "ssh URLs need a deploy key: set repokey in the orb config \
                                 (orbctl configure --repokey-file KEY)"
                            .to_owned(),
                    });
                };
                let key_path = private.write_key(key.expose())?;
                ensure_known(
                    host,
                    *port,
                    &known_hosts,
                    &opts.host_key_policy,
                    &env,
                    private.path(),
                )?;
                env.push((
                    "GIT_SSH_COMMAND".into(),
                    ssh_command(&key_path, &known_hosts)?.into(),
                ));
                env.push(("GIT_SSH_VARIANT".into(), "ssh".into()));
                ssh = Some(SshHost {
                    display: known_hosts_name(host, *port),
                    known_hosts: known_hosts.clone(),
                });
            }
            RepoUrl::Https(_) => {
                let token = url.https_credentials().or_else(|| {
                    let key = cfg.repokey.as_ref()?;
                    let user = url.https_user().unwrap_or_else(|| "git".to_owned());
                    Some((user, Zeroizing::new(key.expose().trim().to_owned())))
                });
                if let (Some((user, token)), Some(origin)) = (token, url.https_origin()) {
                    // In the environment, not argv: /proc/PID/cmdline is world-readable.
                    let basic = Zeroizing::new(
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{user}:{}", token.as_str())),
                    );
                    env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
                    env.push((
                        "GIT_CONFIG_KEY_0".into(),
                        format!("http.{origin}.extraHeader").into(),
                    ));
                    env.push((
                        "GIT_CONFIG_VALUE_0".into(),
                        format!("Authorization: Basic {}", basic.as_str()).into(),
                    ));
                    secrets.push(token);
                    secrets.push(basic);
                }
            }
            RepoUrl::File(p) => remote = absolute(p)?.display().to_string(),
        }

        let cache_dir = absolute(&opts.cache_dir)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cache_dir)
            .map_err(|e| {
                RepoError::io(
                    format!("cannot create cache dir {}", cache_dir.display()),
                    e,
                )
            })?;
        let orb_id = cfg.orb_id();
        let clone_dir = cache_dir.join(&orb_id);
        let lock_path = cache_dir.join(format!("{orb_id}.lock"));
        {
            let _lock = FileLock::acquire(&lock_path)?;
            init_clone(&clone_dir, &cache_dir, &env)?;
        }
        let git = Git::new(clone_dir, env, secrets, ssh);
        let branch = default_branch(&git, &remote)?;
        Ok(OrbRepo {
            url,
            remote,
            git,
            branch,
            head: None,
            lock_path,
            author: opts.author,
            max_push_attempts: opts.max_push_attempts.max(1),
            private,
        })
    }

    /// Brings the local clone up to date with the remote (one round trip when nothing changed).
    pub fn fetch(&mut self) -> Result<(), RepoError> {
        let _lock = FileLock::acquire(&self.lock_path)?;
        self.fetch_locked()
    }

    /// [`OrbRepo::fetch`] for callers already holding the clone lock. The remote's branches
    /// arrive in `refs/orbiter/incoming/`; the default branch's head is taken only if it
    /// descends from the one this clone saw last ([`RepoError::HistoryRewritten`] otherwise:
    /// a force-push is never read silently, see [`OrbRepo::accept_history`]).
    pub(crate) fn fetch_locked(&mut self) -> Result<(), RepoError> {
        let new = self.fetch_incoming()?;
        let seen = self.rev(&self.tracking_ref())?;
        if let Some(seen) = &seen
            && new.as_deref() != Some(seen.as_str())
        {
            let descends = match &new {
                Some(new) => self.is_ancestor(seen, new)?,
                None => false,
            };
            if !descends {
                return Err(RepoError::HistoryRewritten {
                    branch: self.branch.clone(),
                    seen: seen.clone(),
                    new: new.unwrap_or_else(|| "(the branch is gone)".to_owned()),
                });
            }
        }
        self.take_incoming(new.as_deref())
    }

    /// A person accepts a rewritten history: the remote's head is taken whatever it descends
    /// from. Returns (the head seen before, the head now).
    pub fn accept_history(&mut self) -> Result<(Option<String>, Option<String>), RepoError> {
        let _lock = FileLock::acquire(&self.lock_path)?;
        let new = self.fetch_incoming()?;
        let seen = self.rev(&self.tracking_ref())?;
        self.take_incoming(new.as_deref())?;
        Ok((seen, new))
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches every branch into `refs/orbiter/incoming/`; the default branch's head there.
    fn fetch_incoming(&mut self) -> Result<Option<String>, RepoError> {
        self.git
            .call("fetch")
            .args(["--quiet", "--no-tags", "--prune", "--no-write-fetch-head"])
            .arg(&self.remote)
            .arg("+refs/heads/*:refs/orbiter/incoming/*")
            .run()?;
        self.rev(&format!("refs/orbiter/incoming/{}", self.branch))
    }

    /// Makes `new` the head this clone reads (and has seen).
    fn take_incoming(&mut self, new: Option<&str>) -> Result<(), RepoError> {
        match new {
            Some(new) => {
                self.git
                    .call("update-ref")
                    .arg(self.tracking_ref())
                    .arg(new)
                    .run()?;
            }
            None => {
                self.git
                    .call("update-ref")
                    .args(["-d", &self.tracking_ref()])
                    .run()?;
            }
        }
        self.head = new.map(str::to_owned);
        Ok(())
    }

    fn rev(&self, r: &str) -> Result<Option<String>, RepoError> {
        let out = self
            .git
            .call("rev-parse")
            .args(["--verify", "--quiet"])
            .arg(format!("{r}^{{commit}}"))
            .output()?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    fn is_ancestor(&self, old: &str, new: &str) -> Result<bool, RepoError> {
        let out = self
            .git
            .call("merge-base")
            .args(["--is-ancestor", old, new])
            .output()?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.git.failure("merge-base", &out.stderr)),
        }
    }

    /// The fetched head of the default branch.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            git: &self.git,
            head: self.head.clone(),
        }
    }

    /// The default branch (remote `HEAD`, or `main` for an empty repository).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The repository URL without credentials, for messages.
    pub fn display_url(&self) -> String {
        self.url.to_string()
    }

    /// Proves read and write access: lists the remote, pushes a temporary ref
    /// `refs/orbiter/access-check/<random>` and deletes it again. Branches are not touched.
    pub fn check_access(&mut self) -> Result<(), RepoError> {
        let _lock = FileLock::acquire(&self.lock_path)?;
        self.git
            .call("ls-remote")
            .arg(&self.remote)
            .arg("HEAD")
            .run()?;
        self.fetch_locked()?;
        let commit = match &self.head {
            Some(h) => h.clone(),
            None => {
                // An empty repository has nothing to push: use a commit of the empty tree.
                let tree = self
                    .git
                    .call("hash-object")
                    .args(["-w", "-t", "tree", "--stdin"])
                    .stdin(Vec::new())
                    .text()?;
                self.commit_tree(&tree, None, "orbiter access check")?
            }
        };
        let check_ref = format!(
            "refs/orbiter/access-check/{:016x}",
            crate::jitter::random_u64()
        );
        let pushed = self
            .git
            .call("push")
            .arg("--porcelain")
            .arg(&self.remote)
            .arg(format!("{commit}:{check_ref}"))
            .output()?;
        if !pushed.status.success() {
            return Err(self.push_failure("push (write access check)", &pushed));
        }
        let deleted = self
            .git
            .call("push")
            .arg("--porcelain")
            .arg(&self.remote)
            .arg(format!(":{check_ref}"))
            .output()?;
        if !deleted.status.success() {
            let mut err = self.push_failure("push (delete access-check ref)", &deleted);
            if let RepoError::Git { stderr, .. } = &mut err {
                stderr.push_str(&format!(
                    "\nhint: write access works, but the temporary ref {check_ref} is left on \
                     the server; delete it there"
                ));
            }
            return Err(err);
        }
        Ok(())
    }

    /// The newest `max` commits of the default branch (as of the last fetch), newest first.
    pub fn log(&self, max: usize) -> Result<Vec<CommitInfo>, RepoError> {
        let Some(head) = &self.head else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .git
            .call("log")
            .arg(format!("--max-count={max}"))
            .arg("--format=%H%x1f%an <%ae>%x1f%at%x1f%B%x1e")
            .arg(head)
            .arg("--")
            .run()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split('\x1e')
            .map(|r| r.trim_start_matches('\n'))
            .filter(|r| !r.is_empty())
            .map(|record| {
                let mut f = record.splitn(4, '\x1f');
                let (Some(id), Some(author), Some(date), Some(message)) =
                    (f.next(), f.next(), f.next(), f.next())
                else {
                    return Err(RepoError::Git {
                        op: "log".to_owned(),
                        stderr: format!("unexpected output {record:?}"),
                    });
                };
                Ok(CommitInfo {
                    id: id.to_owned(),
                    author: author.to_owned(),
                    date: date.parse().unwrap_or_default(),
                    message: message.trim_end().to_owned(),
                })
            })
            .collect()
    }

    /// What commit `id` (40 hex digits, of the fetched history) changed: `git show --stat
    /// --patch`, cut at `max` bytes. Anything but a full commit id is refused, so no
    /// argument reaches git that it could read as an option or a revision expression.
    pub fn commit_diff(&self, id: &str, max: usize) -> Result<String, RepoError> {
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::Git {
                op: "show".to_owned(),
                stderr: format!("`{}` is not a commit id (40 hex digits)", id.escape_debug()),
            });
        }
        let out = self
            .git
            .call("show")
            .arg("--stat")
            .arg("--patch")
            .arg("--format=")
            .arg("--no-color")
            .arg(id)
            .arg("--")
            .run()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.len() > max {
            let mut cut = max;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("\n… (cut)\n");
        }
        Ok(text)
    }

    /// `git commit-tree` with our author as author and committer.
    pub(crate) fn commit_tree(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
    ) -> Result<String, RepoError> {
        let mut call = self.git.call("commit-tree").arg(tree);
        if let Some(p) = parent {
            call = call.arg("-p").arg(p);
        }
        call.arg("-F")
            .arg("-")
            .env("GIT_AUTHOR_NAME", &self.author.name)
            .env("GIT_AUTHOR_EMAIL", &self.author.email)
            .env("GIT_COMMITTER_NAME", &self.author.name)
            .env("GIT_COMMITTER_EMAIL", &self.author.email)
            .stdin(message.as_bytes().to_vec())
            .text()
    }

    /// Error for a failed push: the porcelain rejection reason if any, else stderr.
    pub(crate) fn push_failure(&self, op: &str, out: &std::process::Output) -> RepoError {
        let rejected: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("!\t"))
            .map(|l| l.rsplit('\t').next().unwrap_or(l).to_owned())
            .collect();
        let mut stderr = out.stderr.clone();
        if !rejected.is_empty() {
            stderr.extend_from_slice(format!("\nrejected: {}", rejected.join("; ")).as_bytes());
        }
        self.git.failure(op, &stderr)
    }
}

/// Creates the bare clone atomically (init in a temp dir, then rename) unless it exists.
fn init_clone(
    clone_dir: &Path,
    cache_dir: &Path,
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Result<(), RepoError> {
    if clone_dir.join("HEAD").is_file() && clone_dir.join("objects").is_dir() {
        return Ok(());
    }
    if clone_dir.exists() {
        return Err(RepoError::io(
            format!(
                "{} exists but is not a git repository; remove it and try again",
                clone_dir.display()
            ),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no HEAD/objects"),
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".init-")
        .tempdir_in(cache_dir)
        .map_err(|e| {
            RepoError::io(
                format!("cannot create a temp dir in {}", cache_dir.display()),
                e,
            )
        })?;
    let git = Git::new(tmp.path().to_owned(), env.to_vec(), Vec::new(), None);
    git.call("init").args(["--bare", "--quiet"]).run()?;
    let tmp = tmp.keep();
    fs::rename(&tmp, clone_dir).map_err(|e| {
        let _ = fs::remove_dir_all(&tmp);
        RepoError::io(format!("cannot create {}", clone_dir.display()), e)
    })
}

/// The remote's default branch: where its HEAD points if that branch exists, else `main`.
fn default_branch(git: &Git, remote: &str) -> Result<String, RepoError> {
    let out = git
        .call("ls-remote")
        .arg("--symref")
        .arg(remote)
        .arg("HEAD")
        .arg("refs/heads/*")
        .text()?;
    let mut target = None;
    let mut heads = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((r, "HEAD")) = rest.split_once('\t') {
                target = Some(r.to_owned());
            }
        } else if let Some((_, r)) = line.split_once('\t') {
            heads.push(r.to_owned());
        }
    }
    Ok(match target {
        Some(t) if heads.contains(&t) => t.trim_start_matches("refs/heads/").to_owned(),
        _ => DEFAULT_BRANCH.to_owned(),
    })
}

fn absolute(p: &Path) -> Result<PathBuf, RepoError> {
    std::path::absolute(p).map_err(|e| RepoError::io(format!("cannot resolve {}", p.display()), e))
}

fn check_author(a: &Author) -> Result<(), RepoError> {
    for (what, v) in [("author name", &a.name), ("author email", &a.email)] {
        if v.trim().is_empty() || v.chars().any(|c| c.is_control() || c == '<' || c == '>') {
            return Err(RepoError::InvalidInput {
                what: what.to_owned(),
                reason: format!("{v:?} must be non-empty, without '<', '>' or control characters"),
            });
        }
    }
    Ok(())
}

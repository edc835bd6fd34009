//! [`OrbRepo::update`]: read-modify-write of the repository with re-derivation on lost races.

use std::time::Duration;

use crate::error::RepoError;
use crate::jitter::random_u64;
use crate::lock::FileLock;
use crate::repo::OrbRepo;
use crate::snapshot::Snapshot;
use crate::tree::{plan, validate_path};
use crate::{FileChange, UpdateOutcome};

/// First backoff after a lost push race; doubles per attempt up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

enum Pushed {
    Yes,
    LostRace,
}

impl OrbRepo {
    /// Read-modify-write with re-derivation: fetch, call `derive(snapshot)` for the changes;
    /// no effective change → [`UpdateOutcome::Unchanged`] (no commit). Otherwise commit on
    /// top of the fetched head (author and committer from the options) and push. When the
    /// push loses a race, fetch and call `derive` AGAIN on the new head (text is never
    /// merged), retrying with jittered exponential backoff up to `max_push_attempts`, then
    /// [`RepoError::PushRace`]. Never force-pushes. Works without a work tree (plumbing on a
    /// temporary index). The first commit into an empty repository creates `main`.
    /// Other processes using the same clone wait on its lock until this returns, so `derive`
    /// must not itself use an `OrbRepo` on the same cache directory.
    pub fn update<F>(&mut self, message: &str, mut derive: F) -> Result<UpdateOutcome, RepoError>
    where
        F: FnMut(
            &Snapshot<'_>,
        ) -> Result<Vec<FileChange>, Box<dyn std::error::Error + Send + Sync>>,
    {
        if message.trim().is_empty() {
            return Err(RepoError::InvalidInput {
                what: "commit message".to_owned(),
                reason: "it is empty; say what changed and why".to_owned(),
            });
        }
        let _lock = FileLock::acquire(&self.lock_path)?;
        let max = self.max_push_attempts;
        for attempt in 1..=max {
            self.fetch_locked()?;
            let snapshot = self.snapshot();
            let changes = derive(&snapshot).map_err(RepoError::Derive)?;
            let Some(commit) = self.prepare_commit(&snapshot, &changes, message)? else {
                return Ok(UpdateOutcome::Unchanged);
            };
            match self.push_commit(&commit)? {
                Pushed::Yes => {
                    self.git
                        .call("update-ref")
                        .arg(format!("refs/remotes/origin/{}", self.branch))
                        .arg(&commit)
                        .run()?;
                    self.head = Some(commit.clone());
                    return Ok(UpdateOutcome::Committed {
                        commit,
                        attempts: attempt,
                    });
                }
                Pushed::LostRace if attempt < max => std::thread::sleep(backoff(attempt)),
                Pushed::LostRace => {}
            }
        }
        Err(RepoError::PushRace { attempts: max })
    }

    /// Builds the commit for `changes` on top of the snapshot; `None` when the tree would
    /// not change.
    fn prepare_commit(
        &self,
        snapshot: &Snapshot<'_>,
        changes: &[FileChange],
        message: &str,
    ) -> Result<Option<String>, RepoError> {
        if changes.is_empty() {
            return Ok(None);
        }
        for c in changes {
            validate_path(&c.path)?;
        }
        let entries = snapshot.entries()?;
        let mut blobs = Vec::with_capacity(changes.len());
        for c in changes {
            let blob = match &c.content {
                Some(content) => Some(
                    self.git
                        .call("hash-object")
                        .args(["-w", "--stdin"])
                        .stdin(content.clone())
                        .text()?,
                ),
                None => None,
            };
            blobs.push((c.path.clone(), blob));
        }
        let Some(index_info) = plan(&entries, &blobs)? else {
            return Ok(None);
        };
        let index = TempIndex(self.private.scratch_path("index"));
        if let Some(head) = snapshot.head() {
            self.git
                .call("read-tree")
                .arg(head)
                .env("GIT_INDEX_FILE", &index.0)
                .run()?;
        }
        self.git
            .call("update-index")
            .args(["-z", "--index-info"])
            .env("GIT_INDEX_FILE", &index.0)
            .stdin(index_info)
            .run()?;
        let tree = self
            .git
            .call("write-tree")
            .env("GIT_INDEX_FILE", &index.0)
            .text()?;
        if let Some(head) = snapshot.head() {
            let head_tree = self
                .git
                .call("rev-parse")
                .arg(format!("{head}^{{tree}}"))
                .text()?;
            if head_tree == tree {
                return Ok(None);
            }
        }
        self.commit_tree(&tree, snapshot.head(), message).map(Some)
    }

    /// Pushes `commit` to the default branch without force.
    fn push_commit(&self, commit: &str) -> Result<Pushed, RepoError> {
        let dst = format!("refs/heads/{}", self.branch);
        let out = self
            .git
            .call("push")
            .arg("--porcelain")
            .arg(&self.remote)
            .arg(format!("{commit}:{dst}"))
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let status = stdout.lines().find_map(|l| {
            let mut f = l.splitn(3, '\t');
            let flag = f.next()?;
            let refs = f.next()?;
            refs.ends_with(&format!(":{dst}"))
                .then(|| (flag.to_owned(), f.next().unwrap_or_default().to_owned()))
        });
        match status {
            Some((flag, _)) if flag != "!" && out.status.success() => Ok(Pushed::Yes),
            Some((flag, summary))
                if flag == "!" && is_race(&summary, &String::from_utf8_lossy(&out.stderr)) =>
            {
                Ok(Pushed::LostRace)
            }
            _ => Err(self.push_failure("push", &out)),
        }
    }
}

/// Rejections that mean "someone else pushed first": seen by our side in the ref
/// advertisement, or by the receiving side while locking the ref (then the summary only
/// says "failed to update ref" and the reason arrives on stderr).
fn is_race(summary: &str, stderr: &str) -> bool {
    const CLIENT_SIDE: &[&str] = &["non-fast-forward", "fetch first", "stale info"];
    const SERVER_SIDE: &[&str] = &[
        "cannot lock ref",
        "incorrect old value",
        "reference already exists",
    ];
    CLIENT_SIDE.iter().any(|s| summary.contains(s))
        || SERVER_SIDE
            .iter()
            .any(|s| summary.contains(s) || stderr.contains(s))
}

/// `BACKOFF_BASE · 2^(attempt-1)`, capped, times a random factor in [0.5, 1.5) so racing
/// writers spread out.
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(BACKOFF_CAP);
    let factor = 0.5 + (random_u64() % 1000) as f64 / 1000.0;
    capped.mul_f64(factor)
}

/// Removes a temporary index file (and a leftover `.lock`) however the update ends.
struct TempIndex(std::path::PathBuf);

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let mut lock = self.0.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..=20 {
            let d = backoff(attempt);
            let nominal = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(BACKOFF_CAP);
            assert!(d >= nominal / 2 && d < nominal * 3 / 2, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn race_detection() {
        assert!(is_race("[rejected] (fetch first)", ""));
        assert!(is_race("[rejected] (non-fast-forward)", ""));
        assert!(is_race(
            "[remote rejected] (failed to update ref)",
            "remote: error: cannot lock ref 'refs/heads/main': is at a but expected b"
        ));
        assert!(is_race(
            "[remote rejected] (failed to update ref)",
            "error: cannot lock ref 'refs/heads/main': reference already exists"
        ));
        assert!(!is_race(
            "[remote rejected] (pre-receive hook declined)",
            "remote: no"
        ));
        assert!(!is_race(
            "[remote rejected] (failed to update ref)",
            "No space left"
        ));
    }
}

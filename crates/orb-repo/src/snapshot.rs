//! A read-only view of one commit of the Orb repository.

use crate::error::RepoError;
use crate::git::Git;
use crate::tree::{TreeEntry, parse_ls_tree, validate_path};

/// The remote head of the default branch as of the last fetch; `head() == None` for an
/// empty repository. Reads always see this commit, even if the repository moves on.
pub struct Snapshot<'a> {
    pub(crate) git: &'a Git,
    pub(crate) head: Option<String>,
}

impl Snapshot<'_> {
    /// Commit id the snapshot shows.
    pub fn head(&self) -> Option<&str> {
        self.head.as_deref()
    }

    /// The content of the file at `path`, `None` when it does not exist. A directory or
    /// submodule at `path` is an error.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, RepoError> {
        validate_path(path)?;
        let Some(head) = &self.head else {
            return Ok(None);
        };
        let out = self
            .git
            .call("ls-tree")
            .args(["-z", "--full-tree"])
            .arg(head)
            .arg("--")
            .arg(path)
            .run()?;
        let entries = parse_ls_tree(&out.stdout)?;
        let Some(entry) = entries.into_iter().find(|e| e.path == path) else {
            return Ok(None);
        };
        if entry.kind != "blob" {
            return Err(RepoError::InvalidPath {
                path: path.to_owned(),
                reason: format!("it is a {} in the repository, not a file", entry.kind),
            });
        }
        let out = self
            .git
            .call("cat-file")
            .arg("blob")
            .arg(&entry.sha)
            .run()?;
        Ok(Some(out.stdout))
    }

    /// Paths of all files, sorted.
    pub fn list(&self) -> Result<Vec<String>, RepoError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.kind == "blob")
            .map(|e| e.path)
            .collect())
    }

    /// Every leaf (`ls-tree -r`) of the snapshot.
    pub(crate) fn entries(&self) -> Result<Vec<TreeEntry>, RepoError> {
        let Some(head) = &self.head else {
            return Ok(Vec::new());
        };
        let out = self
            .git
            .call("ls-tree")
            .args(["-r", "-z", "--full-tree"])
            .arg(head)
            .run()?;
        parse_ls_tree(&out.stdout)
    }
}

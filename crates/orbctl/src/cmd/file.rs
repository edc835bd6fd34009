//! `orbctl file print|edit|patch|remove`. Whatever is pushed has passed the same validation
//! `orbctl validate` applies; invalid content never reaches the repository.

use crate::args::{Global, ValueSource};
use crate::context::{Ctx, interactive, read_text};
use crate::input::read_value;
use crate::picker::ask;
use crate::yaml_tree;
use anyhow::{Context as _, Result, anyhow, bail};
use orb_model::{ORBITER_YML, Orb};
use orb_repo::FileChange;
use orb_secrets::Keyring;
use std::io::Write as _;

/// Checks content before it is pushed: the files Orbiter reads are parsed with their real
/// readers, other YAML files must at least be YAML.
pub fn check(path: &str, text: &str) -> Result<()> {
    if path == ORBITER_YML {
        Orb::parse(text, path)?;
    } else if path == Keyring::FILE {
        Keyring::from_yaml(text, path)?;
    } else if path.ends_with(".yml") || path.ends_with(".yaml") {
        yaml_tree::parse(text, path)?;
    }
    Ok(())
}

fn check_path(path: &str) -> Result<()> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        bail!(
            "`{path}` is not a repository path\n  hint: paths are relative to the repository root, e.g. {ORBITER_YML}"
        );
    }
    Ok(())
}

pub fn print(g: &Global, path: &str) -> Result<()> {
    check_path(path)?;
    let ctx = Ctx::open(g)?;
    let bytes = ctx
        .repo
        .snapshot()
        .read(path)?
        .ok_or_else(|| anyhow!("{path} does not exist in the repository"))?;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}

pub fn edit(g: &Global, path: &str) -> Result<()> {
    check_path(path)?;
    if !interactive() {
        bail!(
            "file edit needs a terminal\n  hint: in scripts use `orbctl file patch` or write the file with git"
        );
    }
    let mut ctx = Ctx::open(g)?;
    let original = read_text(&ctx.repo.snapshot(), path)?;
    let dir = tempfile::Builder::new().prefix("orbctl-edit-").tempdir()?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let tmp = dir.path().join(name);
    std::fs::write(&tmp, original.as_deref().unwrap_or(""))?;
    let edited = loop {
        run_editor(&tmp)?;
        let text = std::fs::read_to_string(&tmp).context("the edited file is not UTF-8 text")?;
        if Some(text.as_str()) == original.as_deref() || (original.is_none() && text.is_empty()) {
            eprintln!("{path}: no changes");
            return Ok(());
        }
        match check(path, &text) {
            Ok(()) => break text,
            Err(e) => {
                eprintln!("{e:#}");
                if ask("[e]dit again or [a]bort?", &['e', 'a'])? == 'a' {
                    bail!("aborted; nothing was pushed");
                }
            }
        }
    };
    let outcome = super::update(
        &mut ctx.repo,
        &format!("Edit {path}\n\nby orbctl file edit"),
        |snap| {
            let now = read_text(snap, path)?;
            if now != original {
                let keep = keep_conflict_copy(name, &edited)?;
                bail!(
                    "{path} changed in the repository while you edited it; your version is saved at {}\n  hint: run `orbctl file edit {path}` again and carry your change over",
                    keep.display()
                );
            }
            Ok(vec![FileChange::write(path, edited.as_bytes())])
        },
    )?;
    super::report(&outcome, path);
    Ok(())
}

/// Saves the edited text of a lost race where the user can pick it up: a new file (0600,
/// created exclusively under an unpredictable name) in the temp directory, so nobody else can
/// read it or have prepared a link at its name.
fn keep_conflict_copy(name: &str, text: &str) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut f = tempfile::Builder::new()
        .prefix(&format!("orbctl-edit-{name}."))
        .rand_bytes(16)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile()
        .context("cannot save your version")?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.as_file().sync_all())
        .context("cannot save your version")?;
    let (_, path) = f.keep().context("cannot save your version")?;
    Ok(path)
}

fn run_editor(file: &std::path::Path) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    let mut words = editor.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| anyhow!("$VISUAL/$EDITOR is empty"))?;
    let status = std::process::Command::new(program)
        .args(words)
        .arg(file)
        .status()
        .with_context(|| format!("cannot start the editor `{editor}` (set $VISUAL or $EDITOR)"))?;
    if !status.success() {
        bail!("the editor `{editor}` failed ({status}); nothing was pushed");
    }
    Ok(())
}

pub fn patch(g: &Global, path: &str, key_path: &str, src: &ValueSource) -> Result<()> {
    check_path(path)?;
    let value = yaml_tree::value_from_input(&read_value(src)?);
    let mut ctx = Ctx::open(g)?;
    let outcome = super::update(
        &mut ctx.repo,
        &format!("Set {key_path} in {path}\n\nby orbctl file patch"),
        |snap| {
            let text = read_text(snap, path)?.unwrap_or_default();
            let mut tree = yaml_tree::parse(&text, path)?;
            let before = tree.clone();
            yaml_tree::set(&mut tree, key_path, value.clone())
                .with_context(|| format!("{path}: cannot set {key_path}"))?;
            if tree == before {
                return Ok(Vec::new());
            }
            let new_text = yaml_tree::render(&tree)?;
            check(path, &new_text)
                .context("the patched file would be invalid; nothing was pushed")?;
            if path == ORBITER_YML && secrets_of(&text)? != secrets_of(&new_text)? {
                bail!(
                    "{key_path} is (or contains) a secret: write secrets with `orbctl writesecret PATH` so they are encrypted for their place"
                );
            }
            Ok(vec![FileChange::write(path, new_text)])
        },
    )?;
    super::report(&outcome, path);
    Ok(())
}

pub fn remove(g: &Global, paths: &[String]) -> Result<()> {
    for p in paths {
        check_path(p)?;
    }
    let mut ctx = Ctx::open(g)?;
    let outcome = super::update(
        &mut ctx.repo,
        &format!("Remove {}\n\nby orbctl file remove", paths.join(", ")),
        |snap| {
            let mut changes = Vec::new();
            for p in paths {
                if snap.read(p)?.is_none() {
                    bail!("{p} does not exist in the repository");
                }
                if p == Keyring::FILE {
                    bail!(
                        "{p} holds the salt every secret is derived with; removing it makes every secret unreadable"
                    );
                }
                changes.push(FileChange::delete(p.as_str()));
            }
            Ok(changes)
        },
    )?;
    super::report(&outcome, &paths.join(", "));
    Ok(())
}

/// Every secret envelope of an orbiter.yml by path, to tell whether a patch touched one.
fn secrets_of(text: &str) -> Result<Vec<(String, Option<orb_secrets::Envelope>)>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut orb = Orb::parse(text, ORBITER_YML)?;
    Ok(orb
        .secrets_mut()
        .into_iter()
        .map(|(p, s)| (p, s.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn conflict_copies_are_private_and_unpredictable() {
        let a = keep_conflict_copy("orbiter.yml", "mine\n").unwrap();
        let b = keep_conflict_copy("orbiter.yml", "mine\n").unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("orbctl-edit-orbiter.yml.") && name.len() > 30,
                "{name}"
            );
            let m = std::fs::symlink_metadata(p).unwrap();
            assert_eq!(m.permissions().mode() & 0o7777, 0o600);
            assert_eq!(std::fs::read_to_string(p).unwrap(), "mine\n");
            std::fs::remove_file(p).unwrap();
        }
    }
}

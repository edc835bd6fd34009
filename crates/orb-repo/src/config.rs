//! The orb config (`~/.orb/config`): which repository holds the Orb, the deploy key that may
//! write to it, and the masterkey that encrypts its secrets.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::RepoError;
use crate::redact::redact_url_credentials;

/// A secret string: wiped from memory on drop, printed as `<redacted>` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(Zeroizing<String>);

impl Redacted {
    /// The secret itself; callers must keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Redacted {
    fn from(s: String) -> Redacted {
        Redacted(Zeroizing::new(s))
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Redacted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Redacted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Redacted, D::Error> {
        String::deserialize(d).map(Redacted::from)
    }
}

/// Writes `bytes` to `path` atomically with mode 0600 (the directory 0700 when created): a
/// fresh 0600 temp file next to it, synced, then renamed over.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    // tempfile creates the file with mode 0600 and O_EXCL.
    let mut tmp = tempfile::Builder::new()
        .prefix(".config-")
        .tempfile_in(&dir)
        .map_err(|e| format!("cannot create a temp file in {}: {e}", dir.display()))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod temp file: {e}"))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| format!("cannot write: {e}"))?;
    tmp.persist(path)
        .map_err(|e| format!("cannot replace the file: {}", e.error))?;
    Ok(())
}

/// Contents of an orb config file (YAML keys `url`, `repokey`, `masterkey`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrbConfig {
    /// Repository URL (see [`crate::url::parse`]); an https URL may embed a token.
    pub url: String,
    /// Private SSH deploy key (OpenSSH PEM) for ssh URLs, or an access token for https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repokey: Option<Redacted>,
    /// Key material every secret in the repository is encrypted with.
    pub masterkey: Redacted,
}

/// Shows the URL without credentials and no secret.
impl fmt::Debug for OrbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrbConfig")
            .field("url", &redact_url_credentials(&self.url))
            .field("repokey", &self.repokey)
            .field("masterkey", &self.masterkey)
            .finish()
    }
}

impl OrbConfig {
    /// Where the config lives: the `-f/--orbconfig` flag, else `$ORBCONFIG`, else `~/.orb/config`.
    pub fn resolve_path(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return expand_tilde(p);
        }
        if let Some(p) = std::env::var_os("ORBCONFIG").filter(|v| !v.is_empty()) {
            return expand_tilde(Path::new(&p));
        }
        home_dir().join(".orb").join("config")
    }

    /// Reads and validates the config. A file others can read still loads (so a person is
    /// not locked out) but prints a loud warning to stderr.
    pub fn load(path: &Path) -> Result<OrbConfig, RepoError> {
        Self::load_with_warnings(path, &mut std::io::stderr())
    }

    /// [`OrbConfig::load`] writing its warnings to `warnings` instead of stderr.
    pub fn load_with_warnings(
        path: &Path,
        warnings: &mut dyn Write,
    ) -> Result<OrbConfig, RepoError> {
        let config_err = |reason: String| RepoError::Config {
            path: path.to_owned(),
            reason,
        };
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(config_err(
                    "file not found; create it with `orbctl configure --repourl URL` \
                     (or point -f/--orbconfig or ORBCONFIG at an existing one)"
                        .to_owned(),
                ));
            }
            Err(e) => return Err(config_err(format!("cannot read it: {e}"))),
        };
        if !meta.is_file() {
            return Err(config_err("not a regular file".to_owned()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let _ = writeln!(
                warnings,
                "WARNING: orb config {} is readable by other users (mode {mode:03o}); it holds the \
                 masterkey and the repository key. Run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
        let text = Zeroizing::new(
            fs::read_to_string(path).map_err(|e| config_err(format!("cannot read it: {e}")))?,
        );
        let cfg: OrbConfig = serde_saphyr::from_str(&text).map_err(|e| {
            // The plain message only: the snippet form would echo config lines, i.e. secrets.
            let plain = e.without_snippet().to_string();
            let plain = plain.lines().next().unwrap_or_default();
            match e.location() {
                Some(loc) => {
                    let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
                    RepoError::ConfigSyntax {
                        path: path.to_owned(),
                        line: loc.line(),
                        column: loc.column(),
                        message: plain.strip_suffix(&suffix).unwrap_or(plain).to_owned(),
                    }
                }
                None => config_err(plain.to_owned()),
            }
        })?;
        cfg.validate().map_err(config_err)?;
        Ok(cfg)
    }

    /// Writes the config atomically with mode 0600 (the directory 0700 when created): the
    /// content goes to a fresh 0600 temp file next to it, is synced, then renamed over.
    pub fn save(&self, path: &Path) -> Result<(), RepoError> {
        let config_err = |reason: String| RepoError::Config {
            path: path.to_owned(),
            reason,
        };
        self.validate().map_err(config_err)?;
        let text = Zeroizing::new(
            serde_saphyr::to_string(self)
                .map_err(|e| config_err(format!("cannot serialize: {e}")))?,
        );
        write_private(path, text.as_bytes()).map_err(config_err)?;
        Ok(())
    }

    /// Where a new masterkey is staged for the Orbiter that runs with the config at `path`:
    /// `orbctl configure` writes it before it pushes a rotation, and that Orbiter adopts it
    /// (into its config) once the repository's keyring no longer opens with the old one.
    pub fn staged_masterkey_path(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".next-masterkey");
        path.with_file_name(name)
    }

    /// The staged masterkey beside the config at `path`, if any.
    pub fn read_staged_masterkey(path: &Path) -> Result<Option<Redacted>, RepoError> {
        let staged = Self::staged_masterkey_path(path);
        match fs::read_to_string(&staged) {
            Ok(t) => Ok(Some(Redacted(Zeroizing::new(t.trim().to_owned())))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RepoError::Config {
                path: staged,
                reason: format!("cannot read it: {e}"),
            }),
        }
    }

    /// Stages `masterkey` beside the config at `path` (0600, atomically).
    pub fn stage_masterkey(path: &Path, masterkey: &str) -> Result<(), RepoError> {
        let staged = Self::staged_masterkey_path(path);
        write_private(&staged, masterkey.as_bytes()).map_err(|reason| RepoError::Config {
            path: staged,
            reason,
        })
    }

    /// A stable, file-name-safe id for the Orb, derived from its URL: scheme, user info and
    /// `.git` removed, runs of non-alphanumerics turned into `-`, lowercase
    /// (`ssh://root@127.0.0.1:2222/srv/orb.git` → `127-0-0-1-2222-srv-orb`).
    pub fn orb_id(&self) -> String {
        orb_id(&self.url)
    }

    fn validate(&self) -> Result<(), String> {
        if self.url.trim().is_empty() {
            return Err(
                "field `url` is empty; set it with `orbctl configure --repourl URL`".to_owned(),
            );
        }
        let url = crate::url::parse(&self.url).map_err(|e| format!("field `url`: {e}"))?;
        if self.masterkey.expose().is_empty() {
            return Err("field `masterkey` is empty".to_owned());
        }
        if matches!(url, crate::url::RepoUrl::Ssh { .. })
            && self
                .repokey
                .as_ref()
                .is_none_or(|k| k.expose().trim().is_empty())
        {
            return Err("field `repokey` is missing: ssh URLs need a deploy key \
                        (orbctl configure --repokey-file KEY)"
                .to_owned());
        }
        Ok(())
    }
}

pub(crate) fn orb_id(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    let mut id = String::with_capacity(rest.len());
    for c in rest.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    let id = id.trim_matches('-');
    if id.is_empty() {
        "orb".to_owned()
    } else {
        id.to_owned()
    }
}

fn expand_tilde(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home_dir().join(rest),
        Err(_) => p.to_owned(),
    }
}

/// `$HOME`, else the home directory in the password database.
pub(crate) fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    // SAFETY: getpwuid returns null or a pointer to static storage; we copy at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_dir.is_null() {
            let dir = std::ffi::CStr::from_ptr((*pw).pw_dir);
            return PathBuf::from(std::ffi::OsStr::from_encoded_bytes_unchecked(
                dir.to_bytes(),
            ));
        }
    }
    PathBuf::from("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACD=\n-----END OPENSSH PRIVATE KEY-----\n";

    fn sample() -> OrbConfig {
        OrbConfig {
            url: "ssh://root@127.0.0.1:2222/srv/orb.git".to_owned(),
            repokey: Some(Redacted::from(KEY.to_owned())),
            masterkey: Redacted::from("m4sterkey-very-secret".to_owned()),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn save_writes_0600_in_0700_dir_and_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("new/.orb/config");
        sample().save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let mut warn = Vec::new();
        let back = OrbConfig::load_with_warnings(&path, &mut warn).unwrap();
        assert!(warn.is_empty(), "{}", String::from_utf8_lossy(&warn));
        assert_eq!(back.url, sample().url);
        assert_eq!(back.repokey.unwrap().expose(), KEY);
        assert_eq!(back.masterkey.expose(), "m4sterkey-very-secret");
        // Saving again over an existing (even world-readable) file leaves it 0600.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        sample().save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        // Only the config is left in the directory (no temp files).
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn readable_by_others_warns_but_loads() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config");
        sample().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let mut warn = Vec::new();
        let cfg = OrbConfig::load_with_warnings(&path, &mut warn).unwrap();
        assert_eq!(cfg.masterkey.expose(), "m4sterkey-very-secret");
        let warn = String::from_utf8(warn).unwrap();
        assert!(warn.starts_with("WARNING:"), "{warn}");
        assert!(warn.contains("chmod 600"), "{warn}");
        assert!(warn.contains(&path.display().to_string()), "{warn}");
        assert!(warn.contains("640"), "{warn}");
    }

    #[test]
    fn missing_file_names_path_and_hints_configure() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nope");
        let err = OrbConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("orbctl configure --repourl"), "{err}");
    }

    #[test]
    fn yaml_errors_name_path_line_col_and_hide_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config");
        let cases = [
            (
                "url: /srv/orb\nmasterkey: topsecretvalue\nbogus: 1\n",
                ":3:1: unknown field `bogus`",
            ),
            (
                "url: /srv/orb\nmasterkey: topsecretvalue\nrepokey: [1, 2\n",
                ":3:10: ",
            ),
            (
                "url: /srv/orb\nmasterkey:\n  nested: topsecretvalue\n",
                ":3:3: ",
            ),
        ];
        for (text, place) in cases {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = OrbConfig::load(&path).unwrap_err().to_string();
            let prefix = format!("{}{place}", path.display());
            assert!(err.contains(&prefix), "{text:?}: {err}");
            assert!(!err.contains("topsecretvalue"), "{text:?}: {err}");
        }
    }

    #[test]
    fn invalid_content_is_rejected_with_field_name() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config");
        for (text, needle) in [
            ("url: ssh://git@h/r\nmasterkey: k\n", "repokey"),
            ("url: /srv/orb\nmasterkey: ''\n", "masterkey"),
            ("url: http://h/r\nmasterkey: k\n", "url"),
            ("masterkey: k\n", "url"),
        ] {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = OrbConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }

    #[test]
    fn debug_hides_secrets_and_url_tokens() {
        let mut cfg = sample();
        cfg.url = "https://bob:tok3n@example.org/orb.git".to_owned();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("tok3n") && !dbg.contains("m4sterkey") && !dbg.contains("OPENSSH"));
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn orb_ids() {
        for (url, id) in [
            (
                "ssh://root@127.0.0.1:2222/srv/orb.git",
                "127-0-0-1-2222-srv-orb",
            ),
            ("git@github.com:me/my-orb.git", "github-com-me-my-orb"),
            (
                "https://bob:tok@Example.org/Me/Orb.git/",
                "example-org-me-orb",
            ),
            ("file:///tmp/x/orb", "tmp-x-orb"),
            ("/srv/orb.git", "srv-orb"),
            ("", "orb"),
        ] {
            assert_eq!(orb_id(url), id, "{url}");
        }
    }

    #[test]
    fn resolve_path_prefers_flag() {
        let p = OrbConfig::resolve_path(Some(Path::new("/etc/orb.yml")));
        assert_eq!(p, PathBuf::from("/etc/orb.yml"));
        let p = OrbConfig::resolve_path(Some(Path::new("~/x")));
        assert!(p.ends_with("x") && p.is_absolute(), "{}", p.display());
    }
}

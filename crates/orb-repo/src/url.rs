//! Parsing the repository URL of an orb config into the transports we support.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::RepoError;
use crate::redact::redact_url_credentials;

/// Where an Orb repository lives and how git reaches it.
#[derive(Clone, PartialEq, Eq)]
pub enum RepoUrl {
    /// `ssh://[user@]host[:port]/path` or scp-like `[user@]host:path` (path relative to the
    /// login's home unless it starts with `/`).
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        path: String,
    },
    /// `file:///path`, `/abs/path`, `./rel/path`: a repository on this machine.
    File(PathBuf),
    /// `https://[user[:token]@]host/path`, kept verbatim (it may carry a token).
    Https(String),
}

/// Parses a repository URL. Rejects forms git would misread as options (`-oProxyCommand…`),
/// passwords in ssh URLs, and transports without encryption (`http://`, `git://`).
pub fn parse(url: &str) -> Result<RepoUrl, RepoError> {
    let fail = |reason: &str| RepoError::Url {
        url: redact_url_credentials(url),
        reason: reason.to_owned(),
    };
    if url.is_empty() {
        return Err(fail("it is empty"));
    }
    if url.trim() != url {
        return Err(fail("it has leading or trailing whitespace"));
    }
    if url.chars().any(char::is_control) {
        return Err(fail("it contains control characters"));
    }
    if let Some(rest) = strip_prefix_ci(url, "ssh://")
        .or_else(|| strip_prefix_ci(url, "git+ssh://"))
        .or_else(|| strip_prefix_ci(url, "ssh+git://"))
    {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => return Err(fail("the repository path after the host is missing")),
        };
        if path.len() < 2 {
            return Err(fail("the repository path after the host is missing"));
        }
        let (user, hostport) = split_user(authority).map_err(|r| fail(&r))?;
        let (host, port) = split_host_port(hostport).map_err(|r| fail(&r))?;
        // `ssh://host/~/repo` means home-relative, like scp-like `host:repo`.
        let path = path.strip_prefix("/~/").unwrap_or(path).to_owned();
        return Ok(RepoUrl::Ssh {
            user,
            host,
            port,
            path,
        });
    }
    if let Some(rest) = strip_prefix_ci(url, "file://") {
        let path = if rest.starts_with('/') {
            rest
        } else if let Some(p) = rest.strip_prefix("localhost") {
            p
        } else {
            return Err(fail(
                "file:// URLs must name a local absolute path (file:///path)",
            ));
        };
        if path.len() < 2 {
            return Err(fail("the path is missing"));
        }
        return Ok(RepoUrl::File(PathBuf::from(path)));
    }
    if let Some(rest) = strip_prefix_ci(url, "https://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let (_, hostport) = split_https_userinfo(authority);
        split_host_port(hostport).map_err(|r| fail(&r))?;
        return Ok(RepoUrl::Https(url.to_owned()));
    }
    if let Some(i) = url.find("://") {
        let scheme = &url[..i];
        return Err(fail(&format!(
            "the {scheme}:// transport is not supported (use ssh or https: the repository holds \
             the desired state and must not travel unencrypted)"
        )));
    }
    if url.starts_with('/') || url.starts_with("./") || url.starts_with("../") || url == "." {
        return Ok(RepoUrl::File(PathBuf::from(url)));
    }
    // git's rule: a colon before any slash makes it scp-like ssh.
    let colon = url.find(':');
    let slash = url.find('/');
    if let Some(c) = colon
        && slash.is_none_or(|s| c < s)
    {
        let (authority, path) = (&url[..c], &url[c + 1..]);
        if path.is_empty() {
            return Err(fail("the repository path after ':' is missing"));
        }
        if path.starts_with('-') {
            return Err(fail("a repository path may not start with '-'"));
        }
        let (user, host) = split_user(authority).map_err(|r| fail(&r))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        check_host(host).map_err(|r| fail(&r))?;
        return Ok(RepoUrl::Ssh {
            user,
            host: host.to_owned(),
            port: None,
            path: path.to_owned(),
        });
    }
    if url.starts_with('-') {
        return Err(fail("a path may not start with '-' (write ./-name)"));
    }
    Ok(RepoUrl::File(PathBuf::from(url)))
}

impl RepoUrl {
    /// The URL handed to git: credentials removed (they travel in the environment instead).
    pub(crate) fn git_url(&self) -> String {
        match self {
            RepoUrl::Ssh {
                user,
                host,
                port,
                path,
            } => {
                let user = user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                match (port, path.starts_with('/')) {
                    (Some(p), true) => format!("ssh://{user}{host}:{p}{path}"),
                    (None, true) => format!("ssh://{user}{host}{path}"),
                    // Home-relative: scp-like form, exactly what people type for git.
                    (None, false) => format!("{user}{host}:{path}"),
                    (Some(p), false) => format!("ssh://{user}{host}:{p}/~/{path}"),
                }
            }
            RepoUrl::File(p) => p.display().to_string(),
            RepoUrl::Https(url) => {
                let rest = &url["https://".len()..];
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let (_, hostport) = split_https_userinfo(authority);
                format!("https://{hostport}{path}")
            }
        }
    }

    /// For https URLs carrying `user:token@`: the user name and the token.
    pub(crate) fn https_credentials(&self) -> Option<(String, Zeroizing<String>)> {
        let RepoUrl::Https(url) = self else {
            return None;
        };
        let authority = url["https://".len()..].split('/').next()?;
        let (userinfo, _) = split_https_userinfo(authority);
        let (user, token) = userinfo?.split_once(':')?;
        Some((user.to_owned(), Zeroizing::new(token.to_owned())))
    }

    /// `https://host[:port]/` — scope for credentials sent in HTTP headers.
    pub(crate) fn https_origin(&self) -> Option<String> {
        let RepoUrl::Https(_) = self else { return None };
        let git = self.git_url();
        let rest = &git["https://".len()..];
        Some(format!(
            "https://{}/",
            rest.split('/').next().unwrap_or_default()
        ))
    }

    /// The user name in an https URL (without token), if any.
    pub(crate) fn https_user(&self) -> Option<String> {
        let RepoUrl::Https(url) = self else {
            return None;
        };
        let authority = url["https://".len()..].split('/').next()?;
        let (userinfo, _) = split_https_userinfo(authority);
        Some(userinfo?.split(':').next()?.to_owned())
    }
}

/// Shows the URL without credentials.
impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.git_url())
    }
}

/// Never prints tokens.
impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({})", redact_url_credentials(&self.to_string()))
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn split_https_userinfo(authority: &str) -> (Option<&str>, &str) {
    match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    }
}

fn split_user(authority: &str) -> Result<(Option<String>, &str), String> {
    let Some(at) = authority.rfind('@') else {
        return Ok((None, authority));
    };
    let (user, host) = (&authority[..at], &authority[at + 1..]);
    if user.contains(':') {
        return Err(
            "ssh URLs take no password; put the deploy key in the orb config (repokey)".to_owned(),
        );
    }
    if user.is_empty() || user.starts_with('-') {
        return Err(format!("the user name {user:?} is not valid"));
    }
    if user
        .chars()
        .any(|c| c.is_whitespace() || "@/\\'\"`$;&|<>".contains(c))
    {
        return Err(format!(
            "the user name {user:?} contains characters ssh cannot take"
        ));
    }
    Ok((Some(user.to_owned()), host))
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("the IPv6 address misses its closing ']'".to_owned());
        };
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after the IPv6 address")),
        };
        (&rest[..end], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    check_host(host)?;
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("the port {p:?} is not a number from 1 to 65535")),
        },
    };
    Ok((host.to_owned(), port))
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is missing".to_owned());
    }
    if host.starts_with('-') {
        return Err(format!("the host {host:?} may not start with '-'"));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_:%".contains(c))
    {
        return Err(format!(
            "the host {host:?} contains characters a host name cannot have"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>, path: &str) -> RepoUrl {
        RepoUrl::Ssh {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        }
    }

    #[test]
    fn ssh_urls() {
        assert_eq!(
            parse("ssh://root@127.0.0.1:2222/srv/orb.git").unwrap(),
            ssh(Some("root"), "127.0.0.1", Some(2222), "/srv/orb.git")
        );
        assert_eq!(
            parse("ssh://git@example.org/me/orb").unwrap(),
            ssh(Some("git"), "example.org", None, "/me/orb")
        );
        assert_eq!(
            parse("ssh://[::1]:22/r").unwrap(),
            ssh(None, "::1", Some(22), "/r")
        );
        assert_eq!(
            parse("ssh://h/~/orb.git").unwrap(),
            ssh(None, "h", None, "orb.git")
        );
        assert_eq!(parse("git+ssh://h/r").unwrap(), ssh(None, "h", None, "/r"));
    }

    #[test]
    fn scp_like() {
        assert_eq!(
            parse("git@github.com:me/my-orb.git").unwrap(),
            ssh(Some("git"), "github.com", None, "me/my-orb.git")
        );
        assert_eq!(
            parse("host:/abs/orb").unwrap(),
            ssh(None, "host", None, "/abs/orb")
        );
    }

    #[test]
    fn local_paths() {
        assert_eq!(
            parse("file:///srv/orb.git").unwrap(),
            RepoUrl::File("/srv/orb.git".into())
        );
        assert_eq!(
            parse("file://localhost/srv/o").unwrap(),
            RepoUrl::File("/srv/o".into())
        );
        assert_eq!(parse("/srv/orb").unwrap(), RepoUrl::File("/srv/orb".into()));
        assert_eq!(parse("./orb").unwrap(), RepoUrl::File("./orb".into()));
        assert_eq!(parse("../o/r").unwrap(), RepoUrl::File("../o/r".into()));
        // A slash before the colon: a path, as git reads it.
        assert_eq!(parse("./a:b").unwrap(), RepoUrl::File("./a:b".into()));
    }

    #[test]
    fn https_keeps_url_and_separates_credentials() {
        let u = parse("https://bob:tok3n@git.example.org:8443/me/orb.git").unwrap();
        assert_eq!(
            u,
            RepoUrl::Https("https://bob:tok3n@git.example.org:8443/me/orb.git".into())
        );
        assert_eq!(u.git_url(), "https://git.example.org:8443/me/orb.git");
        let (user, token) = u.https_credentials().unwrap();
        assert_eq!((user.as_str(), token.as_str()), ("bob", "tok3n"));
        assert_eq!(u.https_origin().unwrap(), "https://git.example.org:8443/");
        assert!(!format!("{u} {u:?}").contains("tok3n"));
    }

    #[test]
    fn git_url_round_trip_for_ssh() {
        for url in [
            "ssh://root@127.0.0.1:2222/srv/orb.git",
            "ssh://git@example.org/me/orb",
        ] {
            assert_eq!(parse(url).unwrap().git_url(), url);
        }
        assert_eq!(
            parse("git@github.com:me/o.git").unwrap().git_url(),
            "git@github.com:me/o.git"
        );
        assert_eq!(
            parse("ssh://u@h:2222/~/o.git").unwrap().git_url(),
            "ssh://u@h:2222/~/o.git"
        );
    }

    #[test]
    fn rejects_bad_urls_with_reason() {
        let cases = [
            ("", "empty"),
            (" /x", "whitespace"),
            ("ssh://-oProxyCommand=x/y", "may not start with '-'"),
            ("-oProxyCommand=x:y", "may not start with '-'"),
            ("ssh://u:pw@h/r", "no password"),
            ("ssh://h", "path after the host is missing"),
            ("ssh://h:99999/r", "port"),
            ("ssh://h:0/r", "port"),
            ("http://h/r", "http:// transport is not supported"),
            ("git://h/r", "git:// transport"),
            ("file://other/r", "local absolute path"),
            ("host:", "path after ':' is missing"),
            ("host:-x", "may not start with '-'"),
            ("ssh://h o/r", "contains characters"),
            ("https:///r", "host is missing"),
        ];
        for (url, needle) in cases {
            let err = parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url:?}: {err}");
        }
    }

    #[test]
    fn errors_do_not_leak_https_tokens() {
        let err = parse("https://bob:tok3n@/r").unwrap_err().to_string();
        assert!(!err.contains("tok3n"), "{err}");
    }
}

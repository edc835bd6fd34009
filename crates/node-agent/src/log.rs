//! Minimal logging to stderr. Under systemd (`$JOURNAL_STREAM` set) lines carry `<N>` syslog
//! priority prefixes, which journald turns into real priorities; elsewhere a word prefix.
//! Callers never pass secrets (file contents are reported as hashes).

fn emit(prio: u8, word: &str, msg: &str) {
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        eprintln!("<{prio}>{msg}");
    } else {
        eprintln!("node-agent {word}: {msg}");
    }
}

pub fn error(msg: &str) {
    emit(3, "error", msg);
}

pub fn warn(msg: &str) {
    emit(4, "warning", msg);
}

pub fn info(msg: &str) {
    emit(6, "info", msg);
}

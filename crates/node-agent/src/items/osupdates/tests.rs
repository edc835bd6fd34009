use super::*;
use crate::host::{scratch_host, scripted};
use crate::items::{PassCtx, execute};

const REQ: &str = "2026-01-02T03:00:00Z";

fn req() -> i64 {
    parse_rfc3339(REQ).unwrap()
}

fn item(updates: UpdateSet) -> OsUpdates {
    OsUpdates {
        updates,
        requested_at: REQ.into(),
    }
}

fn observed(record: Option<Record>, now: i64) -> Observed {
    Observed {
        requested_at: req(),
        updates: UpdateSet::Security,
        now,
        record,
        covered_by: None,
    }
}

fn record(attempts: u32, outcome: Outcome) -> Record {
    Record {
        requested_at: req(),
        updates: UpdateSet::Security,
        attempts,
        last_attempt: req() + 10,
        outcome,
    }
}

#[test]
fn plans_once_per_request_and_retries_a_few_times() {
    let p = plan(&observed(None, req() + 5));
    assert!(matches!(
        p.actions[0].op,
        Op::OsUpgrade { updates: UpdateSet::Security, requested_at } if requested_at == req()
    ));
    assert_eq!(
        p.actions[0].to_string(),
        "upgrade security packages (request of 2026-01-02T03:00:00Z): requested at 2026-01-02T03:00:00Z"
    );
    // Scheduled: nothing yet, not in sync; the drift pass after the time acts.
    let future = observed(None, req() - 60);
    let p = plan(&future);
    assert!(p.actions.is_empty() && !p.in_sync && !p.retry && p.error.is_none());
    assert_eq!(future.to_string(), "scheduled for 2026-01-02T03:00:00Z");
    // Fulfilled: in sync for good.
    let done = observed(
        Some(record(
            1,
            Outcome::Done("upgraded 1 package (security): a".into()),
        )),
        req() + 99,
    );
    let p = plan(&done);
    assert!(p.actions.is_empty() && p.in_sync);
    assert_eq!(done.to_string(), "upgraded 1 package (security): a");
    // Interrupted (the agent died during the attempt): again, right away.
    let p = plan(&observed(Some(record(1, Outcome::Started)), req() + 20));
    assert_eq!(p.actions[0].reason, "attempt 1 was interrupted");
    // Failed: again after RETRY_AFTER, at most MAX_ATTEMPTS in all.
    let failed = |attempts, now| {
        observed(
            Some(record(attempts, Outcome::Failed("E: no network".into()))),
            now,
        )
    };
    let p = plan(&failed(1, req() + 20));
    assert!(p.actions.is_empty() && !p.in_sync && !p.retry);
    assert_eq!(
        p.error.as_deref(),
        Some("upgrade security packages (request of 2026-01-02T03:00:00Z) failed: E: no network")
    );
    assert!(
        failed(1, req())
            .to_string()
            .starts_with("failed (attempt 1 of 3; next after")
    );
    assert_eq!(
        plan(&failed(2, req() + 10 + RETRY_AFTER)).actions[0].reason,
        "attempt 2 failed: E: no network"
    );
    let given_up = failed(MAX_ATTEMPTS, req() + 10 * RETRY_AFTER);
    let p = plan(&given_up);
    assert!(p.actions.is_empty() && !p.in_sync && !p.retry);
    assert!(
        given_up.to_string().contains("new requested_at"),
        "{given_up}"
    );
    // An older request than one already fulfilled is covered by it.
    let covered = Observed {
        covered_by: Some(Record {
            requested_at: req() + 3600,
            updates: UpdateSet::All,
            ..record(1, Outcome::Done("nothing to upgrade (all)".into()))
        }),
        ..observed(None, req() + 7200)
    };
    assert!(plan(&covered).in_sync);
    assert!(
        covered
            .to_string()
            .starts_with("covered by the upgrade requested at")
    );
    // Also after failed attempts of its own.
    let covered = Observed {
        record: Some(record(1, Outcome::Failed("E: no network".into()))),
        ..covered
    };
    assert!(plan(&covered).in_sync && plan(&covered).error.is_none());
    assert!(
        covered
            .to_string()
            .starts_with("covered by the upgrade requested at")
    );
}

const OS_DEBIAN: &[u8] = b"ID=debian\nVERSION_ID=\"12\"\n";
const SEC_LIST: &[u8] =
    b"deb http://deb.debian.org/debian bookworm main\ndeb http://security.debian.org/debian-security bookworm-security main\n";
const SIM: &str = "Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])\nInst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])\n";

fn run_op(h: &Host, updates: UpdateSet) -> Result<()> {
    execute(
        h,
        &Op::OsUpgrade {
            updates,
            requested_at: req(),
        },
        &mut PassCtx::default(),
    )
}

#[test]
fn security_upgrade_uses_only_security_sources_and_is_recorded_once() {
    let (_t, h) = scratch_host(&[
        ("/etc/os-release", OS_DEBIAN, 0o644),
        ("/etc/apt/sources.list", SEC_LIST, 0o644),
    ]);
    let (fake, calls) = scripted(&[
        ("apt-get -s", 0, SIM),
        (" update", 0, ""),
        (" upgrade", 0, "Setting up libssl3\n"),
    ]);
    let h = h.fake_commands(fake);
    let u = item(UpdateSet::Security);
    let before = observe(&h, &u).unwrap();
    assert_eq!(plan(&before).actions.len(), 1);
    run_op(&h, UpdateSet::Security).unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let list = h.state_path("osupdates-apt/sources.list");
    for c in &calls {
        assert!(
            c.contains(&format!("Dir::Etc::SourceList={}", list.display()))
                && c.contains("APT::Get::List-Cleanup=0"),
            "{c}"
        );
    }
    assert!(calls[0].ends_with(" update") && calls[1].starts_with("apt-get -s"));
    assert!(
        calls[2].contains("Dpkg::Options::=--force-confold")
            && calls[2].ends_with(" upgrade")
            && !calls[2].contains("allow-change-held"),
        "{}",
        calls[2]
    );
    assert!(
        !h.state_path("osupdates-apt").exists(),
        "temporary sources removed"
    );
    let after = observe(&h, &u).unwrap();
    assert_eq!(
        after.to_string(),
        "upgraded 2 packages (security): libssl3, openssl"
    );
    assert!(plan(&after).in_sync);
    // A restarted agent (a new Host on the same state directory) does not repeat it.
    let again = Host::with_root(h.root(), h.state_dir());
    assert!(plan(&observe(&again, &u).unwrap()).in_sync);
}

#[test]
fn without_security_sources_nothing_is_upgraded() {
    let (_t, h) = scratch_host(&[
        ("/etc/os-release", OS_DEBIAN, 0o644),
        (
            "/etc/apt/sources.list",
            b"deb http://deb.debian.org/debian bookworm main\n",
            0o644,
        ),
    ]);
    let (fake, calls) = scripted(&[]);
    let h = h.fake_commands(fake);
    run_op(&h, UpdateSet::Security).unwrap();
    assert!(calls.lock().unwrap().is_empty());
    let o = observe(&h, &item(UpdateSet::Security)).unwrap();
    assert_eq!(o.to_string(), "no security sources: nothing upgraded");
    assert!(plan(&o).in_sync);
}

#[test]
fn a_failed_upgrade_is_recorded_with_its_error_and_an_interrupted_dpkg_is_repaired() {
    let (_t, h) = scratch_host(&[("/etc/os-release", OS_DEBIAN, 0o644)]);
    let (fake, _) = scripted(&[(
        " update",
        100,
        "E: Failed to fetch http://deb.debian.org/\n",
    )]);
    let h = h.fake_commands(fake);
    let e = run_op(&h, UpdateSet::All).unwrap_err();
    assert!(e.message().contains("exited with status 100"), "{e}");
    let o = observe(&h, &item(UpdateSet::All)).unwrap();
    let Some(Record {
        attempts: 1,
        outcome: Outcome::Failed(text),
        ..
    }) = &o.record
    else {
        panic!("{o:?}")
    };
    assert!(text.contains("Failed to fetch"));
    assert!(!plan(&o).in_sync);

    let (_t, h) = scratch_host(&[("/etc/os-release", OS_DEBIAN, 0o644)]);
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = interrupted.clone();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    let h = h.fake_commands(move |cmd| {
        let line = cmd.to_string();
        seen.lock().unwrap().push(line.clone());
        let (code, stderr) = if line.contains("dpkg --configure -a") {
            flag.store(false, std::sync::atomic::Ordering::Relaxed);
            (0, "")
        } else if line.ends_with(" upgrade")
            && !line.starts_with("apt-get -s")
            && flag.load(std::sync::atomic::Ordering::Relaxed)
        {
            (
                100,
                "E: dpkg was interrupted, you must manually run 'dpkg --configure -a'",
            )
        } else {
            (0, "")
        };
        Ok(crate::exec::Output {
            code: Some(code),
            stdout: if line.starts_with("apt-get -s") {
                SIM.into()
            } else {
                String::new()
            },
            stderr: stderr.into(),
        })
    });
    run_op(&h, UpdateSet::All).unwrap();
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with(" upgrade"))
            .count(),
        3,
        "simulation, interrupted upgrade, upgrade: {:?}",
        log.lock().unwrap()
    );
    assert!(plan(&observe(&h, &item(UpdateSet::All)).unwrap()).in_sync);
}

#[test]
fn dnf_upgrades_security_and_reports_names() {
    let (_t, h) = scratch_host(&[(
        "/etc/os-release",
        b"ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
        0o644,
    )]);
    let (fake, calls) = scripted(&[(
        "upgrade -y --security",
        0,
        "Upgraded:\n  openssl-1:3.0.7-25.el9_3.x86_64\nComplete!\n",
    )]);
    let h = h.fake_commands(fake);
    // No /usr/bin/dnf under the fake root and no yum either: dnf.
    run_op(&h, UpdateSet::Security).unwrap();
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        ["dnf upgrade -y --security"]
    );
    assert_eq!(
        observe(&h, &item(UpdateSet::Security)).unwrap().to_string(),
        "upgraded 1 package (security): openssl"
    );
}

#[test]
fn the_record_keeps_the_newest_requests() {
    let (_t, h) = scratch_host(&[]);
    for i in 0..20 {
        store(
            &h,
            load(&h).unwrap(),
            Record {
                requested_at: i,
                ..record(1, Outcome::Done("x".into()))
            },
        )
        .unwrap();
    }
    let records = load(&h).unwrap();
    assert_eq!(records.len(), KEEP);
    assert_eq!(records[0].requested_at, 20 - KEEP as i64);
    std::fs::write(h.state_path(STATE), "{").unwrap();
    assert!(load(&h).unwrap_err().message().contains("remove it"));
}

#[test]
fn in_a_pass_a_failure_stands_as_the_items_error_until_the_retry() {
    let (_t, h) = scratch_host(&[("/etc/os-release", OS_DEBIAN, 0o644)]);
    let (fake, calls) = scripted(&[(" update", 100, "E: Failed to fetch\n")]);
    let h = h.fake_commands(fake);
    let d = node_protocol::parse_desired(
        &format!("kind: NodeDesired\nversion: v1\ngeneration: 1\nchangesallowed: true\nitems:\n  - osupdates: {{updates: all, requested_at: \"{REQ}\"}}\n"),
        "d.yml",
    )
    .unwrap();
    let first = crate::pass::run_pass(&h, &d, true, &|| false);
    let item = &first.items[0];
    let error = item.error.clone().unwrap();
    assert!(
        error
            .starts_with("upgrade all packages (request of 2026-01-02T03:00:00Z) failed: `apt-get")
            && error.contains("Failed to fetch"),
        "{error}"
    );
    assert!(first.upgraded && !item.in_sync && !first.wants_retry());
    assert!(
        item.observed
            .starts_with("failed (attempt 1 of 3; next after"),
        "{}",
        item.observed
    );
    let second = crate::pass::run_pass(&h, &d, true, &|| false);
    assert!(second.actions().is_empty() && !second.upgraded);
    assert_eq!(second.items[0].error.as_deref(), Some(error.as_str()));
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "not tried again before RETRY_AFTER"
    );
}

//! End to end on real machines (root): a rollout on a pool of five Local machines running a
//! small HTTP service. A commit whose service cannot start reaches one canary, which fails its
//! health gate; the rollout stops with the reason committed, the canary goes back and answers
//! again, the other four never see the change. The fix then rolls out one machine at a time,
//! each healthy for the settle window before the next; a slow starter, healthy 20 s after its
//! change, passes a 30 s settle window. Prints the figures `bench/rollout.sh`
//! reports (`name=value`).

mod common;

use common::e2e::*;
use common::local_orb::*;
use common::*;
use orb_machines::{Group, Host};
use orbiter::rollout::{Phase, RolloutRecord, RolloutState};
use orbiter::state;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const POOL: &str = "loc.web";
const RECORD: &str = "orbiter/rollouts/loc.web.yml";

/// How the pool rolls: the settle window and how many machines change at once.
struct Rolling {
    settle: &'static str,
    at_once: &'static str,
}

const ONE_BY_ONE: Rolling = Rolling {
    settle: "5s",
    at_once: "1",
};

/// The Orb: pool `web` of five, the app answering `version` on port 8080, checked by a health
/// item. A version starting with `bad` dies at start; one starting with `slow` listens only
/// after 20 s.
fn orb_yaml(group: &str, version: &str, r: &Rolling) -> String {
    format!(
        r#"kind: Orb
version: v1
providers:
  loc:
    kind: LocalProvider
    version: v1
    spec:
      group: {group}
      pools:
        web:
          nodes: 5
rollout:
  default:
    settle: {settle}
    canary: {at_once}
    maxunavailable: "{at_once}"
    deadline: 3m
software:
  app:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [loc.web]
      items:
        - file:
            path: /usr/local/bin/app
            mode: "0755"
            content: |
              #!/usr/bin/perl
              use IO::Socket::INET;
              $SIG{{PIPE}} = 'IGNORE';
              my $v = "{version}";
              die "bad configuration\n" if $v =~ /^bad/;
              sleep 20 if $v =~ /^slow/;
              my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 16, ReuseAddr => 1) or die "listen: $!\n";
              while (my $c = $s->accept) {{ my $request = <$c>; print $c "HTTP/1.0 200 OK\r\n\r\n$v\n"; close $c; }}
        - unit:
            name: app.service
            content: |
              [Unit]
              Description=rollout demo app
              [Service]
              ExecStart=/usr/local/bin/app
              [Install]
              WantedBy=multi-user.target
            enabled: true
            active: true
            restart_on: [/usr/local/bin/app]
        - health: {{name: app, http: "http://127.0.0.1:8080/", expect: 200, timeout: 2s}}
"#,
        settle = r.settle,
        at_once = r.at_once,
    )
}

/// What the app on `ip` answers, if it answers within a second.
fn answer(ip: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let addr = format!("{ip}:8080").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_owned())
}

fn record(repo: &Path) -> Option<RolloutRecord> {
    let text = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["show", &format!("HEAD:{RECORD}")])
        .output()
        .ok()
        .filter(|o| o.status.success())?
        .stdout;
    state::parse(&String::from_utf8_lossy(&text), RECORD).ok()
}

/// Every version of the pool's rollout record in the history, oldest first.
fn record_history(repo: &Path) -> Vec<RolloutRecord> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["rev-list", "--reverse", "HEAD", "--", RECORD])
        .lines()
        .filter_map(|c| state::parse(&git(&["show", &format!("{c}:{RECORD}")]), RECORD).ok())
        .collect()
}

/// Machines whose node-desired record ever carried `needle`.
fn touched_by(repo: &Path, keys: &[String], needle: &str) -> Vec<String> {
    keys.iter()
        .filter(|k| {
            let out = Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["log", "-p", "--", &format!("orbiter/nodes/{k}/desired.yml")])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).contains(needle)
        })
        .cloned()
        .collect()
}

/// On failure: the pool's rollout record and what a plan says now.
struct Dump<'a> {
    repo: &'a Path,
    person: &'a Person,
    bins: &'a Binaries,
}

impl Drop for Dump<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {RECORD}:\n{:#?}", record(self.repo));
            let plan = self
                .person
                .cmd(&["plan"])
                .env("ORBITER_NODE_AGENT", self.bins.node_agent())
                .output()
                .unwrap();
            eprintln!("--- plan:\n{}", String::from_utf8_lossy(&plan.stdout));
            let log = Command::new("git")
                .arg("-C")
                .arg(self.repo)
                .args(["log", "-3", "-p", "--stat"])
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&log.stdout);
            eprintln!("--- last commits:\n{}", &log[..log.len().min(6000)]);
        }
    }
}

#[test]
fn a_bad_canary_stops_and_goes_back_then_the_fix_rolls_in_waves() {
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let pid = std::process::id();
    let group = format!("ro{pid}");
    let (p, repo) = (Person::new(), orb_testsupport::bare_repo());
    let _cleanup = Cleanup {
        groups: vec![group.clone()],
        person: Some(p.home.path().to_owned()),
    };
    let bins = Binaries::snapshot();
    let _dump = Dump {
        repo: &repo.path,
        person: &p,
        bins: &bins,
    };
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, "v1", &ONE_BY_ONE),
        "The app, v1",
    );
    let listen = format!("127.0.0.1:{}", 20000 + (pid % 20000) as u16);
    let out = takeoff(&p, &bins, "900", &listen);
    assert!(
        out.status.success(),
        "takeoff failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let local = Group::attach(&host, &group).unwrap();
    let mut machines: Vec<(String, String)> = local
        .machines()
        .unwrap()
        .into_iter()
        .map(|m| (format!("loc.{}", m.id), m.ip.to_string()))
        .collect();
    machines.sort();
    assert_eq!(machines.len(), 5);
    let keys: Vec<String> = machines.iter().map(|(k, _)| k.clone()).collect();
    let answers = || -> Vec<Option<String>> { machines.iter().map(|(_, ip)| answer(ip)).collect() };
    wait_for("v1 answering everywhere", Duration::from_secs(120), || {
        answers().iter().all(|a| a.as_deref() == Some("v1"))
    });

    // The bad change: the canary fails, the rollout stops, the canary goes back.
    let started = Instant::now();
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, "bad-v2", &ONE_BY_ONE),
        "The app, v2",
    );
    wait_for("the rollout stopped", Duration::from_secs(300), || {
        record(&repo.path).is_some_and(|r| r.state == RolloutState::Stopped)
    });
    let rec = record(&repo.path).unwrap();
    let canary = &keys[0];
    let reason = rec.reason.clone().unwrap();
    assert!(reason.starts_with(&format!("{canary} failed:")), "{reason}");
    assert!(
        reason.contains("unit:app.service") || reason.contains("health:app: failing"),
        "{reason}"
    );
    assert_eq!(
        rec.machines[&orbiter::machine::MachineKey::parse(canary).unwrap()].phase,
        Phase::RolledBack
    );
    wait_for(
        "the canary answering v1 again",
        Duration::from_secs(120),
        || answer(&machines[0].1).as_deref() == Some("v1"),
    );
    let stop_after_bad_canary = started.elapsed().as_secs_f64();
    let status = p.ok(&["rollout", "status"]);
    assert!(
        status.contains(&format!("{POOL}: stopped")) && status.contains(canary),
        "{status}"
    );
    let now = answers();
    if now.iter().any(|a| a.as_deref() != Some("v1")) {
        for (k, _) in &machines {
            let m = local.machine(k.trim_start_matches("loc.")).unwrap();
            eprintln!(
                "--- {k}:\n{}",
                sh(
                    &m,
                    "systemctl status app.service --no-pager 2>&1 | tail -5; journalctl -u node-agent -n 15 --no-pager -o cat"
                )
            );
        }
        eprintln!("{:?}", record(&repo.path));
    }
    assert!(now.iter().all(|a| a.as_deref() == Some("v1")), "{now:?}");
    let touched = touched_by(&repo.path, &keys, "bad-v2");
    assert_eq!(
        touched,
        std::slice::from_ref(canary),
        "only the canary saw the bad change"
    );

    // The fix: a new rollout, waves of one, each healthy 5 s before the next.
    let fixed = Instant::now();
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, "v3", &ONE_BY_ONE),
        "The app, v3",
    );
    wait_for("v3 rolled out", Duration::from_secs(400), || {
        record(&repo.path)
            .is_some_and(|r| r.state == RolloutState::Done && r.revision != rec.revision)
    });
    let rollout_5 = fixed.elapsed().as_secs_f64();
    assert!(
        answers().iter().all(|a| a.as_deref() == Some("v3")),
        "{:?}",
        answers()
    );
    let history = record_history(&repo.path);
    let target = record(&repo.path).unwrap().revision;
    let of_fix: Vec<&RolloutRecord> = history.iter().filter(|r| r.revision == target).collect();
    assert!(of_fix.len() >= 5, "every wave committed: {}", of_fix.len());
    for r in &of_fix {
        let changing = r
            .machines
            .values()
            .filter(|m| m.revision == target && m.phase == Phase::Changing)
            .count();
        assert!(changing <= 1, "two machines changed at once: {r:?}");
    }
    assert_eq!(of_fix.last().unwrap().waves_done, 5);
    let json = p.ok(&["rollout", "status", POOL, "-o", "json"]);
    assert!(
        json.contains("\"state\": \"done\"") && !json.contains("encrypted"),
        "{json}"
    );

    // A slow starter: healthy only 20 s after its change, within a 30 s settle window.
    let at_once = Rolling {
        settle: "30s",
        at_once: "5",
    };
    let before = record(&repo.path).unwrap().revision;
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, "slow-v4", &at_once),
        "The app, v4",
    );
    wait_for("v4 rolled out", Duration::from_secs(300), || {
        record(&repo.path).is_some_and(|r| r.revision != before && r.state != RolloutState::Rolling)
    });
    let r = record(&repo.path).unwrap();
    assert_eq!(r.state, RolloutState::Done, "{:?}", r.reason);
    assert!(
        answers().iter().all(|a| a.as_deref() == Some("slow-v4")),
        "{:?}",
        answers()
    );
    let m = local.machine("web-3").unwrap();
    let log = sh(&m, "journalctl -u node-agent --no-pager -o cat");
    assert!(
        log.contains("health:app: failing"),
        "the check was red at first:\n{log}"
    );

    // Done: an idle Orbiter commits nothing.
    let idle = commit_count(&repo);
    std::thread::sleep(Duration::from_secs(15));
    assert_eq!(commit_count(&repo), idle, "idle iterations made commits");

    println!("rollout_5_machines_s={rollout_5:.1}");
    println!("stop_after_bad_canary_s={stop_after_bad_canary:.1}");
    println!("machines_touched_by_bad_change={}", touched.len());
}

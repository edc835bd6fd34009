//! A named group of machines: one bridge with its own /24, an apt repository and a git server
//! on the bridge address, and the machines plugged into it.

use crate::Error;
use crate::apt_repo;
use crate::apt_sources::Suite;
use crate::git_host::{self, GitHost};
use crate::host::Host;
use crate::lock::FileLock;
use crate::machine::{self, Machine, MachineInfo};
use crate::mounts;
use crate::names;
use crate::net;
use crate::procs;
use crate::provision::{self, Provision};
use crate::state::{GroupPaths, GroupRecord, MachineRecord, STATE_VERSION, read_json, write_json};
use crate::subnet;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// What `Group::up` creates.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: String,
    /// authorized_keys line for user `orbiter` on every machine.
    pub pubkey: String,
    /// Give machines CAP_NET_ADMIN (keepalived managing its own VIP).
    pub net_admin: bool,
}

/// First host number handed to machines (.1 is the bridge).
const FIRST_MACHINE_HOST: u8 = 10;
const LAST_MACHINE_HOST: u8 = 250;

#[derive(Clone, Debug)]
pub struct Group {
    host: Host,
    paths: GroupPaths,
    rec: GroupRecord,
}

fn paths_for(host: &Host, name: &str) -> GroupPaths {
    GroupPaths {
        root: host.groups_dir().join(name),
    }
}

/// A free TCP port on `ip` right now (the kernel picks it).
fn free_port(ip: Ipv4Addr) -> Result<u16, Error> {
    let l = std::net::TcpListener::bind((ip, 0))
        .map_err(Error::io("bind a port on", format!("{ip}")))?;
    Ok(l.local_addr()
        .map_err(Error::io("read the port of", format!("{ip}")))?
        .port())
}

impl Group {
    /// Creates the group: subnet, bridge, apt repository and its HTTP server. Builds the base
    /// image first when it is not cached. A name in use is an error.
    pub fn up(host: &Host, spec: &GroupSpec) -> Result<Group, Error> {
        names::check_group_name(&spec.name)?;
        provision::check_pubkey(&spec.pubkey)?;
        let base = host.base_image()?;
        let paths = paths_for(host, &spec.name);
        let global = FileLock::exclusive(&host.global_lock())?;
        if paths.root.exists() {
            return Err(Error::NameInUse {
                name: spec.name.clone(),
                state: paths.root.clone(),
            });
        }
        let mut used = subnet::host_networks()?;
        for other in host.group_names()? {
            if let Ok(r) = read_json::<GroupRecord>(&paths_for(host, &other).state_file()) {
                used.push(r.subnet);
            }
        }
        let net = subnet::pick(&used)?;
        let bridge = names::bridge_name(&spec.name);
        let rec = GroupRecord {
            version: STATE_VERSION,
            name: spec.name.clone(),
            subnet: net,
            bridge: bridge.clone(),
            bridge_ip: net.host(1),
            net_admin: spec.net_admin,
            pubkey: spec.pubkey.trim().to_string(),
            base_rootfs: base.rootfs(),
            apt_port: 0,
            git_port: None,
        };
        std::fs::create_dir_all(paths.machines()).map_err(Error::io("create", paths.machines()))?;
        write_json(&paths.state_file(), &rec)?;
        let mut group = Group {
            host: host.clone(),
            paths,
            rec,
        };
        let result = (|| {
            net::create_bridge(&bridge, group.rec.bridge_ip, net)?;
            // The subnet is now visible to other processes' route scan.
            drop(global);
            apt_repo::init_repo(&group.paths.repo())?;
            group.rec.apt_port = free_port(group.rec.bridge_ip)?;
            write_json(&group.paths.state_file(), &group.rec)?;
            apt_repo::start_http(
                &group.paths.repo(),
                group.rec.bridge_ip,
                group.rec.apt_port,
                &group.paths.http_pid(),
                &group.paths.http_log(),
                &group.marker(),
            )?;
            Ok(())
        })();
        match result {
            Ok(()) => Ok(group),
            Err(e) => {
                let _ = teardown(host, &spec.name);
                Err(e)
            }
        }
    }

    /// Re-opens an existing group from its state on disk (CLI, Orbiter restarts).
    pub fn attach(host: &Host, name: &str) -> Result<Group, Error> {
        names::check_group_name(name)?;
        let paths = paths_for(host, name);
        if !paths.state_file().exists() {
            return Err(Error::NoSuchGroup {
                name: name.to_string(),
                state: paths.root,
            });
        }
        let rec: GroupRecord = read_json(&paths.state_file())?;
        let group = Group {
            host: host.clone(),
            paths,
            rec,
        };
        // After a host reboot /run is empty anyway; this restarts the server if it was killed.
        if procs::owned_pid(&group.paths.http_pid(), &group.marker()).is_none()
            && net::link_exists(&group.rec.bridge)
        {
            apt_repo::start_http(
                &group.paths.repo(),
                group.rec.bridge_ip,
                group.rec.apt_port,
                &group.paths.http_pid(),
                &group.paths.http_log(),
                &group.marker(),
            )?;
        }
        Ok(group)
    }

    pub fn name(&self) -> &str {
        &self.rec.name
    }

    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.rec.bridge_ip
    }

    /// Name of the group's bridge interface.
    pub fn bridge(&self) -> &str {
        &self.rec.bridge
    }

    /// The group's state directory (every process, mount and file of the group is below it).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.paths.root
    }

    pub fn subnet(&self) -> subnet::Net4 {
        self.rec.subnet
    }

    /// `http://<bridge ip>:<port>/`, the machines' only apt source.
    pub fn apt_url(&self) -> String {
        format!("http://{}:{}/", self.rec.bridge_ip, self.rec.apt_port)
    }

    /// Creates, boots and waits for one machine (overlay, namespace, veth, static IP, hostname,
    /// user orbiter with the group's key).
    pub fn create_machine(&self, id: &str) -> Result<Machine, Error> {
        Ok(self.create_machines(&[id])?.remove(0))
    }

    /// Like `create_machine` for several ids, booting them in parallel. On any failure every
    /// machine created by this call is destroyed again.
    pub fn create_machines(&self, ids: &[&str]) -> Result<Vec<Machine>, Error> {
        let mut made: Vec<Machine> = Vec::new();
        let result = (|| {
            for id in ids {
                let m = self.prepare_machine(id)?;
                made.push(m.clone());
                m.launch()?;
            }
            for m in &made {
                m.wait_ready(Duration::from_secs(120))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                for m in &made {
                    let _ = machine::teardown(&self.rec.name, &m.paths);
                }
                Err(e)
            }
        }
    }

    /// State and files of a new machine, up to (not including) its boot.
    fn prepare_machine(&self, id: &str) -> Result<Machine, Error> {
        names::check_machine_id(id)?;
        let _lock = FileLock::exclusive(&self.paths.lock())?;
        let mpaths = self.paths.machine(id);
        if mpaths.root.exists() {
            return Err(Error::MachineExists {
                group: self.rec.name.clone(),
                id: id.to_string(),
            });
        }
        let taken: Vec<Ipv4Addr> = self.records()?.iter().map(|r| r.ip).collect();
        let ip = (FIRST_MACHINE_HOST..=LAST_MACHINE_HOST)
            .map(|n| self.rec.subnet.host(n))
            .find(|ip| !taken.contains(ip))
            .ok_or_else(|| Error::NoFreeAddress {
                group: self.rec.name.clone(),
                subnet: self.rec.subnet.to_string(),
            })?;
        let rec = MachineRecord {
            id: id.to_string(),
            hostname: id.to_string(),
            ip,
            netns: names::netns_name(&self.rec.name, id),
            veth: names::veth_name(&self.rec.name, id),
            nspawn_name: names::nspawn_name(&self.rec.name, id),
        };
        for d in [mpaths.upper(), mpaths.work(), mpaths.rootfs()] {
            std::fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
        }
        write_json(&mpaths.state_file(), &rec)?;
        let m = Machine {
            group: self.rec.clone(),
            paths: mpaths.clone(),
            rec,
        };
        let result = (|| {
            mounts::mount_overlay(
                &self.rec.base_rootfs,
                &mpaths.upper(),
                &mpaths.work(),
                &mpaths.rootfs(),
            )?;
            let apt_url = self.apt_url();
            let host_key = provision::provision(
                &mpaths.rootfs(),
                &Provision {
                    hostname: &m.rec.hostname,
                    pubkey: &self.rec.pubkey,
                    bridge_ip: self.rec.bridge_ip,
                    apt_url: &apt_url,
                },
            )?;
            crate::state::write_atomic(
                &mpaths.known_hosts(),
                format!("{} {host_key}\n", m.rec.ip).as_bytes(),
            )?;
            net::create_machine_link(&m.rec.netns, &m.rec.veth, &self.rec.bridge)
        })();
        if let Err(e) = result {
            let _ = machine::teardown(&self.rec.name, &mpaths);
            return Err(e);
        }
        Ok(m)
    }

    fn records(&self) -> Result<Vec<MachineRecord>, Error> {
        let dir = self.paths.machines();
        let mut v = Vec::new();
        for e in std::fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .flatten()
        {
            let f = e.path().join("machine.json");
            if f.exists() {
                v.push(read_json::<MachineRecord>(&f)?);
            }
        }
        v.sort_by_key(|r| r.ip);
        Ok(v)
    }

    /// Every machine with its state, ordered by address.
    pub fn machines(&self) -> Result<Vec<MachineInfo>, Error> {
        Ok(self
            .records()?
            .into_iter()
            .map(|r| self.handle(r).info())
            .collect())
    }

    fn handle(&self, rec: MachineRecord) -> Machine {
        Machine {
            group: self.rec.clone(),
            paths: self.paths.machine(&rec.id),
            rec,
        }
    }

    pub fn machine(&self, id: &str) -> Result<Machine, Error> {
        names::check_machine_id(id)?;
        let f = self.paths.machine(id).state_file();
        if !f.exists() {
            return Err(Error::NoSuchMachine {
                group: self.rec.name.clone(),
                id: id.to_string(),
            });
        }
        Ok(self.handle(read_json(&f)?))
    }

    /// Stops the machine hard and removes everything of it.
    pub fn destroy_machine(&self, id: &str) -> Result<(), Error> {
        names::check_machine_id(id)?;
        let mpaths = self.paths.machine(id);
        if !mpaths.root.exists() {
            return Err(Error::NoSuchMachine {
                group: self.rec.name.clone(),
                id: id.to_string(),
            });
        }
        machine::teardown(&self.rec.name, &mpaths)
    }

    /// Removes every namespace, link, bridge, mount, process and file of the group.
    pub fn down(self) -> Result<(), Error> {
        teardown(&self.host, &self.rec.name)
    }

    /// Like `down` for a group that may not even attach (damaged or partial state).
    pub fn remove(host: &Host, name: &str) -> Result<(), Error> {
        names::check_group_name(name)?;
        if !paths_for(host, name).root.exists() && !net::link_exists(&names::bridge_name(name)) {
            return Err(Error::NoSuchGroup {
                name: name.to_string(),
                state: paths_for(host, name).root,
            });
        }
        teardown(host, name)
    }

    /// Fetches packages (with dependencies missing from the base image) for `suite` into the
    /// group's repository. Machines see them after `apt-get update`.
    pub fn add_packages(&self, suite: Suite, names: &[&str]) -> Result<(), Error> {
        let status = self.rec.base_rootfs.join("var/lib/dpkg/status");
        apt_repo::add_packages(
            self.host.cache_root(),
            &self.paths.repo(),
            suite,
            &status,
            names,
        )
    }

    /// Adds package files built elsewhere to the group's repository for `suite` (e.g. two
    /// versions of a test package, for OS updates).
    pub fn add_deb_files(&self, suite: Suite, files: &[&std::path::Path]) -> Result<(), Error> {
        std::fs::create_dir_all(self.host.cache_root().join("apt"))
            .map_err(Error::io("create", &self.host.cache_root().join("apt")))?;
        apt_repo::add_deb_files(self.host.cache_root(), &self.paths.repo(), suite, files)
    }

    /// Versions of `name` the group's apt repository offers (every suite), as Debian
    /// versions (`3.4.23-4+b4`), in the order the indexes list them.
    pub fn package_versions(&self, name: &str) -> Result<Vec<String>, Error> {
        Ok(self.package_index()?.remove(name).unwrap_or_default())
    }

    /// Every package of the group's apt repository (every suite) with its Debian versions, in
    /// the order the indexes list them. Reads the indexes only; changes nothing.
    pub fn package_index(&self) -> Result<BTreeMap<String, Vec<String>>, Error> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in Suite::ALL {
            let index = self.paths.repo().join(s.codename()).join("Packages");
            let text = match std::fs::read_to_string(&index) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read", &index)(e)),
            };
            for stanza in text.split("\n\n") {
                let field = |f: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(f).map(str::trim))
                };
                if let (Some(name), Some(v)) = (field("Package:"), field("Version:")) {
                    out.entry(name.to_owned()).or_default().push(v.to_owned());
                }
            }
        }
        Ok(out)
    }

    /// The group's git server (started on first use).
    pub fn git_host(&self) -> Result<GitHost, Error> {
        let _lock = FileLock::exclusive(&self.paths.lock())?;
        let mut rec: GroupRecord = read_json(&self.paths.state_file())?;
        let port = match rec.git_port {
            Some(p) => p,
            None => {
                let p = free_port(rec.bridge_ip)?;
                rec.git_port = Some(p);
                write_json(&self.paths.state_file(), &rec)?;
                p
            }
        };
        git_host::ensure(&self.paths.git(), rec.bridge_ip, port, &self.marker())
    }

    /// Every process of the group mentions its directory; the slash keeps "g" from matching "g2".
    fn marker(&self) -> String {
        format!("{}/", self.paths.root.display())
    }
}

/// Removes a group from its name alone (deterministic kernel names + state directory scan), so
/// that nothing is left behind even when state files are damaged. Collects every problem.
fn teardown(host: &Host, name: &str) -> Result<(), Error> {
    let paths = paths_for(host, name);
    let marker = format!("{}/", paths.root.display());
    let mut problems = Vec::new();
    if let Ok(rd) = std::fs::read_dir(paths.machines()) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if let Err(err) = machine::teardown(name, &paths.machine(&id)) {
                problems.push(format!("machine {id}: {err}"));
            }
        }
    }
    // Leftovers: machine processes, the HTTP server, sshd.
    for p in procs::pids_mentioning(&marker) {
        if procs::comm(p).as_deref() == Some("systemd-nspawn") {
            for init in procs::children(p) {
                procs::signal(init, libc::SIGKILL);
            }
        }
    }
    for p in procs::pids_mentioning(&marker) {
        if !procs::terminate(p, Duration::from_secs(3)) {
            problems.push(format!("process {p} does not exit"));
        }
    }
    for ns in net::netns_with_prefix(&names::netns_prefix(name)) {
        if let Err(err) = net::delete_netns(&ns) {
            problems.push(err.to_string());
        }
    }
    if let Err(err) = net::delete_link(&names::bridge_name(name)) {
        problems.push(err.to_string());
    }
    if let Err(err) = mounts::remove_tree(&paths.root) {
        problems.push(err.to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Teardown {
            group: name.to_string(),
            problems,
        })
    }
}

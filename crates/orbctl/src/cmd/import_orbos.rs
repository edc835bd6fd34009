//! `orbctl import-orbos`: converts an orbos `orbiter.yml` into this Orb's. Secrets in the old
//! unauthenticated format (AES-256-CFB) are decrypted once, here, and sealed again in ours; the
//! old format is never written. Kinds this Orbiter does not have yet are reported and left out.
//! A provider's `loadbalancing` (DynamicLoadBalancer v0, v1 or v2) is carried over in its
//! version and migrated by the reader, like the provider itself.

use crate::args::{Global, ImportArgs};
use crate::context::{Ctx, KeyCache, read_text};
use anyhow::{Context as _, Result, anyhow, bail};
use orb_model::{ORBITER_YML, Orb};
use orb_repo::FileChange;
use orb_secrets::{SecretKey, Zeroizing, legacy};
use serde_json::{Map, Value, json};

/// Static-provider fields of orbos that StaticProvider v0 has; the rest is reported and dropped.
const STATIC_V0_FIELDS: &[&str] = &["verbose", "remoteuser", "remotepublickeypath", "pools"];

pub fn run(g: &Global, a: ImportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let old_key = std::fs::read_to_string(&a.orbos_masterkey_file)
        .with_context(|| format!("cannot read {}", a.orbos_masterkey_file.display()))?;
    let file = a.file.display().to_string();
    let converted = convert(&text, &file, old_key.trim_end_matches('\n'))?;
    for w in &converted.warnings {
        eprintln!("warning: {w}");
    }
    let mut ctx = Ctx::open(g)?;
    let mut keys = KeyCache::new(ctx.masterkey()?);
    if a.dry_run {
        let key = keys.key_for(&ctx.repo.snapshot())?;
        print!("{}", converted.seal(&key)?.to_yaml());
        return Ok(());
    }
    let outcome = super::update(
        &mut ctx.repo,
        &format!("Import orbos Orb from {file}\n\nby orbctl import-orbos; secrets re-encrypted"),
        |snap| {
            if read_text(snap, ORBITER_YML)?.is_some() {
                bail!(
                    "the repository already has an {ORBITER_YML}; import into a new, empty Orb repository\n  hint: orbctl import-orbos --dry-run prints the result instead"
                );
            }
            let key = keys.key_for(snap)?;
            Ok(vec![FileChange::write(
                ORBITER_YML,
                converted.seal(&key)?.to_yaml(),
            )])
        },
    )?;
    super::report(&outcome, ORBITER_YML);
    Ok(())
}

pub struct Converted {
    /// The Orb without secrets (still in old kind versions; parsing migrates them).
    orb_yaml: String,
    /// Decrypted secrets by their new path.
    secrets: Vec<(String, Zeroizing<Vec<u8>>)>,
    pub warnings: Vec<String>,
}

impl Converted {
    fn seal(&self, key: &SecretKey) -> Result<Orb> {
        let mut orb =
            Orb::parse(&self.orb_yaml, ORBITER_YML).context("the converted Orb is not valid")?;
        for (path, plain) in &self.secrets {
            *orb.secret_mut(path)? = Some(key.seal(path, plain));
        }
        Ok(orb)
    }
}

pub fn convert(text: &str, file: &str, masterkey: &str) -> Result<Converted> {
    let root: Value = serde_saphyr::from_str(text).map_err(|e| {
        anyhow!(
            "{}",
            e.render_with_options(serde_saphyr::render_options! { source_name: Some(file) })
        )
    })?;
    let kind = root.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "orbiter.caos.ch/Orb" {
        bail!(
            "{file}: kind is `{kind}`, not orbiter.caos.ch/Orb: this is not an orbos orbiter.yml"
        );
    }
    let mut warnings = Vec::new();
    let mut secrets = Vec::new();
    let mut providers = Map::new();
    for (id, node) in root
        .get("providers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let pkind = node.get("kind").and_then(Value::as_str).unwrap_or_default();
        if pkind != "orbiter.caos.ch/StaticProvider" {
            warnings.push(format!(
                "provider `{id}` of kind {pkind} is not supported yet and was left out"
            ));
            continue;
        }
        let spec = node
            .get("spec")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut new_spec = Map::new();
        for (field, value) in &spec {
            if STATIC_V0_FIELDS.contains(&field.as_str()) {
                new_spec.insert(field.clone(), value.clone());
            } else if field != "keys" {
                warnings.push(format!(
                    "provider `{id}`: field `{field}` has no equivalent yet and was left out"
                ));
            }
        }
        for (name, secret) in spec
            .get("keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(plain) = decrypt(
                secret,
                masterkey,
                &format!("{file}: providers.{id}.spec.keys.{name}"),
            )? {
                secrets.push((format!("{id}.{name}"), plain));
            }
        }
        let mut provider = json!({"kind": "StaticProvider", "version": "v0", "spec": new_spec});
        if let Some(lb) = node.get("loadbalancing").filter(|v| !v.is_null())
            && let Some(lb) = convert_lb(id, lb, &mut warnings)?
        {
            provider["loadbalancing"] = lb;
        }
        providers.insert(id.clone(), provider);
    }
    for (id, node) in root
        .get("clusters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let ckind = node.get("kind").and_then(Value::as_str).unwrap_or_default();
        let dropped: Vec<String> = node
            .get("spec")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.get("encryption").is_some())
            .map(|(k, _)| k.clone())
            .collect();
        warnings.push(format!(
            "cluster `{id}` of kind {ckind} is not supported yet and was left out{}",
            if dropped.is_empty() {
                String::new()
            } else {
                format!(
                    " with its secrets {} (read them with orbos before you retire it)",
                    dropped.join(", ")
                )
            }
        ));
    }
    let orb = json!({"kind": "Orb", "version": "v1", "providers": providers});
    Ok(Converted {
        orb_yaml: serde_saphyr::to_string(&orb)?,
        secrets,
        warnings,
    })
}

/// An orbos `loadbalancing` tree as ours (same versions; the reader migrates v0 and v1). Go's
/// zero values (`path: ""`, `code: 0`, `protocol: ""`) are dropped; in v2 an absent
/// `proxyprotocol` meant true in orbos (false for `kubeapi`), ours means false, so it is
/// written out; `downstreamproxies` has no equivalent.
fn convert_lb(id: &str, lb: &Value, warnings: &mut Vec<String>) -> Result<Option<Value>> {
    let kind = lb.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "orbiter.caos.ch/DynamicLoadBalancer" {
        warnings.push(format!(
            "provider `{id}`: load balancer of kind {kind} is not supported and was left out"
        ));
        return Ok(None);
    }
    let version = lb
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !["v0", "v1", "v2"].contains(&version) {
        bail!("provider `{id}`: DynamicLoadBalancer version `{version}` is unknown (v0, v1, v2)");
    }
    let mut spec = lb.get("spec").cloned().unwrap_or_else(|| json!({}));
    for (pool, vips) in spec.as_object_mut().into_iter().flatten() {
        for vip in vips.as_array_mut().into_iter().flatten() {
            let ip = vip
                .get("ip")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if ip.is_empty() {
                bail!(
                    "provider `{id}`: a VIP of pool `{pool}` has no ip (a cloud provider allocated it); give it an address first"
                );
            }
            for t in vip
                .get_mut("transport")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let name = t
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                for d in t
                    .get_mut("destinations")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    drop_zero_checks(d);
                }
                drop_zero_checks(t);
                if version != "v2" {
                    continue;
                }
                let Some(t) = t.as_object_mut() else { continue };
                if t.remove("downstreamproxies").is_some() {
                    warnings.push(format!(
                        "provider `{id}`: transport `{name}`: downstreamproxies has no equivalent and was left out"
                    ));
                }
                if !t.contains_key("proxyprotocol") {
                    let on = name != "kubeapi";
                    t.insert("proxyprotocol".into(), Value::Bool(on));
                    if on {
                        warnings.push(format!(
                            "provider `{id}`: transport `{name}` gets proxyprotocol: true, orbos's default (ours is false); remove it if the backends do not expect a PROXY header"
                        ));
                    }
                }
            }
        }
    }
    Ok(Some(
        json!({"kind": "DynamicLoadBalancer", "version": version, "spec": spec}),
    ))
}

/// Removes what Go wrote for unset health check fields.
fn drop_zero_checks(parent: &mut Value) {
    let Some(h) = parent
        .get_mut("healthchecks")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    h.retain(|k, v| match k.as_str() {
        "path" | "protocol" => v.as_str() != Some(""),
        "code" => v.as_u64() != Some(0),
        _ => true,
    });
    if !h.contains_key("protocol")
        && let Some(p) = parent.as_object_mut()
    {
        p.remove("healthchecks");
    }
}

/// One orbos secret `{encryption, encoding, value}`; `None` when it is empty.
fn decrypt(secret: &Value, masterkey: &str, place: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let value = match secret {
        Value::Null => return Ok(None),
        Value::Object(m) => m.get("value").and_then(Value::as_str).unwrap_or_default(),
        _ => bail!("{place}: expected a map with encryption, encoding and value"),
    };
    if value.is_empty() {
        return Ok(None);
    }
    legacy::decrypt_orbos(masterkey, value)
        .map(Some)
        .with_context(|| format!("{place}: cannot decrypt with the given orbos masterkey"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orb_testsupport::orbos::OrbosOrb;

    #[test]
    fn converts_the_orbos_fixture() {
        let fixture = OrbosOrb::new();
        let text = std::fs::read_to_string(fixture.orbiter_yml()).unwrap();
        let mk = std::fs::read_to_string(fixture.masterkey()).unwrap();
        let c = convert(&text, "orbiter.yml", mk.trim_end_matches('\n')).unwrap();
        let expected = |name: &str| std::fs::read(fixture.expected(name)).unwrap();
        let get = |path: &str| {
            c.secrets
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, v)| v.to_vec())
                .unwrap()
        };
        assert_eq!(
            get("kvm.bootstrapkeyprivate"),
            expected("bootstrapkeyprivate")
        );
        assert_eq!(
            get("kvm.bootstrapkeypublic"),
            expected("bootstrapkeypublic")
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("cluster `k8s`") && w.contains("kubeconfig"))
        );
        let (keyring, key) = orb_secrets::Keyring::generate_with(
            &orb_secrets::Masterkey::new("a test masterkey of enough length").unwrap(),
            orb_secrets::KdfParams::argon2id(64, 1, 1),
        )
        .unwrap();
        let _ = keyring;
        let mut orb = c.seal(&key).unwrap();
        let env = orb
            .secret_mut("kvm.bootstrapkeyprivate")
            .unwrap()
            .clone()
            .unwrap();
        assert_eq!(
            *key.open("kvm.bootstrapkeyprivate", &env).unwrap(),
            expected("bootstrapkeyprivate")
        );
        let rendered = orb.to_yaml();
        assert!(
            rendered.contains("user: orbiter") || !rendered.contains("remoteuser"),
            "{rendered}"
        );
        assert!(!rendered.contains("AES256"), "{rendered}");
    }

    fn key() -> SecretKey {
        let (_, key) = orb_secrets::Keyring::generate_with(
            &orb_secrets::Masterkey::new("a test masterkey of enough length").unwrap(),
            orb_secrets::KdfParams::argon2id(64, 1, 1),
        )
        .unwrap();
        key
    }

    /// The fixture with an orbos load balancer on its provider (the last node of the file).
    fn with_lb(version: &str, transports: &str) -> (String, String) {
        let fixture = OrbosOrb::new();
        let text = std::fs::read_to_string(fixture.orbiter_yml()).unwrap();
        let mk = std::fs::read_to_string(fixture.masterkey()).unwrap();
        let lb = format!(
            "    loadbalancing:
      kind: orbiter.caos.ch/DynamicLoadBalancer
      version: {version}
      spec:
        masters:
        - ip: 192.168.122.10
          transport:
{transports}"
        );
        (text + &lb, mk.trim_end_matches('\n').to_owned())
    }

    #[test]
    fn carries_a_v2_load_balancer_over() {
        let (text, mk) = with_lb(
            "v2",
            "          - name: kubeapi
            frontendport: 6443
            backendport: 6666
            backendpools: [masters]
            whitelist: [0.0.0.0/0]
            healthchecks: {protocol: https, path: /healthz, code: 200}
          - name: ingress
            frontendport: 443
            backendport: 30443
            backendpools: [workers]
            whitelist: [10.0.0.0/8]
            downstreamproxies: []
            healthchecks: {protocol: tcp, path: \"\", code: 0}
",
        );
        let c = convert(&text, "orbiter.yml", &mk).unwrap();
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("`ingress` gets proxyprotocol: true")),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings.iter().any(|w| w.contains("downstreamproxies")));
        let orb = c.seal(&key()).unwrap();
        let lb = orb.providers["kvm"].spec.model().loadbalancing().unwrap();
        let t = &lb.vips().next().unwrap().1.transport;
        assert_eq!(t[0].name.value.as_str(), "kubeapi");
        assert!(!t[0].proxyprotocol, "orbos forced it off for kubeapi");
        assert!(t[1].proxyprotocol && t[1].healthchecks.is_default());
        let rendered = orb.to_yaml();
        assert!(
            rendered.contains(
                "    loadbalancing:\n      kind: DynamicLoadBalancer\n      version: v2\n"
            ),
            "{rendered}"
        );
    }

    #[test]
    fn carries_a_v1_load_balancer_over_migrated() {
        let (text, mk) = with_lb(
            "v1",
            "          - name: kubeapi
            sourceport: 6443
            whitelist: [0.0.0.0/0]
            destinations:
            - {pool: masters, port: 6666, healthchecks: {protocol: https, path: /healthz, code: 200}}
",
        );
        let c = convert(&text, "orbiter.yml", &mk).unwrap();
        let orb = c.seal(&key()).unwrap();
        let node = orb.providers["kvm"]
            .spec
            .model()
            .loadbalancing_node()
            .unwrap();
        assert_eq!(node.migrated_from.as_deref(), Some("v1"));
        let t = &node.spec.vips().next().unwrap().1.transport[0];
        assert_eq!((t.frontendport.value, t.backendport.value), (6443, 6666));
        assert!(orb.to_yaml().contains("frontendport: 6443"));
    }

    #[test]
    fn wrong_orbos_masterkey_is_a_clear_error() {
        let text = std::fs::read_to_string(OrbosOrb::new().orbiter_yml()).unwrap();
        let e = convert(&text, "orbiter.yml", "not-the-key").err().unwrap();
        assert!(
            format!("{e:#}").contains("providers.kvm.spec.keys"),
            "{e:#}"
        );
    }
}

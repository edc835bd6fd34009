//! `orbctl import-orbos`: converts an orbos `orbiter.yml` into this Orb's. Secrets in the old
//! unauthenticated format (AES-256-CFB) are decrypted once, here, and sealed again in ours; the
//! old format is never written. Kinds this Orbiter does not have yet are reported and left out.

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
        providers.insert(
            id.clone(),
            json!({"kind": "StaticProvider", "version": "v0", "spec": new_spec}),
        );
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

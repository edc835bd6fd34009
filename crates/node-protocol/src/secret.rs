//! Secret file content, in the three forms a document can take:
//!
//! - in `orbiter.yml` a file names a secret of its `NodeSoftware` (`secret: apitoken`), sealed
//!   there like every secret;
//! - on the machine the agent gets the bytes (`secret: {base64: …}`), over SSH, in a 0600 file;
//! - in the Orb repository Orbiter records only a keyed digest (`secret: {digest: …}`), so a
//!   reader of the repository learns nothing, not even whether a guess is right, while a changed
//!   value still changes the record (and rolls out).
//!
//! A value serializes only inside [`reveal`]: every other rendering (a record, a plan, a log)
//! fails instead of leaking, so forgetting to redact is an error, never a disclosure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;
use zeroize::Zeroizing;

/// Bytes of a secret: Debug shows the size only, memory is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SecretBytes(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret, {} bytes>", self.0.len())
    }
}

/// Where a secret file's content comes from, in the form of the document it is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSecret {
    /// `orbiter.yml`: the name of a secret of the same `NodeSoftware`.
    Name(String),
    /// The machine's document: the bytes themselves.
    Value(SecretBytes),
    /// The repository's record: a keyed digest of the bytes (`hmac-sha256:<hex>`).
    Digest(String),
}

impl FileSecret {
    pub fn form_name(&self) -> &'static str {
        match self {
            FileSecret::Name(_) => "a secret name (orbiter.yml)",
            FileSecret::Value(_) => "a secret value (the machine's document)",
            FileSecret::Digest(_) => "a digest (a record in the Orb repository)",
        }
    }
}

thread_local! {
    static REVEALED: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with secret values serializable on this thread: only for the document written to
/// its machine.
pub fn reveal<R>(f: impl FnOnce() -> R) -> R {
    struct Undo;
    impl Drop for Undo {
        fn drop(&mut self) {
            REVEALED.with(|r| r.set(r.get() - 1));
        }
    }
    REVEALED.with(|r| r.set(r.get() + 1));
    let _undo = Undo;
    f()
}

fn revealed() -> bool {
    REVEALED.with(|r| r.get() > 0)
}

impl Serialize for FileSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FileSecret::Name(n) => s.serialize_str(n),
            FileSecret::Value(v) => {
                if !revealed() {
                    return Err(serde::ser::Error::custom(
                        "a secret value is rendered only for the machine it belongs to",
                    ));
                }
                let mut m = s.serialize_map(Some(1))?;
                let text = Zeroizing::new(STANDARD.encode(v.expose()));
                m.serialize_entry("base64", text.as_str())?;
                m.end()
            }
            FileSecret::Digest(d) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("digest", d)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FileSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = FileSecret;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the name of a secret, {base64: …} or {digest: …}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FileSecret, E> {
        Ok(FileSecret::Name(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileSecret, A::Error> {
        let key: String = map
            .next_key()?
            .ok_or_else(|| de::Error::custom("expected `base64` or `digest`"))?;
        let out = match key.as_str() {
            "base64" => {
                let text: Zeroizing<String> = Zeroizing::new(map.next_value()?);
                let bytes = STANDARD
                    .decode(text.trim())
                    .map_err(|_| de::Error::custom("secret.base64 is not base64"))?;
                FileSecret::Value(SecretBytes::new(bytes))
            }
            "digest" => FileSecret::Digest(map.next_value()?),
            other => return Err(de::Error::unknown_field(other, &["base64", "digest"])),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "unexpected `{extra}`: a secret has one of `base64` or `digest`"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_renders_only_when_revealed() {
        let v = FileSecret::Value(SecretBytes::new(b"TOPSECRET".to_vec()));
        let e = serde_saphyr::to_string(&v).unwrap_err().to_string();
        assert!(e.contains("only for the machine"), "{e}");
        let text = reveal(|| serde_saphyr::to_string(&v)).unwrap();
        assert!(
            text.contains("base64") && !text.contains("TOPSECRET"),
            "{text}"
        );
        assert!(
            serde_saphyr::to_string(&v).is_err(),
            "reveal ends with its scope"
        );
        let back: FileSecret = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn forms_parse_and_debug_hides_bytes() {
        let n: FileSecret = serde_saphyr::from_str("apitoken").unwrap();
        assert_eq!(n, FileSecret::Name("apitoken".into()));
        let d: FileSecret = serde_saphyr::from_str("{digest: hmac-sha256:ab}").unwrap();
        assert_eq!(d, FileSecret::Digest("hmac-sha256:ab".into()));
        assert!(serde_saphyr::from_str::<FileSecret>("{base64: '%%'}").is_err());
        assert!(serde_saphyr::from_str::<FileSecret>("{base64: eA==, digest: x}").is_err());
        let v = FileSecret::Value(SecretBytes::new(b"TOPSECRET".to_vec()));
        assert!(!format!("{v:?}").contains("TOPSECRET"));
    }
}

//! `keyring.yml`: the Orb's public KDF parameters and key-check value.
//!
//! ```yaml
//! kind: Keyring
//! version: v1
//! kdf:
//!   algorithm: argon2id
//!   salt: <base64 std, 16 random bytes>
//!   memory_kib: 65536
//!   iterations: 3
//!   parallelism: 1
//! keycheck: <base64 std, 32 bytes>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};

use crate::kdf::{self, KEY_LEN};
use crate::{Masterkey, SecretError, SecretKey};

const KIND: &str = "Keyring";
const VERSION: &str = "v1";
const ALGORITHM: &str = "argon2id";
/// Salt length written by [`Keyring::generate`].
const SALT_LEN: usize = 16;
/// Accepted salt lengths (argon2 needs at least 8; we never write fewer than 16).
const SALT_RANGE: std::ops::RangeInclusive<usize> = 16..=64;
/// Upper bounds keep a hostile or mistyped keyring from making orbctl allocate or spin forever.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const ITERATIONS_RANGE: std::ops::RangeInclusive<u32> = 1..=64;
const PARALLELISM_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
/// Appended to every keyring error: the file is machine-written.
const HINT: &str = "hint: keyring.yml is written by orbctl; restore it from git history";

/// Repository file `keyring.yml`. Public and committed: it holds no secret, only what is needed
/// to re-derive the Orb's key from the masterkey and to tell a wrong masterkey early.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    /// Always `Keyring`.
    pub kind: String,
    /// Always `v1` so far.
    pub version: String,
    /// How the masterkey is stretched.
    pub kdf: KdfParams,
    /// Standard base64 of the 32-byte HKDF subkey `orbiter/keycheck/v1`.
    pub keycheck: String,
}

/// argon2id parameters and the per-Orb salt.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Standard base64 of the random salt.
    pub salt: String,
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// argon2id with the given costs and a fresh random 16-byte salt.
    ///
    /// # Panics
    /// When the operating system's random number generator fails.
    #[must_use]
    pub fn argon2id(memory_kib: u32, iterations: u32, parallelism: u32) -> KdfParams {
        let mut salt = [0u8; SALT_LEN];
        crate::os_random(&mut salt);
        KdfParams {
            algorithm: ALGORITHM.to_owned(),
            salt: STANDARD.encode(salt),
            memory_kib,
            iterations,
            parallelism,
        }
    }

    /// What [`Keyring::generate`] uses: 64 MiB, 3 passes, 1 lane (about a second per unlock
    /// on a small machine, once per orbctl run).
    #[must_use]
    pub fn recommended() -> KdfParams {
        KdfParams::argon2id(64 * 1024, 3, 1)
    }
}

/// Which keyring field a validation error is about, so YAML parsing can point at it.
#[derive(Clone, Copy)]
enum Field {
    Kind,
    Version,
    Algorithm,
    Salt,
    MemoryKib,
    Iterations,
    Parallelism,
    Keycheck,
}

/// Decoded and range-checked keyring contents.
struct Checked {
    salt: Vec<u8>,
    keycheck: [u8; KEY_LEN],
}

impl Keyring {
    /// File name in the Orb repository.
    pub const FILE: &'static str = "keyring.yml";

    /// A new keyring for `mk` with a fresh salt and [`KdfParams::recommended`], and the key it
    /// unlocks to.
    ///
    /// # Errors
    /// Only if argon2 refuses the parameters, which the recommended ones never are.
    pub fn generate(mk: &Masterkey) -> Result<(Keyring, SecretKey), SecretError> {
        Keyring::generate_with(mk, KdfParams::recommended())
    }

    /// Like [`Keyring::generate`] with caller-chosen parameters. Exists so tests (here and in
    /// other crates) can use cheap parameters such as `KdfParams::argon2id(8, 1, 1)`.
    ///
    /// # Errors
    /// [`SecretError::Keyring`] when the parameters are out of range.
    #[doc(hidden)]
    pub fn generate_with(
        mk: &Masterkey,
        params: KdfParams,
    ) -> Result<(Keyring, SecretKey), SecretError> {
        let mut keyring = Keyring {
            kind: KIND.to_owned(),
            version: VERSION.to_owned(),
            kdf: params,
            keycheck: STANDARD.encode([0u8; KEY_LEN]),
        };
        let checked = keyring
            .checked()
            .map_err(|(_, reason)| SecretError::Keyring {
                file: Keyring::FILE.to_owned(),
                reason,
            })?;
        let derived = keyring.derive(mk, &checked)?;
        keyring.keycheck = STANDARD.encode(derived.keycheck);
        Ok((keyring, SecretKey::from_derived(derived.secrets)))
    }

    /// Derives the Orb's key from `mk`.
    ///
    /// # Errors
    /// [`SecretError::WrongMasterkey`] when the key check differs, and
    /// [`SecretError::Keyring`] when the keyring's values are out of range.
    pub fn unlock(&self, mk: &Masterkey) -> Result<SecretKey, SecretError> {
        let checked = self.checked().map_err(|(_, reason)| SecretError::Keyring {
            file: Keyring::FILE.to_owned(),
            reason,
        })?;
        let derived = self.derive(mk, &checked)?;
        if !kdf::constant_time_eq(&derived.keycheck, &checked.keycheck) {
            return Err(SecretError::WrongMasterkey);
        }
        Ok(SecretKey::from_derived(derived.secrets))
    }

    /// Parses and validates `keyring.yml`. `file` names it in errors, which carry
    /// `file:line:col` whenever the problem has a position.
    ///
    /// # Errors
    /// [`SecretError::Keyring`] for YAML errors, unknown or missing fields, and values out of
    /// range.
    pub fn from_yaml(text: &str, file: &str) -> Result<Keyring, SecretError> {
        let raw: RawKeyring = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
        let keyring = Keyring {
            kind: raw.kind.value.clone(),
            version: raw.version.value.clone(),
            kdf: KdfParams {
                algorithm: raw.kdf.algorithm.value.clone(),
                salt: raw.kdf.salt.value.clone(),
                memory_kib: raw.kdf.memory_kib.value,
                iterations: raw.kdf.iterations.value,
                parallelism: raw.kdf.parallelism.value,
            },
            keycheck: raw.keycheck.value.clone(),
        };
        if let Err((field, reason)) = keyring.checked() {
            let at = match field {
                Field::Kind => raw.kind.referenced,
                Field::Version => raw.version.referenced,
                Field::Algorithm => raw.kdf.algorithm.referenced,
                Field::Salt => raw.kdf.salt.referenced,
                Field::MemoryKib => raw.kdf.memory_kib.referenced,
                Field::Iterations => raw.kdf.iterations.referenced,
                Field::Parallelism => raw.kdf.parallelism.referenced,
                Field::Keycheck => raw.keycheck.referenced,
            };
            return Err(SecretError::Keyring {
                file: place(file, Some(at)),
                reason,
            });
        }
        Ok(keyring)
    }

    /// The file text, with a header comment for people browsing the repository.
    #[must_use]
    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(self)
            .expect("a struct of strings and integers always serializes to YAML");
        format!(
            "# Orbiter keyring: how this Orb's masterkey is stretched, and a check value that\n\
             # tells a wrong masterkey early. Public, holds no secret. Written by orbctl; do not edit.\n{body}"
        )
    }

    fn derive(&self, mk: &Masterkey, checked: &Checked) -> Result<kdf::Derived, SecretError> {
        kdf::derive(
            mk,
            &checked.salt,
            self.kdf.memory_kib,
            self.kdf.iterations,
            self.kdf.parallelism,
        )
        .map_err(|reason| SecretError::Keyring {
            file: Keyring::FILE.to_owned(),
            reason: format!("{reason}; {HINT}"),
        })
    }

    /// Validates every field; the error names the field and what is expected.
    fn checked(&self) -> Result<Checked, (Field, String)> {
        let bad = |field: Field, reason: String| Err((field, format!("{reason}; {HINT}")));
        if self.kind != KIND {
            return bad(
                Field::Kind,
                format!("kind is {:?}, expected {KIND:?}", self.kind),
            );
        }
        if self.version != VERSION {
            return bad(
                Field::Version,
                format!(
                    "version {:?} is not supported, this orbctl reads {VERSION:?} (upgrade orbctl if the Orb is newer)",
                    self.version
                ),
            );
        }
        let k = &self.kdf;
        if k.algorithm != ALGORITHM {
            return bad(
                Field::Algorithm,
                format!(
                    "kdf.algorithm {:?} is not supported, expected {ALGORITHM:?}",
                    k.algorithm
                ),
            );
        }
        let salt = match STANDARD.decode(&k.salt) {
            Ok(s) if SALT_RANGE.contains(&s.len()) => s,
            Ok(s) => {
                return bad(
                    Field::Salt,
                    format!(
                        "kdf.salt has {} bytes, expected {} to {}",
                        s.len(),
                        SALT_RANGE.start(),
                        SALT_RANGE.end()
                    ),
                );
            }
            Err(e) => {
                return bad(
                    Field::Salt,
                    format!("kdf.salt is not standard base64 ({e})"),
                );
            }
        };
        if !PARALLELISM_RANGE.contains(&k.parallelism) {
            return bad(
                Field::Parallelism,
                format!(
                    "kdf.parallelism is {}, expected {} to {}",
                    k.parallelism,
                    PARALLELISM_RANGE.start(),
                    PARALLELISM_RANGE.end()
                ),
            );
        }
        let min_memory = 8 * k.parallelism;
        if !(min_memory..=MAX_MEMORY_KIB).contains(&k.memory_kib) {
            return bad(
                Field::MemoryKib,
                format!(
                    "kdf.memory_kib is {}, expected {min_memory} (8 per lane) to {MAX_MEMORY_KIB} (1 GiB)",
                    k.memory_kib
                ),
            );
        }
        if !ITERATIONS_RANGE.contains(&k.iterations) {
            return bad(
                Field::Iterations,
                format!(
                    "kdf.iterations is {}, expected {} to {}",
                    k.iterations,
                    ITERATIONS_RANGE.start(),
                    ITERATIONS_RANGE.end()
                ),
            );
        }
        let keycheck = match STANDARD.decode(&self.keycheck) {
            Ok(v) => <[u8; KEY_LEN]>::try_from(v.as_slice()).map_err(|_| {
                (
                    Field::Keycheck,
                    format!("keycheck has {} bytes, expected {KEY_LEN}; {HINT}", v.len()),
                )
            })?,
            Err(e) => {
                return bad(
                    Field::Keycheck,
                    format!("keycheck is not standard base64 ({e})"),
                );
            }
        };
        Ok(Checked { salt, keycheck })
    }
}

/// `file` or `file:line:col` when the location is known.
fn place(file: &str, at: Option<Location>) -> String {
    match at {
        Some(l) if l.line() > 0 => format!("{file}:{}:{}", l.line(), l.column()),
        _ => file.to_owned(),
    }
}

/// The parser's message without its own "at line X, column Y" (the place already says it),
/// with control characters escaped so a hostile file cannot paint the terminal.
fn yaml_error(file: &str, e: &serde_saphyr::Error) -> SecretError {
    let mut message = String::new();
    for c in UserMessageFormatter.format_message(e).chars() {
        if c.is_control() {
            message.extend(c.escape_debug());
        } else {
            message.push(c);
        }
    }
    SecretError::Keyring {
        file: place(file, e.location()),
        reason: format!("{message}; {HINT}"),
    }
}

/// Mirror of [`Keyring`] that keeps positions, so semantic errors can point at the value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyring {
    kind: Spanned<String>,
    version: Spanned<String>,
    kdf: RawKdf,
    keycheck: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKdf {
    algorithm: Spanned<String>,
    salt: Spanned<String>,
    memory_kib: Spanned<u32>,
    iterations: Spanned<u32>,
    parallelism: Spanned<u32>,
}

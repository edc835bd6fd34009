//! Reading a value from exactly one of `--value`, `--file`, `--stdin`, as bytes.

use crate::args::ValueSource;
use anyhow::{Context as _, Result};
use std::io::Read as _;

pub fn read_value(src: &ValueSource) -> Result<Vec<u8>> {
    if let Some(v) = &src.value {
        return Ok(v.clone().into_bytes());
    }
    if let Some(f) = &src.file {
        return std::fs::read(f).with_context(|| format!("cannot read --file {}", f.display()));
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("cannot read the value from standard input")?;
    Ok(buf)
}

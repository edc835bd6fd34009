//! A minimal terminal picker: a numbered list on stderr, a number read from the terminal.

use anyhow::{Result, bail};
use std::io::{BufRead as _, Write as _};

pub fn pick(title: &str, items: &[String]) -> Result<String> {
    if items.is_empty() {
        bail!("nothing to choose from: {title}");
    }
    let mut err = std::io::stderr();
    writeln!(err, "{title}")?;
    for (i, item) in items.iter().enumerate() {
        writeln!(err, "  {:>3}) {item}", i + 1)?;
    }
    loop {
        write!(err, "number (empty to abort): ")?;
        err.flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            bail!("aborted");
        }
        match line.trim().parse::<usize>() {
            Ok(n) if (1..=items.len()).contains(&n) => return Ok(items[n - 1].clone()),
            _ => writeln!(err, "choose a number from 1 to {}", items.len())?,
        }
    }
}

/// Asks a question answered by one of `choices` (first letters); returns the chosen letter.
pub fn ask(question: &str, choices: &[char]) -> Result<char> {
    let mut err = std::io::stderr();
    loop {
        write!(err, "{question} ")?;
        err.flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("aborted (end of input)");
        }
        if let Some(c) = line.trim().chars().next().map(|c| c.to_ascii_lowercase())
            && choices.contains(&c)
        {
            return Ok(c);
        }
    }
}

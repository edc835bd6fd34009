//! Generic edits of YAML files by a dotted key path, for `orbctl file patch`. The tree is a JSON
//! value with insertion order kept, so a patch moves no other key. Comments are not kept: files
//! are re-rendered, as every writer of the Orb repository does.

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

pub fn parse(text: &str, file: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        anyhow!(
            "{}",
            e.render_with_options(serde_saphyr::render_options! { source_name: Some(file) })
        )
    })
}

pub fn render(v: &Value) -> Result<String> {
    Ok(serde_saphyr::to_string(v)?)
}

/// A value given on the command line: YAML scalars keep their type (`3` is a number, `true` a
/// boolean); anything else, or text that does not parse, is a string.
pub fn value_from_input(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    match serde_saphyr::from_str::<Value>(&text) {
        Ok(v) if !v.is_null() || text.trim() == "null" => v,
        _ => Value::String(text.into_owned()),
    }
}

/// Sets `key_path` (e.g. `providers.lab.spec.pools.workers.0.ip`) in `root`, creating maps on the way.
pub fn set(root: &mut Value, key_path: &str, new: Value) -> Result<()> {
    let parts: Vec<&str> = key_path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!(
            "key path `{key_path}` has an empty part; write keys separated by single dots, e.g. providers.lab.spec.user"
        );
    }
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let walked = parts[..i].join(".");
        cur = match cur {
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_owned(), new);
                    return Ok(());
                }
                map.entry((*part).to_owned())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => {
                let idx: usize = part.parse().map_err(|_| {
                    anyhow!(
                        "`{walked}` is a list: address an item by its index (0..{}), not `{part}`",
                        items.len()
                    )
                })?;
                let len = items.len();
                let item = items.get_mut(idx).ok_or_else(|| {
                    anyhow!("`{walked}` has {len} items; index {idx} does not exist")
                })?;
                if last {
                    *item = new;
                    return Ok(());
                }
                item
            }
            other => bail!(
                "`{walked}` is a {} and has no field `{part}`",
                kind_name(other)
            ),
        };
    }
    unreachable!("the loop returns at the last part")
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_keys_and_list_items() {
        let mut v = parse("a:\n  b: [1, 2]\nc: x\n", "f.yml").unwrap();
        set(&mut v, "a.b.1", value_from_input(b"5")).unwrap();
        set(&mut v, "a.d.e", value_from_input(b"hello")).unwrap();
        assert_eq!(v["a"]["b"][1], 5);
        assert_eq!(v["a"]["d"]["e"], "hello");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "c"]);
        assert!(
            set(&mut v, "c.x", Value::Null)
                .unwrap_err()
                .to_string()
                .contains("is a string")
        );
        assert!(
            set(&mut v, "a.b.7", Value::Null)
                .unwrap_err()
                .to_string()
                .contains("has 2 items")
        );
        assert!(set(&mut v, "a..b", Value::Null).is_err());
    }
}

//! Whose data a member's data directory holds, read offline: etcd writes the member id and the
//! cluster id (`etcdserverpb.Metadata{NodeID, ClusterID}`) into the metadata record at the head
//! of *every* WAL segment (`member/wal/*.wal`; `wal.Create` and `wal.cut` write a CRC record,
//! then the metadata record), identically in 3.4 and 3.5. Neither etcdctl nor etcdutl prints
//! it, so [`read_ids_snippet`] reads it with `od` and `awk` (both in every Debian), without
//! etcd running: the observation reports it and [`crate::steps::EtcdStep::WipeMember`] checks
//! it on the victim before it deletes anything.
//!
//! Frame format (wal/encoder.go): an 8-byte little-endian length whose top byte is `0x80|pad`
//! when the record is padded to 8 bytes, then the protobuf `walpb.Record{type=1, crc=2,
//! data=3}`. Ids are uint64 (often > 2^53): the snippet converts varints to hex through bit
//! strings, never through awk's floating-point numbers.

/// POSIX sh (a brace group, for `$(…)`: never `$((`) printing `<member id hex> <cluster id hex>` for the WAL in `data_dir`, or
/// `none <reason>`. Reads the newest segment's first 256 bytes; never fails.
pub fn read_ids_snippet(data_dir: &str) -> String {
    let d = crate::sh::quote(data_dir);
    format!(
        "{{ w=$(ls -1 {d}/member/wal/*.wal 2>/dev/null | tail -n 1); \
if [ -z \"$w\" ]; then echo 'none no WAL segment'; \
else od -An -v -tu1 -N256 \"$w\" 2>/dev/null | awk '{AWK}' ; fi; }}"
    )
}

/// The awk program: frames, the record with type 1, its two varints as hex.
const AWK: &str = r#"function hx(s, e,   bits, k, v, j, d, out) {
  bits = ""
  for (k = e - 1; k >= s; k--) { v = b[k] % 128; d = ""; for (j = 0; j < 7; j++) { d = (v % 2) d; v = int(v / 2) }; bits = bits d }
  while (length(bits) % 4) bits = "0" bits
  out = ""
  for (k = 1; k <= length(bits); k += 4) { v = substr(bits, k, 1) * 8 + substr(bits, k + 1, 1) * 4 + substr(bits, k + 2, 1) * 2 + substr(bits, k + 3, 1); out = out substr("0123456789abcdef", v + 1, 1) }
  sub(/^0+/, "", out); if (out == "") out = "0"
  return out
}
function vend(p) { while (p < n && b[p] >= 128) p++; return p + 1 }
function small(s, e,   v, m, k) { v = 0; m = 1; for (k = s; k < e; k++) { v += (b[k] % 128) * m; m *= 128 }; return v }
{ for (i = 1; i <= NF; i++) b[n++] = $i }
END {
  pos = 0
  for (r = 0; r < 4 && pos + 8 <= n; r++) {
    len = b[pos] + b[pos + 1] * 256 + b[pos + 2] * 65536
    pad = (b[pos + 7] >= 128) ? b[pos + 7] - 128 : 0
    s = pos + 8; e = s + len; p = s; typ = -1; ds = -1; de = -1
    if (len == 0 || e > n) break
    while (p < e) {
      key = b[p]; f = int(key / 8); wt = key % 8; p++
      if (wt == 0) { q = vend(p); if (f == 1) typ = small(p, q); p = q }
      else if (wt == 2) { q = vend(p); l = small(p, q); p = q; if (f == 3) { ds = p; de = p + l }; p += l }
      else break
    }
    if (typ == 1 && ds >= 0) {
      p = ds; node = ""; cid = ""
      while (p < de) {
        key = b[p]; f = int(key / 8); wt = key % 8; p++
        if (wt != 0) break
        q = vend(p); if (f == 1) node = hx(p, q); if (f == 2) cid = hx(p, q); p = q
      }
      if (node != "" && cid != "") { print node, cid; exit 0 }
      print "none the WAL metadata has no member or cluster id"; exit 0
    }
    pos = e + pad
  }
  print "none no metadata record at the head of the newest WAL segment"
}"#;

/// Parses the snippet's output: `Ok((member, cluster))`, or why not.
pub fn parse_ids(line: &str) -> Result<(u64, u64), String> {
    let t = line.trim();
    if let Some(why) = t.strip_prefix("none") {
        return Err(why.trim().to_owned());
    }
    let mut it = t.split_whitespace();
    let hex = |s: Option<&str>| s.and_then(|s| u64::from_str_radix(s, 16).ok());
    match (hex(it.next()), hex(it.next()), it.next()) {
        (Some(m), Some(c), None) => Ok((m, c)),
        _ => Err(format!(
            "unreadable WAL ids `{}`",
            t.chars().take(80).collect::<String>()
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn record(typ: u64, crc: u32, data: Option<&[u8]>) -> Vec<u8> {
        let mut r = vec![0x08];
        varint(typ, &mut r);
        r.push(0x10);
        varint(crc as u64, &mut r);
        if let Some(d) = data {
            r.push(0x1a);
            varint(d.len() as u64, &mut r);
            r.extend_from_slice(d);
        }
        let pad = (8 - r.len() % 8) % 8;
        let mut len = r.len() as u64;
        if pad != 0 {
            len |= (0x80 | pad as u64) << 56;
        }
        let mut f = len.to_le_bytes().to_vec();
        f.extend(r);
        f.extend(std::iter::repeat_n(0, pad));
        f
    }

    /// The head of a WAL segment as etcd writes it: a CRC record, the metadata, a state record.
    pub(crate) fn segment(member: u64, cluster: u64) -> Vec<u8> {
        let mut meta = vec![0x08];
        varint(member, &mut meta);
        meta.push(0x10);
        varint(cluster, &mut meta);
        let mut w = record(4, 0x1234_5678, None);
        w.extend(record(1, 0xdead_beef, Some(&meta)));
        w.extend(record(3, 7, Some(&[0x08, 0x02, 0x10, 0x05])));
        w.resize(w.len() + 4096, 0);
        w
    }

    pub(crate) fn run(data_dir: &std::path::Path) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(read_ids_snippet(data_dir.to_str().unwrap()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn reads_large_ids_from_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("member/wal");
        std::fs::create_dir_all(&wal).unwrap();
        for (member, cluster) in [
            (0x8e9e_05c5_2164_694d_u64, 0xcdf8_1819_4e3a_8c32_u64),
            (1, 2),
            (u64::MAX, 0x7fff_ffff_ffff_ffff),
            (0x1000_0000_0000_0001, 0xc1),
        ] {
            std::fs::write(
                wal.join("0000000000000000-0000000000000000.wal"),
                segment(7, 7),
            )
            .unwrap();
            std::fs::write(
                wal.join("0000000000000001-0000000000000abc.wal"),
                segment(member, cluster),
            )
            .unwrap();
            // A preallocated next segment (3.5) is no `.wal` file.
            std::fs::write(wal.join("0.tmp"), [0u8; 64]).unwrap();
            let out = run(dir.path());
            assert_eq!(parse_ids(&out), Ok((member, cluster)), "{out}");
        }
    }

    #[test]
    fn missing_or_garbage_wal_is_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(parse_ids(&run(dir.path())), Err("no WAL segment".into()));
        let wal = dir.path().join("member/wal");
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(wal.join("0-0.wal"), b"\x01\x02garbage").unwrap();
        assert!(parse_ids(&run(dir.path())).is_err());
        std::fs::write(wal.join("0-0.wal"), [0u8; 300]).unwrap();
        assert!(parse_ids(&run(dir.path())).is_err());
        assert!(parse_ids("1 2 3").is_err());
        assert_eq!(parse_ids("ff 10\n"), Ok((255, 16)));
    }
}

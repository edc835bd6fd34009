//! The benchmark's load client as a command line, for scripts: it prints the shell commands
//! to run on the load machine (`etcd-load start … | ssh LOAD sudo sh`) and turns the writer's
//! log and the keys read back into `failed_writes=… max_unavailable_ms=… lost_acked_writes=…`.

use orb_etcd::load;
use std::collections::BTreeMap;
use std::process::ExitCode;

const USAGE: &str = "usage:
  etcd-load start --endpoints URL[,URL…] --prefix P     print the command that starts the writer
  etcd-load stop                                        print the command that stops it and prints its log
  etcd-load read-back --endpoints URL[,URL…] --prefix P print the command that lists the written keys
  etcd-load check --log FILE --keys FILE --prefix P [--from MS --to MS]
                                                        print the figures of the window";

fn flags(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let k = a
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument `{a}`"))?;
        let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
        m.insert(k.to_owned(), v.clone());
    }
    Ok(m)
}

fn need<'a>(f: &'a BTreeMap<String, String>, k: &str) -> Result<&'a str, String> {
    f.get(k)
        .map(String::as_str)
        .ok_or_else(|| format!("--{k} is required"))
}

fn run(args: &[String]) -> Result<String, String> {
    let (cmd, rest) = args.split_first().ok_or("no command given")?;
    let f = flags(rest)?;
    let endpoints = || -> Result<Vec<String>, String> {
        Ok(need(&f, "endpoints")?
            .split(',')
            .map(str::to_owned)
            .collect())
    };
    match cmd.as_str() {
        "start" => Ok(load::start_command(&endpoints()?, need(&f, "prefix")?)),
        "stop" => Ok(load::stop_command()),
        "read-back" => Ok(load::read_back_command(&endpoints()?, need(&f, "prefix")?)),
        "check" => {
            let read = |k: &str| -> Result<String, String> {
                let p = need(&f, k)?;
                std::fs::read_to_string(p).map_err(|e| format!("cannot read --{k} {p}: {e}"))
            };
            let ms = |k: &str| -> Result<Option<u64>, String> {
                f.get(k)
                    .map(|v| {
                        v.parse()
                            .map_err(|_| format!("--{k} `{v}` is not milliseconds"))
                    })
                    .transpose()
            };
            let window = match (ms("from")?, ms("to")?) {
                (Some(a), Some(b)) => Some((a, b)),
                (None, None) => None,
                _ => return Err("give both --from and --to, or neither".into()),
            };
            let r = load::analyze(&read("log")?, &read("keys")?, need(&f, "prefix")?, window);
            Ok(format!("{r}\n"))
        }
        other => Err(format!("unknown command `{other}`")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("etcd-load: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

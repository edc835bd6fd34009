//! Text from outside Orbiter (a machine's answers, a command's stderr, an agent's report) made
//! safe to record in the repository and in commit messages: control characters replaced (a
//! terminal escape in `git log` cannot repaint anyone's screen), length capped at a character
//! boundary, so a hostile or broken machine cannot flood the history.

/// Newlines kept (multi-line errors stay readable); other controls become `?`.
pub fn remote(s: &str, max: usize) -> String {
    cap(
        s.chars().map(|c| match c {
            '\n' => '\n',
            '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        }),
        max,
    )
}

/// One line: newlines become spaces too.
pub fn remote_line(s: &str, max: usize) -> String {
    cap(
        s.chars().map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        }),
        max,
    )
}

fn cap(chars: impl Iterator<Item = char>, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in chars.enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// An agent's report with every string made safe (see [`remote`]) and at most `max_items`
/// items: it is the machine's own account, recorded as it is otherwise.
pub fn report(c: &mut node_protocol::NodeCurrent, max_items: usize) {
    let short = |s: &mut String| *s = remote_line(s, 200);
    let long = |s: &mut String| *s = remote(s, 2000);
    short(&mut c.kind);
    short(&mut c.version);
    short(&mut c.agent_version);
    c.booted_at.as_mut().map(short);
    c.desired_error.as_mut().map(long);
    c.items.truncate(max_items);
    for i in &mut c.items {
        short(&mut i.id);
        long(&mut i.observed);
        i.pending.truncate(100);
        i.pending.iter_mut().for_each(long);
        i.last_error.as_mut().map(long);
    }
    for p in [c.last_pass.as_mut(), c.last_change.as_mut()]
        .into_iter()
        .flatten()
    {
        short(&mut p.trigger);
        short(&mut p.started_at);
        p.actions.truncate(100);
        p.actions.iter_mut().for_each(long);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_replaced_and_length_capped() {
        assert_eq!(remote("ok\nnext\x1b[2Jcleared", 100), "ok\nnext?[2Jcleared");
        assert_eq!(remote_line("a\nb\rc", 100), "a b c");
        assert_eq!(remote("ééééé", 3), "ééé…");
        assert_eq!(remote("", 3), "");
    }

    #[test]
    fn a_flooding_report_is_cut_down() {
        let mut c = node_protocol::NodeCurrent::new("0.1.0\x1b]0;owned\x07");
        c.desired_error = Some("x".repeat(100_000));
        for n in 0..5000 {
            c.items.push(node_protocol::ItemState {
                id: format!("file:/x{n}"),
                observed: "\x1b[31mred".into(),
                in_sync: true,
                pending: vec![],
                last_error: None,
            });
        }
        report(&mut c, 1000);
        assert_eq!(c.items.len(), 1000);
        assert!(c.desired_error.as_ref().unwrap().chars().count() <= 2001);
        assert!(!c.agent_version.contains('\x1b') && !c.items[0].observed.contains('\x1b'));
    }
}

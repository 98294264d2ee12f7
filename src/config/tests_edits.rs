//! A property test over edited good files (characters deleted, inserted or replaced, lines
//! dropped, repeated or swapped): whatever the text, `parse` does not panic and an error is one
//! line naming the file.

use super::tests::{ISSUE, MINIMAL};
use super::*;
use proptest::prelude::*;

/// Mutations of a good file: delete, insert or replace characters, drop, repeat or swap lines.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DropLine(usize),
    RepeatLine(usize),
    SwapLines(usize, usize),
    ReplaceValue(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let junk = prop_oneof![
        Just("[".to_owned()),
        Just("]]".to_owned()),
        Just("\"".to_owned()),
        Just("=".to_owned()),
        Just("\n".to_owned()),
        Just("{".to_owned()),
        Just(".".to_owned()),
        Just("0".to_owned()),
        Just("\u{1f600}".to_owned()),
        "[ -~]{1,6}",
    ];
    let value = prop_oneof![
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999".to_owned()),
        Just("\"\"".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"::\"".to_owned()),
        Just("\"10.10.1.100:80\"".to_owned()),
        Just("\"fd00:2::9\"".to_owned()),
        Just("1979-05-27".to_owned()),
        Just("[\"10.10.1.1/24\", 3]".to_owned()),
        "\"[ -~]{0,12}\"",
    ];
    prop_oneof![
        (any::<usize>(), 1..8usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), junk).prop_map(|(at, s)| Edit::Insert(at, s)),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::RepeatLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), value).prop_map(|(at, v)| Edit::ReplaceValue(at, v)),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len().max(1);
    match edit {
        Edit::Delete(at, len) => {
            let at = at % chars.len().max(1);
            chars[..at].iter().chain(chars.iter().skip(at + len)).collect()
        }
        Edit::Insert(at, s) => {
            let at = at % (chars.len() + 1);
            chars[..at].iter().collect::<String>() + s + &chars[at..].iter().collect::<String>()
        }
        Edit::DropLine(i) => {
            lines.remove(i % n);
            lines.join("\n")
        }
        Edit::RepeatLine(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
            lines.join("\n")
        }
        Edit::SwapLines(a, b) => {
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Edit::ReplaceValue(i, v) => {
            let line = &mut lines[i % n];
            if let Some((key, _)) = line.split_once('=') {
                *line = format!("{key}= {v}");
            }
            lines.join("\n")
        }
    }
}

fn check_one_line(text: &str) {
    if let Err(e) = parse(text, "sluice.toml") {
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "more than one line: {msg:?}");
        assert!(msg.starts_with("sluice.toml"), "does not name the file: {msg}");
        assert!(!e.message().is_empty());
        if let Some(line) = e.line() {
            assert!(line >= 1 && line <= text.split('\n').count(), "line {line} past the end: {msg}");
        }
    }
}

proptest! {
    #[test]
    fn mutated_configurations_never_panic_and_err_on_one_line(
        base in prop_oneof![Just(EXAMPLE), Just(ISSUE), Just(MINIMAL)],
        edits in proptest::collection::vec(edit(), 1..5),
    ) {
        let mut text = base.to_owned();
        for e in &edits {
            text = apply(&text, e);
        }
        check_one_line(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_one_line(&text);
    }
}

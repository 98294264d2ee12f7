//! [`ConfigError`]: one line for a person, and the translation of toml's and serde's errors
//! (multi-line, with a caret, in Rust's words) into that line.

use std::fmt::{self, Write as _};
use std::ops::Range;
use toml::de::{DeTable, DeValue};

/// Why a configuration cannot be used. Its `Display` is one line:
/// `FILE[ line N]: WHAT`, where WHAT names the key (`service[0].backend[1].address`), the value
/// as written and what was expected, e.g.
/// `sluice.toml line 14: service[0].vip = "10.10.1.300:80": expected an address with a port,
/// like "10.10.1.100:80" or "[fd00::1]:80"`. The line is given whenever the key (or the
/// table holding it) is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    line: Option<usize>,
    path: String,
    message: String,
}

impl ConfigError {
    /// An error about `origin` (a file name, or what [`super::parse`] was given).
    pub(super) fn new(origin: &str, line: Option<usize>, problem: Problem) -> Self {
        Self { origin: origin.to_owned(), line, path: problem.path, message: problem.message }
    }

    /// The file (or the origin given to [`super::parse`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The line of the file the error is about (1-based), when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The key path the error is about (`service[0].backend[1].address`), empty when it is about
    /// the file as a whole.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the file and line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The process exit code a bad configuration calls for: 2, bad input.
    #[allow(clippy::unused_self)] // One code for every kind today; callers need not know that.
    pub fn exit_code(&self) -> std::process::ExitCode {
        std::process::ExitCode::from(2)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_one_line(f, &self.origin)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        f.write_str(": ")?;
        write_one_line(f, &self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Writes `s` with every control character (a newline above all) escaped, so the error stays
/// on one line whatever a file name or a quoted key holds.
fn write_one_line(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// A problem found in the file, before its name and line are attached: the key path it is
/// about (for the line and [`ConfigError::path`]) and the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    /// `PATH = VALUE: expected EXPECTED`; `value` is shown as TOML writes it.
    pub fn value(path: &str, value: &dyn fmt::Display, expected: &str) -> Self {
        Self { path: path.to_owned(), message: format!("{path} = {value}: expected {expected}") }
    }

    /// `PATH = "VALUE": expected EXPECTED`, for a string value.
    pub fn string(path: &str, value: &str, expected: &str) -> Self {
        Self::value(path, &Quoted(value), expected)
    }

    /// `PATH: WHAT`.
    pub fn key(path: &str, what: &str) -> Self {
        Self { path: path.to_owned(), message: format!("{path}: {what}") }
    }

    /// `WHAT` as given, about `path` (whose text WHAT includes where it wants it).
    pub fn raw(path: &str, message: String) -> Self {
        Self { path: path.to_owned(), message }
    }
}

/// The most characters of a value or key a message quotes: a 5 MB key is shown by its start.
const QUOTE_MAX: usize = 64;

/// `s` when short, else its first [`QUOTE_MAX`] characters and `…`.
pub(super) fn short(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(QUOTE_MAX) {
        None => std::borrow::Cow::Borrowed(s),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..at])),
    }
}

/// A string shown as in the file: in double quotes, escaped, at most [`QUOTE_MAX`] characters
/// of it.
pub(super) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", short(self.0))
    }
}

/// The top-level keys that are lists of tables (`[[port]]`); every other top-level table is
/// written once (`[device]`).
/// The top-level keys that are one table each (the others, like `port`, are lists of tables).
const SINGLE_TABLES: [&str; 7] = ["device", "control", "timeouts", "offload", "limits", "icmp", "host"];

/// `[[device]]` where `[device]` belongs: serde would read the list's first table as the
/// struct's first field and say "expected a string"; say what is wrong instead.
pub(super) fn tables_written_as_lists(
    origin: &str,
    text: &str,
    tree: &DeTable<'_>,
) -> Result<(), ConfigError> {
    for (key, value) in tree {
        let name = key.get_ref();
        if !SINGLE_TABLES.contains(&name.as_ref()) || value.get_ref().as_array().is_none() {
            continue;
        }
        let name = short(name);
        let problem = Problem::key(
            &name,
            &format!(
                "{name} is a table, written once as [{name}], not a list ([[{name}]] or {name} = [...])"
            ),
        );
        return Err(ConfigError::new(origin, Some(line_of(text, key.span().start)), problem));
    }
    Ok(())
}

/// The 1-based line of byte offset `pos` in `text`.
pub(super) fn line_of(text: &str, pos: usize) -> usize {
    let end = pos.min(text.len());
    text.as_bytes()[..end].split(|&b| b == b'\n').count()
}

/// A TOML syntax error: `invalid TOML: REASON`, with the line toml points at.
pub(super) fn syntax(origin: &str, text: &str, err: &toml::de::Error) -> ConfigError {
    let span = err.span();
    let mut reason = err.message().trim().to_owned();
    if reason == "duplicate key"
        && let Some(key) = span.as_ref().and_then(|s| snippet(text, s))
    {
        let key = if key.starts_with(['"', '\'']) { key } else { format!("{key:?}") };
        reason = format!("duplicate key {key} (each key once per table)");
    }
    let line = span.map(|s| line_of(text, s.start));
    ConfigError::new(origin, line, Problem::raw("", format!("invalid TOML: {reason}")))
}

/// A well-formed file whose keys or value types do not fit the schema (serde's error on the
/// raw structures): unknown keys, a string where a number goes, `[service]` for `[[service]]`.
pub(super) fn schema(origin: &str, text: &str, tree: &DeTable<'_>, err: &toml::de::Error) -> ConfigError {
    let span = err.span();
    let segs = span.as_ref().and_then(|s| path_at(tree, s.start)).unwrap_or_default();
    let path = format_path(&segs);
    let msg = err.message().trim();
    let value = span.as_ref().and_then(|s| snippet(text, s));
    let problem = if let Some(rest) = msg.strip_prefix("unknown field ") {
        unknown_key(&segs, rest)
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, "something else"));
        wrong_type(&segs, &path, found, expected, value.as_deref())
    } else if let Some(field) = msg.strip_prefix("missing field ") {
        Problem::key(&path, &format!("missing key {}", field.trim_matches('`')))
    } else if path.is_empty() {
        Problem::raw("", msg.to_owned())
    } else {
        match value {
            Some(v) => Problem::raw(&path, format!("{path} = {v}: {msg}")),
            None => Problem::key(&path, msg),
        }
    };
    ConfigError::new(origin, span.map(|s| line_of(text, s.start)), problem)
}

/// `unknown key "K" in TABLE (expected one of: A, B; did you mean "X"?)` from serde's
/// "`K`, expected `A` or `B`" (or "one of `A`, `B`, …", or "there are no fields").
fn unknown_key(segs: &[Seg], rest: &str) -> Problem {
    let (head, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    // A `[[table]]` header points at the list's item: the key is the list's.
    let mut segs = segs;
    while let Some((Seg::Index(_), parent)) = segs.split_last() {
        segs = parent;
    }
    let (key, table) = match segs.split_last() {
        Some((Seg::Key(k), parent)) => (k.clone(), parent),
        _ => (head.split('`').nth(1).unwrap_or(head).to_owned(), segs),
    };
    let table_path = format_path(table);
    let place = if table.is_empty() { "at the top level".to_owned() } else { format!("in {table_path}") };
    let mut message = format!("unknown key {:?} {place}", short(&key));
    if known.is_empty() {
        message.push_str(" (this table takes no keys)");
    } else {
        let _ = write!(message, " (expected one of: {}", known.join(", "));
        if table.is_empty() && key == "backend" {
            message.push_str("; a backend belongs to its service: write [[service.backend]] below it");
        } else if let Some(guess) = known.iter().find(|k| looks_like(&key, k)) {
            let _ = write!(message, "; did you mean {guess:?}?");
        }
        message.push(')');
    }
    Problem::raw(&table_path, message)
}

/// Whether `typo` is probably `key` misspelt: a plural, or at most two edits away.
fn looks_like(typo: &str, key: &str) -> bool {
    typo.strip_suffix('s') == Some(key) || (edit_distance(typo, key) <= 2 && key.len() > 3)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// `PATH = VALUE: expected WHAT` for a value of the wrong TOML type.
fn wrong_type(segs: &[Seg], path: &str, found: &str, expected: &str, value: Option<&str>) -> Problem {
    if found == "map"
        && expected == "a sequence"
        && let Some(Seg::Key(key)) = segs.last()
    {
        let header = if segs.len() == 1 { key.clone() } else { format!("service.{key}") };
        return Problem::key(
            path,
            &format!("expected a list of tables: write [[{header}]] for each one, not [{header}]"),
        );
    }
    let wanted = match expected {
        "i64" => "an integer".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" => "a string in double quotes".to_owned(),
        "a sequence" => "a list in brackets, like [\"…\"]".to_owned(),
        e if e.starts_with("struct ") => "a table".to_owned(),
        e => e.to_owned(),
    };
    match value {
        Some(v) if !path.is_empty() => Problem::raw(path, format!("{path} = {v}: expected {wanted}")),
        _ => Problem::key(path, &format!("expected {wanted}, found {found}")),
    }
}

/// The text of `span` as written, when it is short and on one line.
fn snippet(text: &str, span: &Range<usize>) -> Option<String> {
    let s = text.get(span.clone())?.trim();
    let first = s.lines().next().unwrap_or("");
    match () {
        () if s.is_empty() => None,
        () if first.len() == s.len() && s.chars().count() <= 80 => Some(s.to_owned()),
        () => Some(format!("{}…", first.chars().take(60).collect::<String>())),
    }
}

/// One step of a key path: a key or an index into a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// `service[0].backend[1].address`; keys that are not bare TOML keys are quoted.
pub(super) fn format_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare =
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(&short(k));
                } else {
                    let _ = write!(out, "{:?}", short(k));
                }
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// The deepest key path whose key, value or table header covers byte `pos`.
fn path_at(tree: &DeTable<'_>, pos: usize) -> Option<Vec<Seg>> {
    let mut best = None;
    let mut prefix = Vec::new();
    walk_table(tree, pos, &mut prefix, &mut best);
    best
}

fn covers(span: &Range<usize>, pos: usize) -> bool {
    span.contains(&pos) || (span.is_empty() && span.start == pos)
}

fn consider(prefix: &[Seg], best: &mut Option<Vec<Seg>>) {
    if best.as_ref().is_none_or(|b| prefix.len() > b.len()) {
        *best = Some(prefix.to_vec());
    }
}

fn walk_table(table: &DeTable<'_>, pos: usize, prefix: &mut Vec<Seg>, best: &mut Option<Vec<Seg>>) {
    for (key, value) in table {
        prefix.push(Seg::Key(key.get_ref().to_string()));
        if covers(&key.span(), pos) || covers(&value.span(), pos) {
            consider(prefix, best);
        }
        walk_value(value.get_ref(), pos, prefix, best);
        prefix.pop();
    }
}

fn walk_value(value: &DeValue<'_>, pos: usize, prefix: &mut Vec<Seg>, best: &mut Option<Vec<Seg>>) {
    match value {
        DeValue::Table(t) => walk_table(t, pos, prefix, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                if covers(&item.span(), pos) {
                    consider(prefix, best);
                }
                walk_value(item.get_ref(), pos, prefix, best);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// Where the key at `path` (as [`format_path`] writes it, bare keys only) starts in the file:
/// the key itself, or the nearest enclosing key or table header that is there (a missing
/// key's table). `None` when not even the first key is in the file.
pub(super) fn position_of(tree: &DeTable<'_>, path: &str) -> Option<usize> {
    let mut found = None;
    let mut table = Some(tree);
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let Some((k, mut v)) = table.and_then(|t| t.iter().find(|(k, _)| k.get_ref() == name)) else {
            break;
        };
        found = Some(k.span().start);
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let item = index.parse::<usize>().ok().and_then(|i| v.get_ref().as_array()?.get(i));
            let Some(item) = item else { return found };
            found = Some(item.span().start);
            v = item;
        }
        table = v.get_ref().as_table();
    }
    found
}

//! Pure model of `/proc/sys/kernel/core_pattern` as core(5) and fs/coredump.c define it: a file
//! template, a `|handler` pipe or an `@`/`@@` unix socket; the expansion of a template for known
//! process facts; and the search plan that finds a template's cores on disk. No I/O here.
//!
//! Kernel behaviour this mirrors (fs/coredump.c, `format_corename` / `coredump_parse`):
//! - an unknown `%X` consumes `X` and emits nothing (the `default:` case of the switch);
//!   a lone `%` at the very end is dropped;
//! - `%e`, `%h`, `%E`, `%f` go through `cn_esc_printf`: `/` becomes `!`, a bare `.`/`..` gets a
//!   leading `!`, and an empty value becomes `!`, so no expansion can add a path component;
//! - a pipe is split into argv on whitespace before expansion (kernels >= 5.3);
//! - `.PID` is appended only to file patterns without `%p` when `core_uses_pid` is set;
//! - socket paths are used verbatim (no expansion) and must be absolute, space-free, free of
//!   `..` and shorter than `sun_path`.

use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// `sizeof(sockaddr_un.sun_path)`; a socket path must be strictly shorter.
const UNIX_PATH_MAX: usize = 108;

/// One `%` specifier of core(5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Specifier {
    /// `%p`: thread-group id in the process's own pid namespace.
    Pid,
    /// `%P`: thread-group id in the initial pid namespace.
    GlobalPid,
    /// `%i`: id of the crashing thread in the process's pid namespace.
    Tid,
    /// `%I`: id of the crashing thread in the initial pid namespace.
    GlobalTid,
    /// `%u`: real uid.
    Uid,
    /// `%g`: real gid.
    Gid,
    /// `%d`: dump mode (`suid_dumpable` value that applied).
    DumpMode,
    /// `%s`: number of the signal that caused the dump.
    Signal,
    /// `%t`: time of the dump, seconds since the epoch.
    Time,
    /// `%h`: hostname (`uname -n`).
    Hostname,
    /// `%e`: comm, at most [`COMM_MAX_BYTES`] bytes.
    Comm,
    /// `%E`: executable path with every `/` replaced by `!`.
    ExePath,
    /// `%f`: executable file name.
    ExeName,
    /// `%c`: RLIMIT_CORE soft limit in bytes.
    CoreLimit,
    /// `%C`: CPU the task ran on (newer kernels).
    Cpu,
    /// `%F`: pidfd number; only pipes get one, elsewhere it expands to nothing.
    Pidfd,
    /// Any other `%X`: the kernel consumes `X` and emits nothing.
    Unknown(char),
    /// A lone `%` at the end of the pattern: dropped by the kernel.
    TrailingPercent,
}

impl Specifier {
    fn from_letter(c: char) -> Self {
        match c {
            'p' => Self::Pid,
            'P' => Self::GlobalPid,
            'i' => Self::Tid,
            'I' => Self::GlobalTid,
            'u' => Self::Uid,
            'g' => Self::Gid,
            'd' => Self::DumpMode,
            's' => Self::Signal,
            't' => Self::Time,
            'h' => Self::Hostname,
            'e' => Self::Comm,
            'E' => Self::ExePath,
            'f' => Self::ExeName,
            'c' => Self::CoreLimit,
            'C' => Self::Cpu,
            'F' => Self::Pidfd,
            other => Self::Unknown(other),
        }
    }

    /// The specifier as written in a pattern, e.g. `%p`.
    pub fn source(self) -> String {
        let letter = match self {
            Self::Pid => 'p',
            Self::GlobalPid => 'P',
            Self::Tid => 'i',
            Self::GlobalTid => 'I',
            Self::Uid => 'u',
            Self::Gid => 'g',
            Self::DumpMode => 'd',
            Self::Signal => 's',
            Self::Time => 't',
            Self::Hostname => 'h',
            Self::Comm => 'e',
            Self::ExePath => 'E',
            Self::ExeName => 'f',
            Self::CoreLimit => 'c',
            Self::Cpu => 'C',
            Self::Pidfd => 'F',
            Self::Unknown(c) => c,
            Self::TrailingPercent => return "%".to_string(),
        };
        format!("%{letter}")
    }

    /// Whether the kernel prints this specifier as a decimal number.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Pid
                | Self::GlobalPid
                | Self::Tid
                | Self::GlobalTid
                | Self::Uid
                | Self::Gid
                | Self::DumpMode
                | Self::Signal
                | Self::Time
                | Self::CoreLimit
                | Self::Cpu
                | Self::Pidfd
        )
    }

    /// A human placeholder such as `<pid>`; empty for specifiers that expand to nothing.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::Pid => "<pid>",
            Self::GlobalPid => "<global pid>",
            Self::Tid => "<tid>",
            Self::GlobalTid => "<global tid>",
            Self::Uid => "<uid>",
            Self::Gid => "<gid>",
            Self::DumpMode => "<dump mode>",
            Self::Signal => "<signal>",
            Self::Time => "<unix time>",
            Self::Hostname => "<hostname>",
            Self::Comm => "<comm>",
            Self::ExePath => "<exe path with ! for />",
            Self::ExeName => "<exe name>",
            Self::CoreLimit => "<core limit>",
            Self::Cpu => "<cpu>",
            Self::Pidfd => "<pidfd>",
            Self::Unknown(_) | Self::TrailingPercent => "",
        }
    }
}

/// A piece of a template: literal text (with `%%` already folded to `%`) or a specifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Token {
    /// Text copied as is.
    Literal(String),
    /// A `%` specifier.
    Spec(Specifier),
}

/// The kernel's file name for a core: relative to the crashing process's cwd, or absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileTemplate {
    /// The pattern, tokenized.
    pub tokens: Vec<Token>,
    /// Starts with `/`.
    pub absolute: bool,
    /// `core_uses_pid` is set and the pattern has no `%p`, so the kernel appends `.<pid>`.
    pub appends_pid: bool,
}

/// One part of a path component in a [`SearchPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobItem {
    /// Exactly this text.
    Literal(String),
    /// One or more ASCII digits (a numeric specifier).
    Digits(Specifier),
    /// One or more characters (a name specifier; never contains `/`).
    Name(Specifier),
}

/// Where to look for a file template's cores and how to recognise them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchPlan {
    /// Directory to search from.
    pub root: PathBuf,
    /// Cores may sit in any sub-directory of `root` (relative templates: the process's cwd).
    pub recursive: bool,
    /// Patterns for the trailing path components, the file name last.
    pub components: Vec<Vec<GlobItem>>,
}

/// A process the kernel runs for every core, fed the core on its standard input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PipeCommand {
    /// Each argument's template, split on whitespace before expansion; `argv[0]` is the handler.
    pub argv: Vec<Vec<Token>>,
    /// `argv[0]` as written.
    pub handler_path: String,
    /// What the handler is known to be.
    pub handler: KnownHandler,
}

/// Core handlers corecatch can explain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum KnownHandler {
    /// systemd's `systemd-coredump`.
    SystemdCoredump,
    /// Ubuntu's apport.
    Apport,
    /// Fedora/RHEL's ABRT (`abrt-hook-ccpp`).
    Abrt,
    /// IBM core-dump-handler and similar Kubernetes node agents.
    KubernetesAgent,
    /// `/bin/false`, `/bin/true`, `/dev/null`: the core is thrown away.
    Swallower,
    /// Anything else.
    Unknown {
        /// The handler path.
        path: String,
    },
}

/// A unix socket the kernel connects to and streams the core into (kernel 6.16+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SocketTarget {
    /// Socket path, used verbatim.
    pub path: String,
    /// `@@`: the kernel and the listener first exchange a request/ack (kernel 6.17+).
    pub request_protocol: bool,
    /// Why the kernel would refuse this path, if it would.
    pub problem: Option<String>,
}

/// What the kernel does with a core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PatternKind {
    /// Written to a file.
    File(FileTemplate),
    /// Piped to a handler.
    Pipe(PipeCommand),
    /// Streamed to a unix socket.
    Socket(SocketTarget),
    /// The kernel writes no core at all.
    Disabled {
        /// Why.
        reason: String,
    },
}

/// A parsed `core_pattern` together with `core_uses_pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorePattern {
    /// The pattern without the trailing newline.
    pub raw: String,
    /// `/proc/sys/kernel/core_uses_pid` was non-zero.
    pub core_uses_pid: bool,
    /// The parsed form.
    pub kind: PatternKind,
}

/// Everything `corecatch pattern` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The parsed pattern.
    pub pattern: CorePattern,
    /// [`CorePattern::describe`].
    pub description: String,
    /// [`CorePattern::warnings`].
    pub warnings: Vec<String>,
}

impl CorePattern {
    /// Parses the contents of `core_pattern` (a trailing newline is ignored). Never fails: a
    /// pattern the kernel cannot use becomes [`PatternKind::Disabled`].
    pub fn parse(pattern: &str, core_uses_pid: bool) -> CorePattern {
        let raw = pattern.trim_end_matches(['\n', '\r']).to_string();
        let kind = if let Some(rest) = raw.strip_prefix('|') {
            parse_pipe(rest)
        } else if let Some(rest) = raw.strip_prefix('@') {
            parse_socket(rest)
        } else if raw.is_empty() {
            PatternKind::Disabled {
                reason: "empty pattern: the kernel cannot create a file with an empty name".into(),
            }
        } else {
            let tokens = tokenize(&raw, false).into_iter().next().unwrap_or_default();
            let has_pid = tokens.contains(&Token::Spec(Specifier::Pid));
            PatternKind::File(FileTemplate {
                absolute: raw.starts_with('/'),
                appends_pid: core_uses_pid && !has_pid,
                tokens,
            })
        };
        CorePattern {
            raw,
            core_uses_pid,
            kind,
        }
    }

    /// The file template, if cores go to files.
    pub fn file(&self) -> Option<&FileTemplate> {
        match &self.kind {
            PatternKind::File(t) => Some(t),
            _ => None,
        }
    }

    /// One sentence for a human: where a core goes and how to get it.
    pub fn describe(&self) -> String {
        match &self.kind {
            PatternKind::File(t) if t.absolute => format!(
                "absolute file pattern: a core is written as {}",
                t.human_name()
            ),
            PatternKind::File(t) => format!(
                "relative file pattern: a core is written to the crashing process's working \
                 directory as {}",
                t.human_name()
            ),
            PatternKind::Pipe(p) => format!(
                "pipe to {}: the kernel runs `{}` and feeds it the core on standard input; {}",
                p.handler.name(),
                p.argv
                    .iter()
                    .map(|a| render_source(a))
                    .collect::<Vec<_>>()
                    .join(" "),
                p.handler.description()
            ),
            PatternKind::Socket(s) if s.request_protocol => format!(
                "socket with request protocol: the kernel (6.17+) connects to the unix socket {}, \
                 tells the listener what it supports and lets it choose to receive the core on \
                 the connection, read it itself, or reject the dump; where it ends up is the \
                 listener's choice",
                s.path
            ),
            PatternKind::Socket(s) => format!(
                "socket: the kernel (6.16+) connects to the unix socket {} and streams the core \
                 into the connection; where it ends up is the listener's choice",
                s.path
            ),
            PatternKind::Disabled { reason } => format!("no core is written: {reason}"),
        }
    }

    /// Things that may surprise someone looking for cores, as lowercase fragments.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tokens: Vec<&Token> = match &self.kind {
            PatternKind::File(t) => t.tokens.iter().collect(),
            PatternKind::Pipe(p) => p.argv.iter().flatten().collect(),
            _ => Vec::new(),
        };
        for token in tokens {
            match token {
                Token::Spec(Specifier::Unknown(c)) => out.push(format!(
                    "unknown specifier %{} expands to nothing",
                    c.escape_debug()
                )),
                Token::Spec(Specifier::TrailingPercent) => {
                    out.push("trailing lone % is dropped".into())
                }
                Token::Spec(Specifier::Pidfd) if self.file().is_some() => {
                    out.push("%F only means something for pipes and expands to nothing here".into())
                }
                _ => {}
            }
        }
        match &self.kind {
            PatternKind::File(t) => {
                if !t.absolute {
                    out.push(
                        "relative pattern: cores land in whatever directory the crashing process \
                         has as its working directory, and setuid dumps (dump mode 2) are skipped"
                            .into(),
                    );
                }
                if !t.appends_pid && !t.tokens.contains(&Token::Spec(Specifier::Pid)) {
                    out.push(
                        "no %p and core_uses_pid=0: concurrent crashes in one directory \
                         overwrite each other"
                            .into(),
                    );
                }
            }
            PatternKind::Pipe(p) => {
                out.push("pipe handler: no core file is written to the working directory".into());
                if p.handler == KnownHandler::Swallower {
                    out.push(format!("handler {} discards every core", p.handler_path));
                }
            }
            PatternKind::Socket(s) => {
                out.push(
                    "socket form: no core file is written; needs a listener and kernel 6.16+"
                        .into(),
                );
                if let Some(problem) = &s.problem {
                    out.push(format!("the kernel refuses this socket: {problem}"));
                }
            }
            PatternKind::Disabled { reason } => out.push(format!("no core is written: {reason}")),
        }
        out
    }

    /// Description and warnings together, for `corecatch pattern` (and `--json`).
    pub fn explain(&self) -> Explanation {
        Explanation {
            pattern: self.clone(),
            description: self.describe(),
            warnings: self.warnings(),
        }
    }
}

/// Splits a pattern into argument templates. Like the kernel, whitespace only separates
/// arguments when `split_ws` (pipes), and `%` always consumes the next character, even a space.
fn tokenize(s: &str, split_ws: bool) -> Vec<Vec<Token>> {
    fn push_literal(tokens: &mut Vec<Token>, c: char) {
        match tokens.last_mut() {
            Some(Token::Literal(text)) => text.push(c),
            _ => tokens.push(Token::Literal(c.to_string())),
        }
    }
    let mut args = Vec::new();
    let mut current = Vec::new();
    let mut started = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        // The kernel uses isspace(); non-ASCII bytes never split here (we work on chars).
        if split_ws && c.is_ascii_whitespace() {
            if started {
                args.push(std::mem::take(&mut current));
                started = false;
            }
            continue;
        }
        started = true;
        if c != '%' {
            push_literal(&mut current, c);
            continue;
        }
        match chars.next() {
            None => current.push(Token::Spec(Specifier::TrailingPercent)),
            Some('%') => push_literal(&mut current, '%'),
            // For a multi-byte char the kernel consumes one byte and copies the rest; we keep
            // the whole char as the unknown specifier, which only differs on invalid names.
            Some(letter) => current.push(Token::Spec(Specifier::from_letter(letter))),
        }
    }
    if started || args.is_empty() {
        args.push(current);
    }
    args
}

fn parse_pipe(rest: &str) -> PatternKind {
    let argv = tokenize(rest, true);
    let handler_path = argv.first().map(|a| render_source(a)).unwrap_or_default();
    if handler_path.is_empty() {
        return PatternKind::Disabled {
            reason: "pipe pattern without a handler".into(),
        };
    }
    let handler = KnownHandler::classify(&handler_path);
    PatternKind::Pipe(PipeCommand {
        argv,
        handler_path,
        handler,
    })
}

fn parse_socket(rest: &str) -> PatternKind {
    let (path, request_protocol) = match rest.strip_prefix('@') {
        Some(p) => (p, true),
        None => (rest, false),
    };
    if path.is_empty() {
        return PatternKind::Disabled {
            reason: "socket pattern without a socket path".into(),
        };
    }
    let problem = if !path.starts_with('/') {
        Some("socket path must be absolute")
    } else if path.contains(' ') {
        Some("socket path must not contain spaces")
    } else if path.split('/').any(|c| c == "..") {
        Some("socket path must not contain ..")
    } else if path.len() >= UNIX_PATH_MAX {
        Some("socket path is too long for a unix socket")
    } else {
        None
    };
    PatternKind::Socket(SocketTarget {
        path: path.to_string(),
        request_protocol,
        problem: problem.map(String::from),
    })
}

/// The template as a pattern string again (`%` literals doubled).
fn render_source(tokens: &[Token]) -> String {
    tokens
        .iter()
        .map(|t| match t {
            Token::Literal(text) => text.replace('%', "%%"),
            Token::Spec(s) => s.source(),
        })
        .collect()
}

impl FileTemplate {
    /// The name with `<placeholders>` for specifiers, e.g. `core.<pid>`.
    pub fn human_name(&self) -> String {
        let mut out: String = self
            .tokens
            .iter()
            .map(|t| match t {
                Token::Literal(text) => text.as_str(),
                Token::Spec(s) => s.placeholder(),
            })
            .collect();
        if self.appends_pid {
            out.push_str(".<pid>");
        }
        out
    }

    /// Path components as glob items; empty and `.` components vanish as they do in a path.
    fn components(&self) -> Vec<Vec<GlobItem>> {
        let mut comps: Vec<Vec<GlobItem>> = vec![Vec::new()];
        for token in &self.tokens {
            let item = match token {
                Token::Literal(text) => {
                    for (i, piece) in text.split('/').enumerate() {
                        if i > 0 {
                            comps.push(Vec::new());
                        }
                        if !piece.is_empty() {
                            push_item(&mut comps, GlobItem::Literal(piece.to_string()));
                        }
                    }
                    continue;
                }
                // These expand to nothing in a file name.
                Token::Spec(
                    Specifier::Pidfd | Specifier::Unknown(_) | Specifier::TrailingPercent,
                ) => continue,
                Token::Spec(s) if s.is_numeric() => GlobItem::Digits(*s),
                Token::Spec(s) => GlobItem::Name(*s),
            };
            push_item(&mut comps, item);
        }
        if self.appends_pid {
            push_item(&mut comps, GlobItem::Literal(".".into()));
            push_item(&mut comps, GlobItem::Digits(Specifier::Pid));
        }
        comps.retain(|c| !c.is_empty() && *c != [GlobItem::Literal(".".into())]);
        comps
    }

    /// Where to look for this template's cores. Absolute templates are searched from their
    /// longest specifier-free directory; relative ones from `cwd`, recursively, because a core
    /// lands in the crashing process's own working directory, which may be any sub-directory.
    pub fn search_plan(&self, cwd: &Path) -> SearchPlan {
        let mut components = self.components();
        if !self.absolute {
            return SearchPlan {
                root: cwd.to_path_buf(),
                recursive: true,
                components,
            };
        }
        let fixed = components
            .iter()
            .take(components.len().saturating_sub(1))
            .take_while(|c| matches!(c.as_slice(), [GlobItem::Literal(_)]))
            .count();
        let mut root = PathBuf::from("/");
        for comp in components.drain(..fixed) {
            if let [GlobItem::Literal(name)] = comp.as_slice() {
                root.push(name);
            }
        }
        SearchPlan {
            root,
            recursive: false,
            components,
        }
    }

    /// The directory a core lands in when that does not depend on the process: `Some` only for
    /// absolute templates without specifiers in their directory part.
    pub fn static_dir(&self) -> Option<PathBuf> {
        let plan = self.search_plan(Path::new("/"));
        (self.absolute && plan.components.len() == 1).then_some(plan.root)
    }
}

fn push_item(comps: &mut [Vec<GlobItem>], item: GlobItem) {
    if let Some(last) = comps.last_mut() {
        match (last.last_mut(), item) {
            (Some(GlobItem::Literal(prev)), GlobItem::Literal(next)) => prev.push_str(&next),
            (_, item) => last.push(item),
        }
    }
}

/// Matches one path component; returns the specifier captures. Backtracking with a memo of
/// failed (item, offset) states, so odd patterns stay polynomial.
fn match_component(items: &[GlobItem], name: &str) -> Option<Vec<(Specifier, String)>> {
    struct Matcher<'a> {
        items: &'a [GlobItem],
        name: &'a str,
        failed: Vec<bool>,
        min_len: Vec<usize>,
        // Byte ranges, turned into strings only once the whole component matched.
        captures: Vec<(Specifier, usize, usize)>,
    }
    impl Matcher<'_> {
        fn run(&mut self, item: usize, pos: usize) -> bool {
            let Some(current) = self.items.get(item) else {
                return pos == self.name.len();
            };
            let memo = item * (self.name.len() + 1) + pos;
            if self.failed.get(memo).copied().unwrap_or(false) {
                return false;
            }
            let rest = self.name.get(pos..).unwrap_or("");
            // Every item needs at least one byte, so a short rest fails without trying.
            if rest.len() < self.min_len.get(item).copied().unwrap_or(0) {
                return false;
            }
            let ok = match current {
                GlobItem::Literal(text) => {
                    rest.starts_with(text.as_str()) && self.run(item + 1, pos + text.len())
                }
                GlobItem::Digits(spec) => {
                    let max = rest.bytes().take_while(u8::is_ascii_digit).count();
                    self.try_lengths(item, pos, *spec, (1..=max).rev())
                }
                GlobItem::Name(spec) => {
                    let ends: Vec<usize> =
                        rest.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
                    self.try_lengths(item, pos, *spec, ends.into_iter().rev())
                }
            };
            if !ok {
                if let Some(slot) = self.failed.get_mut(memo) {
                    *slot = true;
                }
            }
            ok
        }

        fn try_lengths(
            &mut self,
            item: usize,
            pos: usize,
            spec: Specifier,
            lengths: impl Iterator<Item = usize>,
        ) -> bool {
            for len in lengths {
                self.captures.push((spec, pos, pos + len));
                if self.run(item + 1, pos + len) {
                    return true;
                }
                self.captures.pop();
            }
            false
        }
    }
    // min_len[i]: the fewest bytes items[i..] can match.
    let mut min_len = vec![0; items.len() + 1];
    for (i, item) in items.iter().enumerate().rev() {
        let own = match item {
            GlobItem::Literal(text) => text.len(),
            GlobItem::Digits(_) | GlobItem::Name(_) => 1,
        };
        min_len[i] = min_len[i + 1] + own;
    }
    let mut m = Matcher {
        items,
        name,
        min_len,
        failed: vec![false; (items.len() + 1) * (name.len() + 1)],
        captures: Vec::new(),
    };
    m.run(0, 0).then(|| {
        let text = |a: usize, b: usize| name.get(a..b).unwrap_or("").to_string();
        m.captures
            .iter()
            .map(|&(s, a, b)| (s, text(a, b)))
            .collect()
    })
}

impl SearchPlan {
    /// Whether `path` (relative to [`SearchPlan::root`]) is a core this plan describes.
    pub fn matches(&self, path: &Path) -> bool {
        self.captures(path).is_some()
    }

    /// The specifier values read back from a matching `path` (relative to the root).
    pub fn captures(&self, path: &Path) -> Option<Vec<(Specifier, String)>> {
        let mut parts = Vec::new();
        for comp in path.components() {
            match comp {
                Component::Normal(s) => parts.push(s.to_string_lossy()),
                Component::CurDir => {}
                _ => return None,
            }
        }
        let n = self.components.len();
        if n == 0 || parts.len() < n || (!self.recursive && parts.len() != n) {
            return None;
        }
        let tail = parts.get(parts.len() - n..)?;
        let mut captures = Vec::new();
        for (items, part) in self.components.iter().zip(tail) {
            captures.extend(match_component(items, part)?);
        }
        Some(captures)
    }
}

impl KnownHandler {
    /// Recognises a handler from its path (`argv[0]` of the pipe).
    pub fn classify(path: &str) -> KnownHandler {
        let base = path.rsplit('/').next().unwrap_or(path);
        match base {
            "systemd-coredump" => Self::SystemdCoredump,
            "apport" => Self::Apport,
            "abrt-hook-ccpp" => Self::Abrt,
            "false" | "true" => Self::Swallower,
            _ if path == "/dev/null" => Self::Swallower,
            "cdc" => Self::KubernetesAgent,
            _ if path.contains("core-dump-handler") || path.contains("composer") => {
                Self::KubernetesAgent
            }
            _ => Self::Unknown {
                path: path.to_string(),
            },
        }
    }

    /// A short name, e.g. `systemd-coredump`.
    pub fn name(&self) -> &str {
        match self {
            Self::SystemdCoredump => "systemd-coredump",
            Self::Apport => "apport",
            Self::Abrt => "abrt",
            Self::KubernetesAgent => "a kubernetes core dump agent",
            Self::Swallower => "a handler that discards cores",
            Self::Unknown { path } => path,
        }
    }

    /// Where this handler's cores end up and how to get them, in plain words.
    pub fn description(&self) -> String {
        match self {
            Self::SystemdCoredump => {
                "systemd-coredump stores cores under /var/lib/systemd/coredump \
                or in the journal, subject to coredump.conf limits; list them with `coredumpctl \
                list` and extract one with `coredumpctl dump PID -o FILE`; `corecatch run` and \
                `corecatch collect` read its store"
                    .into()
            }
            Self::Apport => "apport writes crash reports to /var/crash/*.crash, normally only for \
                packaged programs (cores of others may go to /var/lib/apport/coredump or be \
                dropped); `corecatch collect` takes the core out of the reports"
                .into(),
            Self::Abrt => "abrt keeps a problem directory per crash under /var/spool/abrt (or \
                /var/tmp/abrt) with a coredump file in it; list them with `abrt-cli list`"
                .into(),
            Self::KubernetesAgent => "a node agent (e.g. IBM core-dump-handler) collects the core \
                on the node, in the directory its arguments name, and usually uploads it to \
                object storage; fetch it from there, not from the container"
                .into(),
            Self::Swallower => {
                "the handler reads nothing and keeps nothing: every core is lost".into()
            }
            Self::Unknown { path } => format!(
                "{path} receives the core on standard input; where it keeps it depends on that \
                 program"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_name(p: &CorePattern) -> &'static str {
        match &p.kind {
            PatternKind::File(t) if t.absolute => "absolute",
            PatternKind::File(_) => "relative",
            PatternKind::Pipe(_) => "pipe",
            PatternKind::Socket(s) if s.request_protocol => "socket_request",
            PatternKind::Socket(_) => "socket",
            PatternKind::Disabled { .. } => "disabled",
        }
    }

    struct Case {
        pattern: &'static str,
        uses_pid: bool,
        kind: &'static str,
        root: &'static str,
        matches: &'static [&'static str],
        rejects: &'static [&'static str],
    }

    const CASES: &[Case] = &[
        Case {
            pattern: "core\n",
            uses_pid: false,
            kind: "relative",
            root: "/work",
            matches: &["core", "sub/dir/core"],
            rejects: &["core.1234", "cores", "xcore"],
        },
        Case {
            pattern: "core\n",
            uses_pid: true,
            kind: "relative",
            root: "/work",
            matches: &["core.1234", "a/core.99"],
            rejects: &["core", "core.x", "core.12a"],
        },
        Case {
            pattern: "core.%p.%E",
            uses_pid: true,
            kind: "relative",
            root: "/work",
            matches: &["core.1234.!tmp!x!dump", "t/core.1.x"],
            rejects: &["core.txt", "core.1234", "core.1234.", "core..x"],
        },
        Case {
            pattern: "cores/%e",
            uses_pid: false,
            kind: "relative",
            root: "/work",
            matches: &["cores/x", "a/b/cores/dump"],
            rejects: &["x", "cores", "other/x"],
        },
        Case {
            pattern: "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E\n",
            uses_pid: false,
            kind: "pipe",
            root: "",
            matches: &[],
            rejects: &[],
        },
        Case {
            pattern: "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h",
            uses_pid: true,
            kind: "pipe",
            root: "",
            matches: &[],
            rejects: &[],
        },
        Case {
            pattern: "|/root/.core-dump-handler/cdc -c=%c -e=%e -p=%p -s=%s -t=%t \
                      -d=/var/mnt/core-dump-handler/cores -h=%h -E=%E",
            uses_pid: false,
            kind: "pipe",
            root: "",
            matches: &[],
            rejects: &[],
        },
        Case {
            pattern: "/cores/%e.%p.%t",
            uses_pid: true,
            kind: "absolute",
            root: "/cores",
            matches: &["dump.1234.1700000000", "a.b.1.2"],
            rejects: &["dump.1234", "sub/dump.1.2", "dump.x.1"],
        },
        Case {
            pattern: "/var/crash/%u/core.%p",
            uses_pid: false,
            kind: "absolute",
            root: "/var/crash",
            matches: &["1000/core.1234", "0/core.1"],
            rejects: &["core.1234", "x/core.1234", "1000/core.1234.gz"],
        },
        Case {
            pattern: "/var/crash/core",
            uses_pid: true,
            kind: "absolute",
            root: "/var/crash",
            matches: &["core.1234"],
            rejects: &["core", "a/core.1234"],
        },
        Case {
            pattern: "@/run/coredump.socket",
            uses_pid: false,
            kind: "socket",
            root: "",
            matches: &[],
            rejects: &[],
        },
        Case {
            pattern: "@@/run/coredump.socket\n",
            uses_pid: false,
            kind: "socket_request",
            root: "",
            matches: &[],
            rejects: &[],
        },
        Case {
            pattern: "core.%Z.%p",
            uses_pid: false,
            kind: "relative",
            root: "/work",
            matches: &["core..1234"],
            rejects: &["core.Z.1234"],
        },
        Case {
            pattern: "core.%%.%p",
            uses_pid: false,
            kind: "relative",
            root: "/work",
            matches: &["core.%.77"],
            rejects: &["core.%%.77", "core.x.77"],
        },
    ];

    #[test]
    fn real_patterns() {
        for case in CASES {
            let p = CorePattern::parse(case.pattern, case.uses_pid);
            assert_eq!(kind_name(&p), case.kind, "{}", case.pattern);
            assert!(!p.describe().is_empty());
            let Some(t) = p.file() else { continue };
            let plan = t.search_plan(Path::new("/work"));
            assert_eq!(plan.root, Path::new(case.root), "{}", case.pattern);
            assert_eq!(plan.recursive, !t.absolute);
            for m in case.matches {
                assert!(
                    plan.matches(Path::new(m)),
                    "{} should match {m}",
                    case.pattern
                );
            }
            for r in case.rejects {
                assert!(
                    !plan.matches(Path::new(r)),
                    "{} should reject {r}",
                    case.pattern
                );
            }
        }
    }

    #[test]
    fn handlers_are_classified() {
        let table = [
            (
                "/usr/lib/systemd/systemd-coredump",
                KnownHandler::SystemdCoredump,
            ),
            (
                "/lib/systemd/systemd-coredump",
                KnownHandler::SystemdCoredump,
            ),
            ("/usr/share/apport/apport", KnownHandler::Apport),
            ("/usr/libexec/abrt-hook-ccpp", KnownHandler::Abrt),
            (
                "/root/.core-dump-handler/cdc",
                KnownHandler::KubernetesAgent,
            ),
            ("/opt/composer/bin/handler", KnownHandler::KubernetesAgent),
            ("/bin/false", KnownHandler::Swallower),
            ("/bin/true", KnownHandler::Swallower),
            ("/dev/null", KnownHandler::Swallower),
        ];
        for (path, want) in table {
            assert_eq!(KnownHandler::classify(path), want, "{path}");
        }
        assert_eq!(
            KnownHandler::classify("/usr/bin/mine"),
            KnownHandler::Unknown {
                path: "/usr/bin/mine".into()
            }
        );
        let p = CorePattern::parse("|/usr/lib/systemd/systemd-coredump %P", false);
        assert!(p.describe().starts_with("pipe to systemd-coredump:"));
        assert!(p.describe().contains("coredumpctl dump PID -o FILE"));
        let w = CorePattern::parse("|/bin/false", false).warnings();
        assert!(w.iter().any(|w| w.contains("discards every core")), "{w:?}");
    }

    #[test]
    fn describes_in_plain_words() {
        let p = CorePattern::parse("core.%p.%E", false);
        assert_eq!(
            p.describe(),
            "relative file pattern: a core is written to the crashing process's working \
             directory as core.<pid>.<exe path with ! for />"
        );
        let p = CorePattern::parse("core", true);
        assert!(p.describe().ends_with("as core.<pid>"));
        let w = CorePattern::parse("core", false).warnings();
        assert!(
            w.iter().any(|w| w.contains("overwrite each other")),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.starts_with("relative pattern")), "{w:?}");
        let w = CorePattern::parse("/c/core.%Z%", true).warnings();
        assert_eq!(
            w,
            [
                "unknown specifier %Z expands to nothing",
                "trailing lone % is dropped"
            ]
        );
        let w = CorePattern::parse("@@/run/c.sock", false).warnings();
        assert!(w[0].starts_with("socket form"), "{w:?}");
        for (bad, why) in [
            ("@run/c", "absolute"),
            ("@/run/a b", "spaces"),
            ("@/run/../c", ".."),
        ] {
            let w = CorePattern::parse(bad, false).warnings();
            assert!(w.iter().any(|w| w.contains(why)), "{bad}: {w:?}");
        }
        let long = format!("@/{}", "s".repeat(200));
        assert!(CorePattern::parse(&long, false).warnings()[1].contains("too long"));
    }

    #[test]
    fn pipe_handler_is_the_first_word() {
        let p = CorePattern::parse("|  /h  %e\t%% x%Y  % y %F", false);
        let PatternKind::Pipe(c) = &p.kind else {
            panic!("not a pipe")
        };
        assert_eq!(c.handler_path, "/h");
    }

    #[test]
    fn nested_and_static_dirs() {
        let t = |s: &str, pid| CorePattern::parse(s, pid).file().cloned();
        let nested = t("/var/crash/%u/core.%p", false);
        let plan = nested.as_ref().map(|t| t.search_plan(Path::new("/")));
        assert!(plan.is_some_and(|p| p.matches(Path::new("1000/core.42"))));
        assert_eq!(nested.and_then(|t| t.static_dir()), None);
        let flat = t("/cores//./%e.%p", false).and_then(|t| t.static_dir());
        assert_eq!(flat, Some(PathBuf::from("/cores")));
        assert_eq!(t("core", false).and_then(|t| t.static_dir()), None);
        assert_eq!(
            t("/%h/core", false).map(|t| t.search_plan(Path::new("/w")).root),
            Some(PathBuf::from("/"))
        );
    }

    #[test]
    fn odd_inputs_never_panic() {
        let lossy = String::from_utf8_lossy(b"core.\xff\xfe%\xc3").into_owned();
        let long_specs = "%e".repeat(2000);
        let long_text = "a/".repeat(5000);
        // Many wildcards before a literal that never matches: must not backtrack exponentially.
        let wildcards = format!("{}.", "%e".repeat(60));
        let odd = [
            "",
            "%",
            "%%",
            "core%",
            "|",
            "| ",
            "|%",
            "@",
            "@@",
            "@@@",
            "/",
            "//",
            "\n",
            "%\n",
            "% ",
            "|/bin/x %",
            lossy.as_str(),
            long_specs.as_str(),
            long_text.as_str(),
            wildcards.as_str(),
        ];
        let name = "x".repeat(300);
        for s in odd {
            for uses_pid in [false, true] {
                let p = CorePattern::parse(s, uses_pid);
                let e = p.explain();
                assert!(!e.description.is_empty());
                assert!(serde_json::to_string(&e).is_ok());
                if let Some(t) = p.file() {
                    let plan = t.search_plan(Path::new("/w"));
                    let _ = plan.matches(Path::new(&name));
                    let _ = plan.matches(Path::new("/abs/core"));
                    let _ = plan.matches(Path::new("../core"));
                    let _ = t.static_dir();
                }
            }
        }
        assert_eq!(kind_name(&CorePattern::parse("", false)), "disabled");
        assert_eq!(kind_name(&CorePattern::parse("|", false)), "disabled");
        assert_eq!(kind_name(&CorePattern::parse("@", false)), "disabled");
        assert_eq!(kind_name(&CorePattern::parse("@@", false)), "disabled");
    }

    #[test]
    fn json_is_stable_snake_case() {
        let p = CorePattern::parse("core.%p", true);
        let json = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(json["kind"]["kind"], "file");
        assert_eq!(json["kind"]["appends_pid"], false);
        assert_eq!(json["kind"]["tokens"][1]["spec"], "pid");
        let p = CorePattern::parse("|/usr/share/apport/apport %p", false);
        let json = serde_json::to_value(p.explain()).unwrap_or_default();
        assert_eq!(json["pattern"]["kind"]["handler"]["name"], "apport");
        assert_eq!(json["pattern"]["core_uses_pid"], false);
    }
}

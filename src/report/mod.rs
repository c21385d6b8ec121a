//! The crash report: an owned data model (no borrowed parser types) built from a parsed core, and
//! its renderers (`text`, `json`) writing to any `impl Write`.
//!
//! The JSON field names are a contract (`corecatch.report.v1`): later versions add fields, never
//! rename them. Unknown values are `null`; addresses are lowercase `0x` hex strings.

pub mod github;
pub mod html;
pub mod junit;
pub mod signals;
pub mod signature;
pub mod text;

use crate::elf_core::Core;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const SCHEMA: &str = "corecatch.report.v1";

/// `&'static str`, spelled so that serde's derive does not borrow it from the input (it would
/// then deserialize only from `'static` data); [`de_schema`] returns [`SCHEMA`].
type StaticStr = &'static str;

/// Everything corecatch knows about one crash. Deserializing reads back a `<stem>.json` this
/// version wrote (the artifacts page is rebuilt from the reports its directory holds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    #[serde(deserialize_with = "de_schema")]
    pub schema: StaticStr,
    pub core: CoreFile,
    pub process: Process,
    /// What `--scrub-env` and `--scrub-args` replaced in the core before this report was made
    /// from it; absent when neither was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrubbed: Option<Scrubbed>,
    pub signal: Option<SignalInfo>,
    /// glibc's assertion (or abort) message when the core holds one.
    pub abort_message: Option<String>,
    /// A stable hash of the crashed thread's innermost own frames ([`signature`]): the same bug
    /// has the same signature across runs, machines and rebuilds.
    pub signature: Option<String>,
    pub crashed_tid: Option<i32>,
    /// The crashed thread first, then the others in the core's order.
    pub threads: Vec<Thread>,
    pub modules: Vec<Module>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoreFile {
    pub path: String,
    pub bytes: u64,
    pub machine: String,
    /// Bytes in an address of the crashed process (4 for i386, arm, x32...): addresses are
    /// printed with twice as many hex digits, as gdb prints them.
    #[serde(default = "default_address_size")]
    pub address_size: u8,
    /// The pipe handler the core was read back from, when it did not come straight from the
    /// kernel or corecatch's own capture; `path` is then corecatch's temporary copy.
    pub from: Option<CoreOrigin>,
}

fn default_address_size() -> u8 {
    8
}

/// Where a core handed over by a pipe handler was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreOrigin {
    /// `systemd-coredump` or `apport`.
    pub handler: String,
    /// The handler's file (a store entry, a `.crash` report), or how it was asked
    /// (`coredumpctl dump PID`).
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub pid: Option<i32>,
    pub executable: Option<String>,
    pub cmdline: Vec<String>,
    pub ppid: Option<i32>,
    pub uid: Option<u32>,
}

/// What was scrubbed in the core: names and counts only, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scrubbed {
    /// `--scrub-env`: the variables whose values were replaced by `*`; `null` without it.
    pub env: Option<Vec<String>>,
    /// `--scrub-args`: how many arguments (after argv[0]) were replaced; `null` without it.
    pub args: Option<usize>,
    /// Copies of pieces of those strings found (in the threads' registers and stacks) and
    /// replaced the same way.
    #[serde(default)]
    pub fragments: usize,
    /// What was asked for but could not be found in the core, so is not scrubbed, in words.
    #[serde(default)]
    pub not_scrubbed: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignalInfo {
    pub number: i32,
    pub name: Option<&'static str>,
    pub code: Option<i32>,
    pub code_name: Option<&'static str>,
    #[serde(serialize_with = "hex_opt")]
    pub address: Option<u64>,
    /// The sending process for signals sent with kill/tgkill (`abort()` sends SIGABRT to itself).
    pub sender_pid: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Thread {
    pub tid: i32,
    pub crashed: bool,
    pub frames: Vec<Frame>,
    /// Why the stack walk ended; `null` when no walk was made.
    pub stop_reason: Option<String>,
    /// General-purpose registers in the kernel's order, as hex strings.
    #[serde(
        serialize_with = "ordered_hex_map",
        deserialize_with = "de_ordered_hex_map"
    )]
    pub registers: Vec<(String, u64)>,
}

/// One frame, innermost first as gdb numbers them. Each inlined call is its own frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    #[serde(serialize_with = "hex", deserialize_with = "de_hex")]
    pub pc: u64,
    pub module: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub inlined: bool,
    /// How the frame was found: `context` (the thread's registers), `cfi`, `frame_pointer`,
    /// `signal_context`; `null` for inlined frames, which share their physical frame's.
    #[serde(deserialize_with = "de_trust")]
    pub trust: Option<crate::backtrace::FrameTrust>,
    /// The function's arguments (`null` without DWARF for the frame, `[]` when it has none).
    #[serde(default)]
    pub args: Option<Vec<crate::backtrace::Variable>>,
    /// Its locals, innermost block first; `null` where not read (no DWARF, or a thread whose
    /// locals were not asked for).
    #[serde(default)]
    pub locals: Option<Vec<crate::backtrace::Variable>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Module {
    pub path: String,
    #[serde(serialize_with = "hex", deserialize_with = "de_hex")]
    pub start: u64,
    #[serde(serialize_with = "hex", deserialize_with = "de_hex")]
    pub end: u64,
    pub build_id: Option<String>,
    pub debug_file: Option<String>,
    /// The file read for it on the machine that made the report (what a debug bundle takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Whether that file could be used (`loaded`, `not_found`, `build_id_mismatch`); absent in
    /// reports made before symbolization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::backtrace::ModuleStatus>,
}

/// [`SignalInfo`] as its JSON holds it; the names are looked up again from the numbers (they
/// are `&'static str` in the model).
#[derive(Deserialize)]
struct SignalWire {
    number: i32,
    code: Option<i32>,
    #[serde(deserialize_with = "de_hex_opt")]
    address: Option<u64>,
    sender_pid: Option<i32>,
}

impl<'de> Deserialize<'de> for SignalInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SignalInfo, D::Error> {
        SignalWire::deserialize(d).map(SignalInfo::from)
    }
}

impl From<SignalWire> for SignalInfo {
    fn from(w: SignalWire) -> SignalInfo {
        SignalInfo {
            number: w.number,
            name: signals::name(w.number),
            code: w.code,
            code_name: w.code.and_then(|c| signals::code_name(w.number, c)),
            address: w.address,
            sender_pid: w.sender_pid,
        }
    }
}

/// Why a stack walk ended, in words.
pub fn stop_words(s: crate::backtrace::StopReason) -> &'static str {
    use crate::backtrace::StopReason::*;
    match s {
        EndOfStack => "end of stack",
        Loop => "the stack pointer did not advance (a loop)",
        FrameLimit => "frame limit reached (--max-frames)",
        UnreadableStack => "the caller's frame is in memory the core does not hold",
        MissingRegisters => "the caller's frame is found from registers the core does not hold",
        NoUnwindInfo => "no unwind information and no usable frame pointer",
        Timeout => "time limit reached (--timeout)",
        NoRegisters => "the thread has no registers in the core",
        UnsupportedArch => "no unwinder for this architecture",
    }
}

fn hex<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

fn hex_opt<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex(v, s),
        None => s.serialize_none(),
    }
}

fn parse_hex<E: serde::de::Error>(s: &str) -> Result<u64, E> {
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| E::custom(format!("{s:?} is not 0x hex")))?;
    u64::from_str_radix(digits, 16).map_err(|_| E::custom(format!("{s:?} is not 0x hex")))
}

fn de_hex<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    parse_hex(&String::deserialize(d)?)
}

fn de_hex_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_hex(&s))
        .transpose()
}

fn de_schema<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    if s != SCHEMA {
        return Err(serde::de::Error::custom(format!(
            "schema {s:?}, expected {SCHEMA:?}"
        )));
    }
    Ok(SCHEMA)
}

fn de_trust<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<crate::backtrace::FrameTrust>, D::Error> {
    use crate::backtrace::FrameTrust::*;
    Ok(match Option::<String>::deserialize(d)?.as_deref() {
        Some("context") => Some(Context),
        Some("cfi") => Some(Cfi),
        Some("frame_pointer") => Some(FramePointer),
        Some("signal_context") => Some(SignalContext),
        Some("tail_call") => Some(TailCall),
        _ => None,
    })
}

/// The registers map in its JSON order.
fn de_ordered_hex_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, u64)>, D::Error> {
    struct Ordered;
    impl<'de> serde::de::Visitor<'de> for Ordered {
        type Value = Vec<(String, u64)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of register names to 0x hex strings")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut v = Vec::new();
            while let Some((k, val)) = m.next_entry::<String, String>()? {
                v.push((k, parse_hex(&val)?));
            }
            Ok(v)
        }
    }
    d.deserialize_map(Ordered)
}

fn ordered_hex_map<S: Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for (k, val) in v {
        m.serialize_entry(k, &format!("{val:#x}"))?;
    }
    m.end()
}

impl Report {
    /// What the core's own notes say: process, signal, threads and registers, and the mapped
    /// files as modules. Frames are filled in by the symbolizer.
    pub fn from_core(core: &Core<'_>, path: &str) -> Report {
        let crashed_tid = core.crashed_thread().map(|t| t.tid);
        let start = core.start_info();
        let ps = core.process.as_ref();
        let cmdline = match (&start, ps) {
            (Some(s), _) if !s.argv.is_empty() => s.argv.clone(),
            // pr_psargs is the command line space-joined and cut at 80 bytes: the best we have.
            (_, Some(p)) => p.psargs.split(' ').map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let signal = core.signal().map(|number| {
            let si = core.siginfo.as_ref().filter(|s| s.signo == number);
            SignalInfo {
                number,
                name: signals::name(number),
                code: si.map(|s| s.code),
                code_name: si.and_then(|s| signals::code_name(number, s.code)),
                address: si.and_then(|s| s.addr),
                sender_pid: si.and_then(|s| s.sender).map(|(pid, _)| pid),
            }
        });
        let mut threads: Vec<Thread> = core
            .threads
            .iter()
            .map(|t| Thread {
                tid: t.tid,
                crashed: Some(t.tid) == crashed_tid,
                frames: Vec::new(),
                stop_reason: None,
                registers: t
                    .registers
                    .as_ref()
                    .map(|r| r.values.iter().map(|&(n, v)| (n.to_string(), v)).collect())
                    .unwrap_or_default(),
            })
            .collect();
        threads.sort_by_key(|t| !t.crashed); // stable: crashed first, others in core order
        let mut modules: Vec<Module> = Vec::new();
        for f in &core.files {
            match modules.iter_mut().find(|m| m.path == f.path) {
                Some(m) => {
                    m.start = m.start.min(f.start);
                    m.end = m.end.max(f.end);
                }
                None => modules.push(Module {
                    path: f.path.clone(),
                    start: f.start,
                    end: f.end,
                    build_id: None,
                    debug_file: None,
                    file: None,
                    status: None,
                }),
            }
        }
        Report {
            schema: SCHEMA,
            core: CoreFile {
                path: path.to_string(),
                bytes: core.size,
                machine: core
                    .machine
                    .name(core.is_64, core.endian == crate::elf_core::Endian::Big),
                address_size: if core.is_64 && core.machine != crate::elf_core::Machine::X32 {
                    8
                } else {
                    4
                },
                from: None,
            },
            process: Process {
                pid: ps.map(|p| p.pid).or(crashed_tid),
                executable: core.executable(),
                cmdline,
                ppid: ps.map(|p| p.ppid),
                uid: ps.map(|p| p.uid),
            },
            scrubbed: None,
            signal,
            abort_message: None,
            signature: None,
            crashed_tid,
            threads,
            modules,
            warnings: core.warnings.clone(),
        }
    }

    /// Fill in frames, module build-ids and debug files, and the walk's warnings from the
    /// symbolizer's result.
    pub fn add_backtraces(&mut self, bt: crate::backtrace::Backtraces) {
        for tb in bt.threads {
            let Some(t) = self.threads.iter_mut().find(|t| t.tid == tb.tid) else {
                continue;
            };
            t.stop_reason = Some(stop_words(tb.stop).to_string());
            t.frames = tb
                .frames
                .into_iter()
                .map(|f| Frame {
                    pc: f.pc,
                    module: f.module,
                    // gdb's name for the sigreturn trampoline's frame.
                    function: if f.signal_trampoline {
                        Some("<signal handler called>".into())
                    } else {
                        f.function
                    },
                    file: f.file,
                    line: f.line,
                    column: f.column,
                    inlined: f.inlined,
                    trust: (!f.inlined).then_some(f.trust),
                    args: f.args,
                    locals: f.locals,
                })
                .collect();
        }
        self.modules = bt
            .modules
            .into_iter()
            .map(|m| Module {
                path: m.path,
                start: m.start,
                end: m.end,
                build_id: m.build_id,
                debug_file: m.debug_file,
                file: m.file,
                status: Some(m.status),
            })
            .collect();
        self.warnings.extend(bt.warnings);
        self.abort_message = bt.abort_message;
        self.signature = signature::signature(self);
    }

    /// Record what was scrubbed in the core this report was made from: the command line then
    /// shows `***` for each scrubbed argument (not `*` of its length, as the core holds it), and
    /// whatever could not be scrubbed is a warning too.
    pub fn record_scrub(&mut self, s: Scrubbed) {
        if s.args.is_some() {
            for a in self.process.cmdline.iter_mut().skip(1) {
                *a = "***".into();
            }
        }
        for m in &s.not_scrubbed {
            self.warnings.push(format!("{m}: not scrubbed"));
        }
        self.scrubbed = Some(s);
    }

    /// The report as pretty JSON.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, self)?;
        writeln!(w)
    }

    /// One line naming the crash: `pid 1907 (/tmp/dump) killed by SIGABRT`.
    pub fn headline(&self) -> String {
        let pid = self.process.pid.map_or("?".into(), |p| p.to_string());
        let exe = self
            .process
            .executable
            .as_deref()
            .unwrap_or("unknown executable");
        match &self.signal {
            Some(s) => format!(
                "pid {pid} ({exe}) killed by {} ({})",
                s.name.unwrap_or("signal"),
                s.number
            ),
            None => format!("pid {pid} ({exe}), no fatal signal recorded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report read back from its JSON (the page of a shared artifacts directory does that)
    /// renders the same JSON again.
    #[test]
    fn json_round_trip() {
        let r = report();
        let mut json = Vec::new();
        r.write_json(&mut json).unwrap();
        let back: Report = serde_json::from_slice(&json).unwrap();
        let mut again = Vec::new();
        back.write_json(&mut again).unwrap();
        assert_eq!(
            String::from_utf8(again).unwrap(),
            String::from_utf8(json).unwrap()
        );
        assert_eq!(back.signal.unwrap().name, Some("SIGSEGV"));

        let other = String::from_utf8(json_of(&r))
            .unwrap()
            .replace(SCHEMA, "corecatch.report.v9");
        assert!(serde_json::from_str::<Report>(&other).is_err());
    }

    fn report() -> Report {
        Report {
            schema: SCHEMA,
            core: CoreFile {
                path: "/tmp/core".into(),
                bytes: 4096,
                machine: "x86_64".into(),
                address_size: 8,
                from: Some(CoreOrigin {
                    handler: "apport".into(),
                    path: "/var/crash/x.crash".into(),
                }),
            },
            process: Process {
                pid: Some(7),
                executable: Some("/bin/x".into()),
                cmdline: vec!["x".into(), "a b".into()],
                ppid: Some(1),
                uid: Some(0),
            },
            scrubbed: Some(Scrubbed {
                env: Some(vec!["TOKEN".into()]),
                args: None,
                fragments: 1,
                not_scrubbed: Vec::new(),
            }),
            signal: Some(SignalInfo {
                number: 11,
                name: signals::name(11),
                code: Some(1),
                code_name: signals::code_name(11, 1),
                address: Some(0xdead_beef),
                sender_pid: None,
            }),
            abort_message: Some("boom".into()),
            signature: Some("abc".into()),
            crashed_tid: Some(7),
            threads: vec![Thread {
                tid: 7,
                crashed: true,
                frames: vec![Frame {
                    pc: u64::MAX,
                    module: Some("/bin/x".into()),
                    function: Some("main".into()),
                    file: Some("x.c".into()),
                    line: Some(u32::MAX),
                    column: Some(3),
                    inlined: false,
                    trust: Some(crate::backtrace::FrameTrust::SignalContext),
                    args: None,
                    locals: None,
                }],
                stop_reason: Some("end of stack".into()),
                registers: vec![("rip".into(), 0x10), ("rax".into(), 0), ("r8".into(), 2)],
            }],
            modules: vec![Module {
                path: "/bin/x".into(),
                start: 0x1000,
                end: 0x2000,
                build_id: None,
                debug_file: None,
                file: None,
                status: None,
            }],
            warnings: vec!["w".into()],
        }
    }

    fn json_of(r: &Report) -> Vec<u8> {
        let mut v = Vec::new();
        r.write_json(&mut v).unwrap();
        v
    }

    /// Issue 14's shape: `args` and `locals` as lists of `{name, type, value}`, `aggregate` only
    /// when true, `null` where not read and `[]` where there are none; and a report written
    /// before the fields existed still reads (v1 only gains fields).
    #[test]
    fn args_and_locals_json_shape() {
        use crate::backtrace::Variable;
        use serde_json::{json, Value};
        let var = |name: &str, type_name: &str, value: &str, aggregate| Variable {
            name: name.into(),
            type_name: type_name.into(),
            value: value.into(),
            aggregate,
        };
        let mut r = report();
        let f = &mut r.threads[0].frames[0];
        f.args = Some(vec![var("head", "struct node *", "0x7ffd180af4b0", false)]);
        f.locals = Some(vec![var("b", "struct node", "{next = 0x0, v = 40}", true)]);
        let mut main = r.threads[0].frames[0].clone();
        main.args = Some(vec![]);
        main.locals = None;
        r.threads[0].frames.push(main);

        let v: Value = serde_json::from_slice(&json_of(&r)).unwrap();
        let frames = &v["threads"][0]["frames"];
        assert_eq!(
            serde_json::to_string(&frames[0]["args"]).unwrap(),
            r#"[{"name":"head","type":"struct node *","value":"0x7ffd180af4b0"}]"#
        );
        assert_eq!(
            frames[0]["locals"],
            json!([{"name": "b", "type": "struct node", "value": "{next = 0x0, v = 40}",
                    "aggregate": true}])
        );
        assert_eq!(frames[1]["args"], json!([]));
        assert_eq!(frames[1]["locals"], Value::Null);
        assert!(frames[1].as_object().unwrap().contains_key("locals"));

        // Read back: the same model.
        let back: Report = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.threads[0].frames[0].args, r.threads[0].frames[0].args);
        assert_eq!(
            back.threads[0].frames[0].locals,
            r.threads[0].frames[0].locals
        );
        assert_eq!(back.threads[0].frames[1].args, Some(vec![]));
        assert_eq!(back.threads[0].frames[1].locals, None);

        // A report from before issue 14: no `args`, no `locals`, no `aggregate`.
        let mut old = v;
        for f in old["threads"][0]["frames"].as_array_mut().unwrap() {
            let f = f.as_object_mut().unwrap();
            f.remove("args");
            f.remove("locals");
        }
        let old: Report = serde_json::from_value(old).unwrap();
        assert!(old.threads[0]
            .frames
            .iter()
            .all(|f| f.args.is_none() && f.locals.is_none()));
        let no_aggregate: Variable =
            serde_json::from_str(r#"{"name": "x", "type": "int", "value": "1"}"#).unwrap();
        assert!(!no_aggregate.aggregate);
    }
}

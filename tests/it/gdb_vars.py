# gdb's own answer for the arguments and locals of every frame of every thread of a core, as
# one JSON line after "GDBVARS: ", for tests/it/vars.rs. Run as
#   gdb -batch -nx -ex 'set debuginfod enabled off' -x gdb_vars.py EXE CORE
#
# For each frame: the function's name, file and line, whether gdb made it an inlined frame, and
# its arguments and locals as gdb enumerates them. Arguments are the function block's
# (`block.function`) symbols with `is_argument`, in declaration order. Locals are the symbols
# `info locals` chooses (LOC_CONST too, which `is_variable` leaves out) of each block from
# frame.block() up to and including the function block, innermost block first. The type is
# `str(sym.type)` (what `whatis` says), the value `str(sym.value(frame))` (what `print` shows).
#
# Order: a function's block (and an inlined subroutine's) is a linear dictionary in gdb, in
# DIE order, but a nested lexical block's symbols sit in a hash table (mdict_create_hashed), so
# gdb lists them in hash order, not declaration order. Each local carries its block's depth
# ("block", 0 innermost) and whether that is the function's block ("function_block"), so the
# test can compare the order of blocks without comparing the hash order inside one.
#
# The same frame's `info args` and `info locals` are read too, and where a value differs from
# the Python one the printed one wins (it is what a user sees) and the Python string is kept as
# "py_value". A name list that differs is reported as "info_mismatch".
#
# Flags on a variable, for the test's deliberate differences (tests/it/vars.rs `normalize`):
# "entry_value" (its location at the pc is a DW_OP_entry_value), "caller_saved" (in a caller
# frame, it lives in a register a call does not preserve, or is an entry value whose call site
# computes it from one, DW_TAG_call_site read with readelf), "implicit_pointer" (whether its
# location has one), "info_hides" (a LOC_CONST_BYTES local `info locals` skips); a value of
# GDB_BUG ("<gdb internal error>") is one gdb 13.1 cannot print.
import json
import re
import subprocess

import gdb

for cmd in (
    "set print entry-values no",
    "set print pretty off",
    "set print frame-arguments scalars",
    "set width 0",
    "set height 0",
    "set pagination off",
    "set confirm off",
    # libstdc++'s and rustc's pretty printers print differently from one version to the next:
    # the oracle compares plain values.
    "disable pretty-printer",
    # gdb refuses to read a value over 64 KiB ("value requires 400000 bytes, which is more than
    # max-value-size"); corecatch prints the first 200 elements of any array (`print elements`),
    # as gdb does once the limit is lifted.
    "set max-value-size unlimited",
    # An internal error gdb_bug() does not foresee aborts the command (a KeyboardInterrupt here,
    # reported as GDB_BUG) instead of quitting, and leaves no core of gdb behind.
    "maint set internal-error quit no",
    "maint set internal-error corefile no",
):
    try:
        gdb.execute(cmd, to_string=True)
    except gdb.error:
        pass


def gdb_bug(sym, frame):
    """Whether printing this value would crash gdb 13.1: a Rust enum (a struct with a variant
    part, `dynamic`) whose value lives outside memory (pieces in registers and on the stack, as
    rustc -O2 leaves an `Option<u32>`) hits an internal error (gdbtypes.h:985, `idx >= 0 && idx <
    num_fields ()`). With `maint set internal-error quit no` the first one only aborts the
    command, but the next one in the same gdb aborts gdb ("Recursive internal problem"), so it
    is never asked: the value is reported as GDB_BUG, and `info args`/`info locals` (which would
    print it) are not run for that frame. (Such a value whose discriminant selects no variant
    would print as an error instead of crashing, but telling the two apart means reading it the
    way gdb would; the test does not compare GDB_BUG values.)"""
    try:
        if frame.language() != "rust":
            return False
        t = sym.type.strip_typedefs()
        return (
            t.code == gdb.TYPE_CODE_STRUCT and t.dynamic and sym.value(frame).address is None
        )
    except (gdb.error, AttributeError):
        return False


def value_str(sym, frame):
    if gdb_bug(sym, frame):
        return GDB_BUG
    try:
        s = str(sym.value(frame))
        # What `info args` prints for it (`str` says why it could not read the value).
        if s == "<error reading variable: value has been optimized out>":
            return "<optimized out>"
        return s
    except KeyboardInterrupt:
        return GDB_BUG
    except gdb.MemoryError as e:
        return "<error: %s>" % e
    except gdb.error as e:
        msg = str(e)
        if "optimized out" in msg:
            return "<optimized out>"
        return "<error: %s>" % msg


GDB_BUG = "<gdb internal error>"


def var(sym, frame):
    return {"name": sym.name, "type": str(sym.type), "value": value_str(sym, frame)}


# The address classes `info locals` prints (gdb's iterate_over_block_locals): `is_variable`
# leaves out LOC_CONST, a variable the compiler turned into a constant (DW_AT_const_value).
LOCAL_CLASSES = {
    getattr(gdb, "SYMBOL_" + c)
    for c in (
        "LOC_CONST",
        "LOC_LOCAL",
        "LOC_REGISTER",
        "LOC_STATIC",
        "LOC_COMPUTED",
        "LOC_OPTIMIZED_OUT",
    )
    if hasattr(gdb, "SYMBOL_" + c)
}


# A local whose DW_AT_const_value is a block (LOC_CONST_BYTES: g++ -O2 makes `double fee = 0.5`
# one) is skipped by `info locals`, though `print fee` shows it. It is listed here, flagged
# "info_hides", with the value `print` shows: corecatch lists it (see vars.rs).
CONST_BYTES = getattr(gdb, "SYMBOL_LOC_CONST_BYTES", None)


def is_local(sym):
    return (
        not sym.is_argument
        and (sym.addr_class in LOCAL_CLASSES or sym.addr_class == CONST_BYTES)
        and sym.symtab is not None
        and not sym.is_function
    )


def function_block(block):
    while block is not None and block.function is None:
        block = block.superblock
    return block


# `name = value` lines of `info args` / `info locals` (one per variable with pretty off and
# width 0); "No arguments." / "No locals." and "No symbol table info available." yield none.
LINE = re.compile(r"^([A-Za-z_$][\w$:<>]*) = (.*)$")


def info(cmd):
    try:
        text = gdb.execute(cmd, to_string=True)
    except gdb.error as e:
        return None, str(e)
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
        elif out and line and not line.startswith("No "):
            # a value that went on over several lines
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out, text


def reconcile(vars_, printed, what, rec):
    if printed is None:
        return
    vars_ = [v for v in vars_ if not v.get("info_hides")]
    names = [n for n, _ in printed]
    if names != [v["name"] for v in vars_]:
        rec.setdefault("info_mismatch", []).append(
            {what: names, "python": [v["name"] for v in vars_]}
        )
        return
    for v, (_, shown) in zip(vars_, printed):
        if shown != v["value"]:
            v["py_value"] = v["value"]
            v["value"] = shown


# x86-64 SysV registers a call does not preserve. gdb's amd64 unwinder gives a caller frame the
# innermost frame's value of such a register (DWARF's "same value" for registers the CFI does
# not mention), so a variable living in one is shown with whatever the register held when the
# process died; corecatch treats them as clobbered in every caller frame and prints
# <optimized out>. Such variables are flagged "caller_saved" with the register gdb read.
CALLER_SAVED = re.compile(r"\$(rax|rcx|rdx|rsi|rdi|r8|r9|r10|r11|[xy]mm\d+|st\d)\b")
RANGE = re.compile(r"^\s*(?:Base address 0x[0-9a-f]+\s+)?Range (0x[0-9a-f]+)-(0x[0-9a-f]+): (.*)$")


def location_at(name, pc):
    """What `info address NAME` says of its location at `pc` (in the selected frame)."""
    try:
        text = gdb.execute("info address " + name, to_string=True)
    except gdb.error:
        return None
    if "multi-location" not in text:
        return text
    found, desc = None, []
    for line in text.splitlines():
        m = RANGE.match(line)
        if m:
            if found is not None:
                break
            if int(m.group(1), 16) <= pc < int(m.group(2), 16):
                found = True
                desc.append(m.group(3))
        elif found is not None:
            desc.append(line)
    return "\n".join(desc) if found else None


# The executable's DW_TAG_call_site parameters, read with readelf: static return pc ->
# {register: DW_AT_call_value as readelf shows it}, and the executable's load bias.
CALL_SITES = None
BIAS = 0
TAG = re.compile(r"Abbrev Number: \d+ \((DW_TAG_\w+)\)")
HEX_END = re.compile(r"(0x[0-9a-f]+)\s*$")
READELF_REG = re.compile(r"\(DW_OP_reg\d+ \((\w+)\)\)")
READELF_CALLER_SAVED = re.compile(r"\((rax|rcx|rdx|rsi|rdi|r8|r9|r10|r11|xmm\d+)\)")
ENTRY_REG = re.compile(r"entry_value[\s\S]*?\[\$(\w+)\]")
READELF_ENTRY_REG = re.compile(r"entry_value: \(DW_OP_b?reg\d+ \((\w+)\)")


def call_sites():
    global CALL_SITES, BIAS
    if CALL_SITES is not None:
        return CALL_SITES
    CALL_SITES = {}
    exe = gdb.current_progspace().filename
    try:
        info = subprocess.run(
            ["readelf", "--debug-dump=info", "-W", exe], capture_output=True, text=True
        ).stdout
        phdrs = subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True).stdout
        maps = gdb.execute("info proc mappings", to_string=True)
    except (OSError, gdb.error):
        return CALL_SITES
    first_load = next((l.split() for l in phdrs.splitlines() if l.strip().startswith("LOAD")), None)
    base = next(
        (
            l.split()
            for l in maps.splitlines()
            if l.strip().endswith(exe) and len(l.split()) >= 5 and int(l.split()[3], 16) == 0
        ),
        None,
    )
    if first_load and base:
        BIAS = int(base[0], 16) - int(first_load[2], 16)
    site = param = None
    for line in info.splitlines():
        t = TAG.search(line)
        if t:
            tag = t.group(1)
            if tag in ("DW_TAG_call_site", "DW_TAG_GNU_call_site"):
                site, param = {"pc": None, "params": {}}, None
            elif tag in ("DW_TAG_call_site_parameter", "DW_TAG_GNU_call_site_parameter"):
                param = {} if site is not None else None
            else:
                site = param = None
            continue
        if "Abbrev Number: 0" in line:
            param = None
            continue
        if site is None:
            continue
        if param is None and ("DW_AT_call_return_pc" in line or "DW_AT_low_pc" in line):
            m = HEX_END.search(line)
            if m:
                site["pc"] = int(m.group(1), 16)
                CALL_SITES[site["pc"]] = site["params"]
        elif param is not None and "DW_AT_location" in line:
            m = READELF_REG.search(line)
            param["reg"] = m.group(1) if m else None
        elif param is not None and ("DW_AT_call_value" in line or "call_site_value" in line):
            if param.get("reg"):
                site["params"][param["reg"]] = line
    return CALL_SITES


def physical_caller(frame):
    """The frame that called `frame`'s physical frame (None at the outermost)."""
    while frame is not None and frame.type() == gdb.INLINE_FRAME:
        frame = frame.older()
    return frame.older() if frame is not None else None


def entry_value_caller_saved(frame, reg):
    """Whether the value a DW_OP_entry_value of `reg` stands for is, at the caller's call site
    (following entry values up the callers), computed from a caller-saved register of a caller
    frame: gdb reads it anyway (its "same value"), corecatch treats it as clobbered."""
    for _ in range(16):
        caller = physical_caller(frame)
        if caller is None:
            return None
        params = call_sites().get(caller.pc() - BIAS)
        if params is None or reg not in params:
            return None  # no call site parameter: gdb finds no value either
        value = params[reg]
        chained = READELF_ENTRY_REG.search(value)
        if chained:
            frame, reg = caller, chained.group(1)
            continue
        m = READELF_CALLER_SAVED.search(value)
        return m.group(1) if m else None
    return None


def annotate_locations(vars_, pc, caller, frame):
    """Flag the variables whose location at `pc` is an entry value ("entry_value": read from
    the caller's DW_TAG_call_site_parameter) or, in a caller frame, a caller-saved register."""
    names = [v["name"] for v in vars_]
    for v in vars_:
        if names.count(v["name"]) != 1:
            continue  # `info address` would answer for the innermost one only
        loc = location_at(v["name"], pc)
        if loc is None:
            continue
        # Whether any piece is an implicit pointer: gdb 13 prints "<synthetic pointer>" for the
        # bytes of a composite that no piece describes too, e.g. rustc -O2's `iter` in
        # vars_rs::process, whose only piece is its first 8 bytes in r13.
        v["implicit_pointer"] = "implicit_pointer" in loc
        if "entry_value" in loc:
            v["entry_value"] = True
            # Read from the caller's call site, not this frame's registers.
            m = ENTRY_REG.search(loc)
            reg = m and entry_value_caller_saved(frame, m.group(1))
            if reg and "piece" not in loc:
                v["caller_saved"] = reg + " at the call site"
            continue
        if not caller:
            continue
        if "piece" in loc:
            continue  # a composite: partly elsewhere, compared as gdb prints it
        m = CALLER_SAVED.search(loc)
        if m:
            v["caller_saved"] = m.group(1)


def frame_record(frame, level, physical):
    rec = {
        "level": level,
        "function": frame.name(),
        "pc": "0x%x" % frame.pc(),
        "inlined": frame.type() == gdb.INLINE_FRAME,
        "file": None,
        "line": None,
        "args": None,
        "locals": None,
    }
    sal = frame.find_sal()
    if sal.symtab is not None:
        rec["file"] = sal.symtab.filename
        rec["line"] = sal.line
    try:
        block = frame.block()
    except RuntimeError:
        return rec  # no symbol table for this frame
    fb = function_block(block)
    if fb is None:
        return rec
    rec["args"] = [var(s, frame) for s in fb if s.is_argument]
    locals_ = []
    b = block
    depth = 0
    while b is not None:
        for s in b:
            if is_local(s):
                v = var(s, frame)
                # Which block: 0 is the innermost; the function's own block is flagged, as
                # only its symbols keep their declaration order (see the header).
                v["block"] = depth
                v["function_block"] = b.function is not None
                if s.addr_class == CONST_BYTES:
                    v["info_hides"] = True
                locals_.append(v)
        if b.function is not None:
            break  # the function's block (or the inlined subroutine's): no further
        b = b.superblock
        depth += 1
    rec["locals"] = locals_
    frame.select()
    # A caller's pc is a return address: gdb looks its variables up at pc - 1.
    pc = frame.pc() - 1 if physical > 0 else frame.pc()
    annotate_locations(rec["args"] + rec["locals"], pc, physical > 0, frame)
    if any(v["value"] == GDB_BUG for v in rec["args"] + locals_):
        rec["info_skipped"] = "a value gdb cannot print (see gdb_bug)"
        return rec
    args, _ = info("info args")
    loc, _ = info("info locals")
    reconcile(rec["args"], args, "info args", rec)
    reconcile(rec["locals"], loc, "info locals", rec)
    return rec


def thread_record(thread, crashed):
    thread.switch()
    frames = []
    frame = gdb.newest_frame()
    level = 0
    # How many real frames are newer than this one (0: the innermost physical frame and the
    # frames inlined into it); after a signal frame the registers are the sigcontext's, all live.
    physical = 0
    while frame is not None:
        frames.append(frame_record(frame, level, physical))
        if frame.type() == gdb.SIGTRAMP_FRAME:
            physical = -1
        if frame.type() != gdb.INLINE_FRAME:
            physical += 1
        level += 1
        try:
            frame = frame.older()
        except gdb.error:
            break
    return {"lwp": thread.ptid[1], "crashed": crashed, "frames": frames}


crashed = gdb.selected_thread()
threads = [thread_record(crashed, True)]
for t in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
    if t.ptid != crashed.ptid:
        threads.append(thread_record(t, False))
print("GDBVARS: " + json.dumps({"threads": threads}))

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Error, Result};

use remoteprocess::{Pid, ProcessMemory};
use serde_derive::Serialize;

use crate::config::{Config, LineNo};
use crate::python_data_access::{copy_bytes, copy_string};
use crate::python_interpreters::{
    CodeObject, FrameObject, InterpreterState, ThreadState, TupleObject,
};

/// Call stack for a single python thread
#[derive(Debug, Clone, Serialize)]
pub struct StackTrace {
    /// The process id than generated this stack trace
    pub pid: Pid,
    /// The python thread id for this stack trace
    pub thread_id: u64,
    // The python thread name for this stack trace
    pub thread_name: Option<String>,
    /// The OS thread id for this stack tracee
    pub os_thread_id: Option<u64>,
    /// Whether or not the thread was active
    pub active: bool,
    /// Whether or not the thread held the GIL
    pub owns_gil: bool,
    /// The frames
    pub frames: Vec<Frame>,
    /// zhw patch: Python frames read but not kept, because the stack is deeper than
    /// KEEP_INNER_FRAMES + KEEP_OUTER_FRAMES. They were between `frames[KEEP_INNER_FRAMES - 1]`
    /// and `frames[KEEP_INNER_FRAMES]`.
    pub frames_elided: usize,
    /// zhw patch: the walk stopped after MAX_FRAME_WALK frames; the stack goes on, and the
    /// last frames kept are not its outermost.
    pub frames_cut: bool,
    /// process commandline / parent process info
    pub process_info: Option<Arc<ProcessInfo>>,
}

/// Information about a single function call in a stack trace
#[derive(Debug, Hash, Eq, PartialEq, Ord, PartialOrd, Clone, Serialize)]
pub struct Frame {
    /// The function name
    pub name: String,
    /// The full filename of the file
    pub filename: String,
    /// The module/shared library the
    pub module: Option<String>,
    /// A short, more readable, representation of the filename
    pub short_filename: Option<String>,
    /// The line number inside the file (or 0 for native frames without line information)
    pub line: i32,
    /// Local Variables associated with the frame
    pub locals: Option<Vec<LocalVariable>>,
    /// If this is an entry frame. Each entry frame corresponds to one native frame (Python 3.11)
    pub is_entry: bool,
    /// If the last frame was a shim. This is used in Python 3.12+ to detect entry frames.
    pub is_shim_entry: bool,
}

#[derive(Debug, Hash, Eq, PartialEq, Ord, PartialOrd, Clone, Serialize)]
pub struct LocalVariable {
    pub name: String,
    pub addr: usize,
    pub arg: bool,
    pub repr: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    pub pid: Pid,
    pub command_line: String,
    pub parent: Option<Box<ProcessInfo>>,
}

/// zhw patch: a stack deeper than KEEP_INNER_FRAMES + KEEP_OUTER_FRAMES keeps its innermost
/// and outermost frames and counts the ones between (StackTrace::frames_elided), so any depth
/// is read with bounded memory. Up to 4096 frames, the stack is kept whole, as before.
pub const KEEP_INNER_FRAMES: usize = 2048;
/// zhw patch: see KEEP_INNER_FRAMES.
pub const KEEP_OUTER_FRAMES: usize = 2048;
/// zhw patch: frames walked per thread at most (StackTrace::frames_cut beyond). Replaces the
/// error at 4096 frames, which failed the whole read (and interpreter discovery) for one deep
/// thread. A chain that loops is still an error.
pub const MAX_FRAME_WALK: usize = 1 << 16;
/// zhw patch: thread states walked per interpreter at most, above any real thread count
/// (kernel.threads-max); a longer list is not a live interpreter's. Replaces the error at
/// 4096 threads. A list that loops is an error too.
pub const MAX_THREAD_STATES: usize = 1 << 18;
/// zhw patch: frames kept over all threads of one read at most, so a corrupt thread list
/// cannot make the reader allocate without limit.
pub const MAX_FRAMES_PER_READ: usize = 1 << 21;

/// zhw patch: code objects already read, by address, so a frame whose code is
/// known costs two reads (frame, code) instead of about eight (frame, code,
/// file name, function name and line table, each object plus its data).
///
/// An entry is used only while the code object at that address still points
/// at the same file name, name and line table objects with the same first
/// line; code objects are immutable and keep those objects alive, so a match
/// means the cached strings are still what the target holds. Bounded: when
/// it grows past `CODE_CACHE_ENTRIES` entries or `CODE_CACHE_BYTES` of line
/// tables it starts afresh.
#[derive(Default)]
pub struct CodeCache {
    entries: HashMap<usize, Arc<CachedCode>>,
    table_bytes: usize,
}

/// zhw patch: most code objects a CodeCache holds.
pub const CODE_CACHE_ENTRIES: usize = 1 << 16;
/// zhw patch: most line-table bytes a CodeCache holds.
pub const CODE_CACHE_BYTES: usize = 64 << 20;

struct CachedCode {
    key: CodeKey,
    filename: String,
    name: String,
    table: Option<Vec<u8>>,
}

#[derive(PartialEq, Eq)]
struct CodeKey {
    filename: usize,
    name: usize,
    table: usize,
    first_lineno: i32,
}

impl CodeKey {
    fn of<C: CodeObject>(code: &C) -> CodeKey {
        CodeKey {
            filename: code.filename() as usize,
            name: code.qualname().unwrap_or_else(|| code.name()) as usize,
            table: code.line_table() as usize,
            first_lineno: code.first_lineno(),
        }
    }
}

impl CodeCache {
    fn get<C: CodeObject>(&self, address: usize, code: &C) -> Option<Arc<CachedCode>> {
        let entry = self.entries.get(&address)?;
        (entry.key == CodeKey::of(code)).then(|| Arc::clone(entry))
    }

    fn insert(&mut self, address: usize, entry: CachedCode) -> Arc<CachedCode> {
        let bytes = entry.table.as_ref().map_or(0, Vec::len);
        if self.entries.len() >= CODE_CACHE_ENTRIES || self.table_bytes + bytes > CODE_CACHE_BYTES {
            self.entries.clear();
            self.table_bytes = 0;
        }
        self.table_bytes += bytes;
        let entry = Arc::new(entry);
        self.entries.insert(address, Arc::clone(&entry));
        entry
    }
}

/// zhw patch: the address of a thread's innermost frame (one extra read on
/// 3.11+, none before): a thread whose stack is reused must still have it.
pub fn top_frame_address<T: ThreadState, P: ProcessMemory>(
    thread: &T,
    process: &P,
) -> Result<usize, Error> {
    let mut frame_address = thread.frame_address();
    if let Some(addr) = frame_address {
        frame_address = Some(process.copy_struct(addr)?);
    }
    Ok(thread.frame(frame_address) as usize)
}

/// zhw patch: bounds one walk over an interpreter's thread list (see MAX_THREAD_STATES).
#[derive(Default)]
pub(crate) struct ThreadListWalk {
    seen: HashSet<usize>,
    frames: usize,
}

impl ThreadListWalk {
    /// Call with each thread state's address before reading it.
    pub(crate) fn visit(&mut self, thread_state: usize) -> Result<(), Error> {
        if !self.seen.insert(thread_state) {
            return Err(format_err!(
                "Thread list loops (thread state 0x{:x} seen twice)",
                thread_state
            ));
        }
        if self.seen.len() > MAX_THREAD_STATES {
            return Err(format_err!(
                "More than {} Python thread states: not a live interpreter",
                MAX_THREAD_STATES
            ));
        }
        Ok(())
    }

    /// Call with each trace read.
    pub(crate) fn keep(&mut self, trace: &StackTrace) -> Result<(), Error> {
        self.frames += trace.frames.len();
        if self.frames > MAX_FRAMES_PER_READ {
            return Err(format_err!(
                "More than {} Python frames in {} threads",
                MAX_FRAMES_PER_READ,
                self.seen.len()
            ));
        }
        Ok(())
    }
}

/// Given an InterpreterState, this function returns a vector of stack traces for each thread
pub fn get_stack_traces<I, P>(
    interpreter_address: usize,
    process: &P,
    threadstate_address: usize,
    config: Option<&Config>,
) -> Result<Vec<StackTrace>, Error>
where
    I: InterpreterState,
    P: ProcessMemory,
{
    let gil_thread_id = get_gil_threadid::<I, P>(threadstate_address, process)?;

    let threadstate_ptr_ptr = I::threadstate_ptr_ptr(interpreter_address);
    let mut threads: *const I::ThreadState = process
        .copy_struct(threadstate_ptr_ptr as usize)
        .context("Failed to copy PyThreadState head pointer")?;

    let mut ret = Vec::new();
    let mut walk = ThreadListWalk::default();

    let lineno = config.map(|c| c.lineno).unwrap_or(LineNo::NoLine);
    let dump_locals = config.map(|c| c.dump_locals).unwrap_or(0);

    while !threads.is_null() {
        // This seems to happen occasionally when scanning BSS addresses for valid interpreters
        walk.visit(threads as usize)?;
        let thread = process
            .copy_pointer(threads)
            .context("Failed to copy PyThreadState")?;

        let mut trace = get_stack_trace(&thread, process, dump_locals > 0, lineno, None)?;
        trace.owns_gil = trace.thread_id == gil_thread_id;

        walk.keep(&trace)?;
        ret.push(trace);
        threads = thread.next();
    }
    Ok(ret)
}

/// Gets a stack trace for an individual thread
pub fn get_stack_trace<T, P>(
    thread: &T,
    process: &P,
    copy_locals: bool,
    lineno: LineNo,
    // zhw patch: code objects already read (see CodeCache)
    mut code_cache: Option<&mut CodeCache>,
) -> Result<StackTrace, Error>
where
    T: ThreadState,
    P: ProcessMemory,
{
    // TODO: just return frames here? everything else probably should be returned out of scope
    let mut frames = Vec::new();

    // python 3.11+ has an extra level of indirection to get the Frame from the threadstate
    let mut frame_address = thread.frame_address();
    if let Some(addr) = frame_address {
        frame_address = Some(process.copy_struct(addr)?);
    }

    let mut frame_ptr = thread.frame(frame_address);

    // We are iterating in reverse, i.e. from last call to first call.
    // Since Python 3.12, there are shim frames inserted before a block
    // of Python frames. When we encounter one, update the last frame.
    let set_last_frame_as_shim_entry = &mut |frames: &mut Vec<Frame>| {
        if let Some(frame) = frames.last_mut() {
            frame.is_shim_entry = true;
        }
    };

    let mut visited = HashSet::new();
    let mut frames_elided = 0;
    let mut frames_cut = false;
    while !frame_ptr.is_null() {
        // zhw patch: no error at 4096 frames; see MAX_FRAME_WALK
        if visited.len() >= MAX_FRAME_WALK {
            frames_cut = true;
            break;
        }
        if !visited.insert(frame_ptr as usize) {
            return Err(format_err!("Frame chain loops"));
        }

        let frame = process
            .copy_pointer(frame_ptr)
            .context("Failed to copy PyFrameObject")?;

        if !frame.is_python_frame() {
            frame_ptr = frame.back();
            set_last_frame_as_shim_entry(&mut frames);
            continue;
        }

        let code = process
            .copy_pointer(frame.code())
            .context("Failed to copy PyCodeObject")?;

        // zhw patch: a known code object needs no more reads
        let code_address = frame.code() as usize;
        if let Some(known) = code_cache
            .as_deref()
            .and_then(|cache| cache.get(code_address, &code))
        {
            let line = match (lineno, &known.table) {
                (LineNo::NoLine, _) => 0,
                (LineNo::First, _) => code.first_lineno(),
                (LineNo::LastInstruction, Some(table)) => {
                    code.get_line_number(frame.lasti(), table)
                }
                (LineNo::LastInstruction, None) => 0,
            };
            let locals = if copy_locals {
                Some(
                    get_locals(&code, frame_ptr, &frame, process)
                        .context("Failed to get local variables")?,
                )
            } else {
                None
            };
            frames.push(Frame {
                name: known.name.clone(),
                filename: known.filename.clone(),
                line,
                short_filename: None,
                module: None,
                locals,
                is_entry: frame.is_entry(),
                is_shim_entry: false,
            });
            if frames.len() >= KEEP_INNER_FRAMES + 2 * KEEP_OUTER_FRAMES {
                frames.drain(KEEP_INNER_FRAMES..KEEP_INNER_FRAMES + KEEP_OUTER_FRAMES);
                frames_elided += KEEP_OUTER_FRAMES;
            }
            frame_ptr = frame.back();
            continue;
        }

        let filename = copy_string(code.filename(), process).context("Failed to copy filename");

        // Try to get qualname first (available in Python 3.11+), fall back to name
        let name = match code.qualname() {
            Some(qualname_ptr) => {
                copy_string(qualname_ptr, process).or_else(|_| copy_string(code.name(), process))
            }
            None => copy_string(code.name(), process),
        }
        .context("Failed to copy function name");

        // Guards against torn reads while sampling without pausing the process.
        if filename.is_err() || name.is_err() {
            frame_ptr = frame.back();
            set_last_frame_as_shim_entry(&mut frames);
            continue;
        }
        let filename = filename?;
        let name = name?;

        // skip <shim> entries in python 3.13+
        // Unset file/function name in py3.13 means this is a shim.
        if filename.is_empty() || filename == "<shim>" {
            frame_ptr = frame.back();
            set_last_frame_as_shim_entry(&mut frames);
            continue;
        }

        // zhw patch: read the line table once, then remember the code object
        let table = match lineno {
            LineNo::LastInstruction => copy_bytes(code.line_table(), process)
                .context("Failed to copy line number table")
                .ok(),
            _ => None,
        };
        if let Some(cache) = code_cache.as_deref_mut() {
            if lineno != LineNo::LastInstruction || table.is_some() {
                cache.insert(
                    code_address,
                    CachedCode {
                        key: CodeKey::of(&code),
                        filename: filename.clone(),
                        name: name.clone(),
                        table: table.clone(),
                    },
                );
            }
        }
        let line = match lineno {
            LineNo::NoLine => 0,
            LineNo::First => code.first_lineno(),
            LineNo::LastInstruction => match table
                .map(|table| code.get_line_number(frame.lasti(), &table))
                .ok_or_else(|| format_err!("Failed to copy line number table"))
            {
                Ok(line) => line,
                Err(e) => {
                    // Failling to get the line number really shouldn't be fatal here, but
                    // can happen in extreme cases (https://github.com/benfred/py-spy/issues/164)
                    // Rather than fail set the linenumber to 0. This is used by the native extensions
                    // to indicate that we can't load a line number and it should be handled gracefully
                    warn!(
                        "Failed to get line number from {}.{}: {}",
                        filename, name, e
                    );
                    0
                }
            },
        };

        let locals = if copy_locals {
            Some(
                get_locals(&code, frame_ptr, &frame, process)
                    .context("Failed to get local variables")?,
            )
        } else {
            None
        };

        let is_entry = frame.is_entry();

        frames.push(Frame {
            name,
            filename,
            line,
            short_filename: None,
            module: None,
            locals,
            is_entry,
            is_shim_entry: false,
        });
        // zhw patch: drop a block of middle frames whenever enough have piled up
        if frames.len() >= KEEP_INNER_FRAMES + 2 * KEEP_OUTER_FRAMES {
            frames.drain(KEEP_INNER_FRAMES..KEEP_INNER_FRAMES + KEEP_OUTER_FRAMES);
            frames_elided += KEEP_OUTER_FRAMES;
        }

        frame_ptr = frame.back();
    }
    // zhw patch: keep KEEP_OUTER_FRAMES after the innermost ones
    let excess = frames
        .len()
        .saturating_sub(KEEP_INNER_FRAMES + KEEP_OUTER_FRAMES);
    if excess > 0 {
        frames.drain(KEEP_INNER_FRAMES..KEEP_INNER_FRAMES + excess);
        frames_elided += excess;
    }

    // First frame is always a shim
    set_last_frame_as_shim_entry(&mut frames);

    Ok(StackTrace {
        pid: 0,
        frames,
        frames_elided,
        frames_cut,
        thread_id: thread.thread_id(),
        thread_name: None,
        owns_gil: false,
        active: true,
        os_thread_id: thread.native_thread_id(),
        process_info: None,
    })
}

impl StackTrace {
    pub fn status_str(&self) -> &str {
        match (self.owns_gil, self.active) {
            (_, false) => "idle",
            (true, true) => "active+gil",
            (false, true) => "active",
        }
    }

    pub fn format_threadid(&self) -> String {
        // native threadids in osx are kinda useless, use the pthread id instead
        #[cfg(target_os = "macos")]
        return format!("{:#X}", self.thread_id);

        // otherwise use the native threadid if given
        #[cfg(not(target_os = "macos"))]
        match self.os_thread_id {
            Some(tid) => format!("{}", tid),
            None => format!("{:#X}", self.thread_id),
        }
    }
}

/// Returns the line number from a PyCodeObject (given the lasti index from a PyFrameObject)
fn get_locals<C: CodeObject, F: FrameObject, P: ProcessMemory>(
    code: &C,
    frameptr: *const F,
    frame: &F,
    process: &P,
) -> Result<Vec<LocalVariable>, Error> {
    let local_count = code.nlocals() as usize;
    let argcount = code.argcount() as usize;
    let varnames = process
        .copy_pointer(code.varnames())
        .context("Failed to get varnames from PyCodeObject")?;

    let ptr_size = std::mem::size_of::<*const i32>();
    let locals_addr = frameptr as usize + std::mem::size_of_val(frame) - ptr_size;

    let mut ret = Vec::new();

    for i in 0..local_count {
        let nameptr: *const C::StringObject =
            process.copy_struct(varnames.address(code.varnames() as usize, i))?;

        let name = copy_string(nameptr, process).context("Failed to copy local variable name")?;
        let addr: usize = process.copy_struct(locals_addr + i * ptr_size)?;

        // hack: handle things like None, True, False, small integer constants etc on Python 3.14
        let addr = if addr & 1 == 1 { addr - 1 } else { addr };

        if addr == 0 {
            continue;
        }
        ret.push(LocalVariable {
            name,
            addr,
            arg: i < argcount,
            repr: None,
        });
    }
    Ok(ret)
}

pub fn get_gil_threadid<I: InterpreterState, P: ProcessMemory>(
    threadstate_address: usize,
    process: &P,
) -> Result<u64, Error> {
    // happens during initialization when checking to see if we have a valid interpreter (before we've figured out the threadstate_address)
    if threadstate_address == 0 {
        return Ok(0);
    }

    let addr = if I::HAS_GIL_RUNTIME_STATE {
        // get the gilruntimestate - note that this struct is identical between 3.12/3.13/3.14
        let gil_state: crate::python_bindings::v3_13_0::_gil_runtime_state =
            process.copy_struct(threadstate_address)?;
        // check to see if the GIL is locked already
        if gil_state.locked != 0 {
            gil_state.last_holder as usize
        } else {
            0
        }
    } else {
        process.copy_struct::<usize>(threadstate_address)?
    };

    // if the addr is 0, no thread is currently holding the GIL
    let threadid = if addr != 0 {
        let threadstate: I::ThreadState = process.copy_struct(addr)?;
        threadstate.thread_id()
    } else {
        0
    };

    Ok(threadid)
}

impl ProcessInfo {
    pub fn to_frame(&self) -> Frame {
        Frame {
            name: format!("process {}:\"{}\"", self.pid, self.command_line),
            filename: String::from(""),
            module: None,
            short_filename: None,
            line: 0,
            locals: None,
            is_entry: true,
            is_shim_entry: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python_bindings::v3_7_0::PyCodeObject;
    use crate::python_data_access::tests::to_byteobject;
    use remoteprocess::LocalProcess;

    #[test]
    fn test_get_line_number() {
        let mut lnotab = to_byteobject(&[0u8, 1, 10, 1, 8, 1, 4, 1]);
        let code = PyCodeObject {
            co_firstlineno: 3,
            co_lnotab: &mut lnotab.base.ob_base.ob_base,
            ..Default::default()
        };
        let lineno = get_line_number(&code, 30, &LocalProcess).unwrap();
        assert_eq!(lineno, 7);
    }
}

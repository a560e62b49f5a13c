//! Walk one thread's Python frames ourselves, to reach their local
//! variables: py-spy 0.4.3 reports frames without addresses, and its own
//! locals option formats a repr of every local of every frame of every
//! thread, which costs far more than the few frames zhw looks into.
//!
//! Thread state → innermost frame → `f_back`/`previous` chain, with each
//! frame's code object (function, file, names of its fast locals) cached by
//! address for the life of the [`Walker`]. Bounded like everything that
//! reads the target: at most [`MAX_THREADS`] thread states and
//! [`MAX_FRAMES`] frames, every read through the [`Reader`]'s budget. Frames
//! that are not Python code (3.12+ C-stack shims), or whose code object
//! cannot be read (a torn read), are skipped, as py-spy skips them, so the
//! walk lines up with py-spy's frame list.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use remoteprocess::ProcessMemory;

use super::layout::{CurrentFrame, LocalNames};
use super::objects::{Kind, Read, ReadError, Reader, word_in};

/// Thread states looked at, as py-spy's own limit.
pub(crate) const MAX_THREADS: usize = 4096;
/// Frames walked per thread, as py-spy's own limit.
pub(crate) const MAX_FRAMES: usize = 4096;
/// Fast-local slots considered per code object.
const MAX_LOCALS: usize = 1024;

/// What a code object says about its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeInfo {
    /// Function name as py-spy reports it (the qualified name on 3.11+).
    pub function: String,
    /// Source file.
    pub file: String,
    /// Names of the fast locals with their slot index.
    pub locals: Vec<(Rc<str>, usize)>,
}

/// One Python frame of a walked thread.
#[derive(Debug, Clone)]
pub(crate) struct WalkedFrame {
    /// Address of the frame.
    pub addr: usize,
    /// Its code.
    pub code: Rc<CodeInfo>,
}

/// Walks frames with a code-object cache.
pub(crate) struct Walker<'r, 'a, P: ProcessMemory> {
    /// The object reader (and its budget).
    pub reader: &'r Reader<'a, P>,
    codes: RefCell<HashMap<usize, Option<Rc<CodeInfo>>>>,
}

impl<'r, 'a, P: ProcessMemory> Walker<'r, 'a, P> {
    /// A walker over `reader`'s memory.
    pub fn new(reader: &'r Reader<'a, P>) -> Self {
        Walker {
            reader,
            codes: RefCell::new(HashMap::new()),
        }
    }

    /// Every thread state of the interpreter: `(thread_id, address)`.
    pub fn thread_states(&self, interpreter: usize) -> Read<Vec<(u64, usize)>> {
        let l = self.reader.layout;
        let mut states = Vec::new();
        let mut at = self.reader.word(interpreter + l.interp_threads_head)?;
        while at != 0 && states.len() < MAX_THREADS {
            let span = l.tstate_next.max(l.tstate_thread_id) + 8;
            let raw = self.reader.bytes_at(at, span)?;
            let id = word_in(&raw, l.tstate_thread_id).ok_or(ReadError::Corrupt("thread"))?;
            states.push((id as u64, at));
            at = word_in(&raw, l.tstate_next).unwrap_or(0);
        }
        Ok(states)
    }

    /// The thread's Python frames, innermost first.
    pub fn frames(&self, thread_state: usize) -> Read<Vec<WalkedFrame>> {
        let r = self.reader;
        let l = r.layout;
        let mut frame = match l.current_frame {
            CurrentFrame::Direct(offset) => r.word(thread_state + offset)?,
            CurrentFrame::ViaCFrame { cframe, current } => {
                let cframe = r.word(thread_state + cframe)?;
                if cframe == 0 {
                    return Ok(Vec::new());
                }
                r.word(cframe.wrapping_add(current))?
            }
        };
        let mut frames = Vec::new();
        let mut visited = 0;
        while frame != 0 && visited < MAX_FRAMES {
            visited += 1;
            let header = r.bytes_at(frame, l.frame.header)?;
            let back = word_in(&header, l.frame.back).unwrap_or(0);
            let not_python = l.frame.owner.is_some_and(|(offset, owners)| {
                header
                    .get(offset)
                    .is_some_and(|owner| owners.contains(owner))
            });
            let mut code = word_in(&header, l.frame.code).unwrap_or(0);
            if l.tagged_stackrefs {
                code &= !3;
            }
            if !not_python
                && code != 0
                && let Some(info) = self.code(code)?
            {
                frames.push(WalkedFrame {
                    addr: frame,
                    code: info,
                });
            }
            frame = back;
        }
        Ok(frames)
    }

    /// A code object's function, file and local names (`None` if it is not a
    /// readable code object: py-spy skips such frames too).
    fn code(&self, addr: usize) -> Read<Option<Rc<CodeInfo>>> {
        if let Some(cached) = self.codes.borrow().get(&addr) {
            return Ok(cached.clone());
        }
        let info = match self.read_code(addr) {
            Ok(info) => info.map(Rc::new),
            Err(ReadError::Budget) => return Err(ReadError::Budget),
            Err(_) => None,
        };
        self.codes.borrow_mut().insert(addr, info.clone());
        Ok(info)
    }

    fn read_code(&self, addr: usize) -> Read<Option<CodeInfo>> {
        let r = self.reader;
        let l = &r.layout.code;
        let obj = r.object(addr)?;
        if obj.ty.name != "code" {
            return Ok(None);
        }
        let header = r.bytes_at(addr, l.header)?;
        let pointer = |offset| word_in(&header, offset).ok_or(ReadError::Corrupt("code"));
        let name_bytes = r.limits.name_bytes;
        let file = r.text_at(pointer(l.filename)?, name_bytes)?.value;
        let function = match l.qualname {
            Some(offset) => r
                .text_at(pointer(offset)?, name_bytes)
                .or_else(|_| r.text_at(pointer(l.name)?, name_bytes))?,
            None => r.text_at(pointer(l.name)?, name_bytes)?,
        }
        .value;
        // py-spy drops these (3.13+ shims).
        if file.is_empty() || file == "<shim>" {
            return Ok(None);
        }
        let mut locals = Vec::new();
        match l.names {
            LocalNames::Classic {
                nlocals,
                varnames,
                cellvars,
                freevars,
            } => {
                let count = header
                    .get(nlocals..nlocals + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(0);
                let count = usize::try_from(count).unwrap_or(0).min(MAX_LOCALS);
                let mut slot = 0;
                self.names_into(&mut locals, pointer(varnames)?, &mut slot, count)?;
                slot = count;
                self.names_into(&mut locals, pointer(cellvars)?, &mut slot, MAX_LOCALS)?;
                self.names_into(&mut locals, pointer(freevars)?, &mut slot, MAX_LOCALS)?;
            }
            LocalNames::LocalsPlus { names } => {
                let mut slot = 0;
                self.names_into(&mut locals, pointer(names)?, &mut slot, MAX_LOCALS)?;
            }
        }
        Ok(Some(CodeInfo {
            function,
            file,
            locals,
        }))
    }

    /// Append the names of a tuple of strings, numbering slots from `*slot`.
    fn names_into(
        &self,
        out: &mut Vec<(Rc<str>, usize)>,
        tuple: usize,
        slot: &mut usize,
        max: usize,
    ) -> Read<()> {
        let r = self.reader;
        let obj = r.object(tuple)?;
        if obj.kind != Kind::Tuple {
            return Err(ReadError::Corrupt("code names"));
        }
        let (items, _) = r.items(&obj, max.min(MAX_LOCALS))?;
        for item in items {
            if let Some(name) = r.name_at(item)? {
                out.push((name, *slot));
            }
            *slot += 1;
        }
        Ok(())
    }

    /// The object in a frame's fast-local slot: `None` when unset (not yet
    /// assigned, or deleted) or a 3.14 tagged int; a closure cell is
    /// followed to its contents.
    pub fn local(&self, frame: &WalkedFrame, slot: usize) -> Read<Option<usize>> {
        let r = self.reader;
        let mut value = r.word(frame.addr + r.layout.frame.localsplus + 8 * slot)?;
        if r.layout.tagged_stackrefs {
            if value & 3 == 3 {
                return Ok(None);
            }
            value &= !3;
        }
        if value == 0 {
            return Ok(None);
        }
        let obj = r.object(value)?;
        if obj.kind == Kind::Cell {
            let inner = r.cell_contents(&obj)?;
            return Ok((inner != 0).then_some(inner));
        }
        Ok(Some(value))
    }

    /// The object bound to local `name` in `frame`, if any.
    pub fn local_named(&self, frame: &WalkedFrame, name: &str) -> Read<Option<usize>> {
        match frame.code.locals.iter().find(|(n, _)| &**n == name) {
            Some((_, slot)) => self.local(frame, *slot),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::Layout;
    use super::super::objects::Limits;
    use super::super::objects::fake::Builder;
    use super::*;

    fn w(value: usize) -> [u8; 8] {
        value.to_ne_bytes()
    }

    /// A code object named `function` in `file` with locals `names`.
    fn code(b: &Builder, function: &str, file: &str, names: &[&str]) -> usize {
        let l = &b.layout.code;
        let ty = b.ty("code", 0, 200, 0);
        let name_objs: Vec<usize> = names.iter().map(|n| b.str(n)).collect();
        let tuple = b.tuple(&name_objs);
        let empty = b.tuple(&[]);
        let mut o = vec![0u8; l.header.max(200)];
        o[0..8].copy_from_slice(&w(1));
        o[8..16].copy_from_slice(&w(ty));
        let f = b.str(function);
        o[l.name..l.name + 8].copy_from_slice(&w(f));
        o[l.filename..l.filename + 8].copy_from_slice(&w(b.str(file)));
        if let Some(q) = l.qualname {
            o[q..q + 8].copy_from_slice(&w(f));
        }
        match l.names {
            LocalNames::Classic {
                nlocals,
                varnames,
                cellvars,
                freevars,
            } => {
                o[nlocals..nlocals + 4].copy_from_slice(&(names.len() as i32).to_ne_bytes());
                o[varnames..varnames + 8].copy_from_slice(&w(tuple));
                o[cellvars..cellvars + 8].copy_from_slice(&w(empty));
                o[freevars..freevars + 8].copy_from_slice(&w(empty));
            }
            LocalNames::LocalsPlus { names } => {
                o[names..names + 8].copy_from_slice(&w(tuple));
            }
        }
        b.place(o)
    }

    /// A frame running `code` with `locals`, called from `back`.
    fn frame(b: &Builder, code: usize, back: usize, locals: &[usize]) -> usize {
        let f = &b.layout.frame;
        let mut o = vec![0u8; f.localsplus + 8 * locals.len().max(1)];
        o[f.back..f.back + 8].copy_from_slice(&w(back));
        o[f.code..f.code + 8].copy_from_slice(&w(code));
        for (i, value) in locals.iter().enumerate() {
            o[f.localsplus + 8 * i..f.localsplus + 8 * i + 8].copy_from_slice(&w(*value));
        }
        b.place(o)
    }

    /// An interpreter whose one thread (id 77) runs `innermost`.
    fn interpreter(b: &Builder, innermost: usize) -> usize {
        let l = &b.layout;
        let mut ts = vec![0u8; 8000];
        match l.current_frame {
            CurrentFrame::Direct(offset) => ts[offset..offset + 8].copy_from_slice(&w(innermost)),
            CurrentFrame::ViaCFrame { cframe, current } => {
                let mut c = vec![0u8; 16];
                c[current..current + 8].copy_from_slice(&w(innermost));
                let c = b.place(c);
                ts[cframe..cframe + 8].copy_from_slice(&w(c));
            }
        }
        ts[l.tstate_thread_id..l.tstate_thread_id + 8].copy_from_slice(&w(77));
        let ts = b.place(ts);
        let mut interp = vec![0u8; 8000];
        interp[l.interp_threads_head..l.interp_threads_head + 8].copy_from_slice(&w(ts));
        b.place(interp)
    }

    #[test]
    fn walks_frames_and_reads_locals_on_every_layout() {
        for (major, minor) in [
            (2, 7),
            (3, 6),
            (3, 9),
            (3, 10),
            (3, 11),
            (3, 12),
            (3, 13),
            (3, 14),
        ] {
            let b = Builder::new(Layout::for_version(major, minor).expect("layout"));
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let walker = Walker::new(&r);
            let outer = code(&b, "execute", "/x/waitress/task.py", &["self", "env"]);
            let inner = code(&b, "app", "/srv/app.py", &["environ", "start_response"]);
            let env = b.dict(&[]);
            let f1 = frame(&b, outer, 0, &[b.none(), env]);
            let f2 = frame(&b, inner, f1, &[env, 0]);
            let interp = interpreter(&b, f2);
            let states = walker.thread_states(interp).expect("states");
            assert_eq!(states.len(), 1);
            assert_eq!(states[0].0, 77);
            let frames = walker.frames(states[0].1).expect("frames");
            let names: Vec<&str> = frames.iter().map(|f| f.code.function.as_str()).collect();
            assert_eq!(names, ["app", "execute"], "{major}.{minor}");
            assert_eq!(walker.local_named(&frames[1], "env"), Ok(Some(env)));
            assert_eq!(walker.local_named(&frames[0], "environ"), Ok(Some(env)));
            assert_eq!(walker.local_named(&frames[0], "start_response"), Ok(None));
            assert_eq!(walker.local_named(&frames[0], "nope"), Ok(None));
        }
    }

    #[test]
    fn a_frame_cycle_stops_at_the_frame_limit() {
        let b = Builder::new(Layout::for_version(3, 12).expect("3.12"));
        let limits = Limits {
            reads: 1_000_000,
            ..Limits::default()
        };
        let r = Reader::new(&b.memory, &b.layout, limits);
        let walker = Walker::new(&r);
        let c = code(&b, "loop", "/srv/loop.py", &[]);
        let f = frame(&b, c, 0, &[]);
        // The frame is its own caller.
        b.poke(f + b.layout.frame.back, &w(f));
        let interp = interpreter(&b, f);
        let states = walker.thread_states(interp).expect("states");
        let frames = walker.frames(states[0].1).expect("frames");
        assert_eq!(frames.len(), MAX_FRAMES);
    }
}

//! A small, bounded reader of Python objects in another process's memory:
//! `str`/`unicode`/`bytes`, `int`, `float`, `dict`, `tuple`, `list`, cells,
//! and instance attributes, across the CPython 2.7 and 3.6–3.14 layouts of
//! [`super::layout`].
//!
//! Target memory is untrusted input and changes while it is read. Every read
//! here is bounded: strings by a byte count, dicts by the entries examined,
//! reprs by depth, item count and length, and a whole session by a budget of
//! reads and bytes, so a corrupt pointer or a 100,000-key dict costs
//! milliseconds, never a loop or an allocation the target chose. Types are
//! identified by reading `ob_type->tp_name` and `tp_flags`, never guessed.
//! Failures are values ([`ReadError`]); nothing here panics on what it reads,
//! and nothing writes to the target.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::rc::Rc;

use remoteprocess::ProcessMemory;

use super::layout::{
    DictLayout, Layout, LongLayout, ManagedDict, StringLayout, TPFLAGS_BYTES_SUBCLASS,
    TPFLAGS_DICT_SUBCLASS, TPFLAGS_HEAPTYPE, TPFLAGS_INLINE_VALUES, TPFLAGS_INT_SUBCLASS,
    TPFLAGS_LIST_SUBCLASS, TPFLAGS_LONG_SUBCLASS, TPFLAGS_MANAGED_DICT, TPFLAGS_TUPLE_SUBCLASS,
    TPFLAGS_UNICODE_SUBCLASS,
};
use crate::redact::{MASK, Redactor};

/// Bounds on what one session reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Longest string value read, in bytes of its storage.
    pub string_bytes: usize,
    /// Longest name (dict key, attribute, function, file) read, in bytes.
    pub name_bytes: usize,
    /// Dict entries examined when looking keys up or listing a dict.
    pub dict_entries: usize,
    /// Items shown per container in a repr.
    pub repr_items: usize,
    /// Nesting shown in a repr.
    pub repr_depth: usize,
    /// Characters of one repr.
    pub repr_chars: usize,
    /// Memory reads before the budget is spent (reset per thread).
    pub reads: u32,
    /// Bytes read before the budget is spent (reset per thread).
    pub bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            string_bytes: 2048,
            name_bytes: 256,
            dict_entries: 4096,
            repr_items: 8,
            repr_depth: 3,
            repr_chars: 200,
            reads: 20_000,
            bytes: 8 * 1024 * 1024,
        }
    }
}

/// No single read is larger than this, whatever a size field claims.
const MAX_READ: usize = 1024 * 1024;
/// Addresses below this are never valid objects (null and near-null).
const LOWEST_ADDRESS: usize = 4096;
/// Dict entries read per memory read while scanning.
const ENTRY_CHUNK: usize = 256;
/// Bytes of an object read at once: every header used here, and the data
/// of a short string (most keys and environ values), saving a read.
const HEAD: usize = 96;
/// A dict or string claiming more than this is corrupt, not big.
const INSANE: u64 = 1 << 40;

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    /// The address is not readable (freed, unmapped, or never valid).
    #[error("unreadable memory at {0:#x}")]
    Memory(usize),
    /// The session's read budget is spent.
    #[error("read budget exhausted")]
    Budget,
    /// The bytes read make no sense for the object's type.
    #[error("corrupt {0}")]
    Corrupt(&'static str),
    /// A different type than the one expected.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the caller needed.
        expected: &'static str,
        /// `tp_name` of what was there.
        found: String,
    },
}

/// Result of a read.
pub(crate) type Read<T> = Result<T, ReadError>;

/// What a type object says about its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeInfo {
    /// `tp_name` (at most `name_bytes`).
    pub name: String,
    /// `tp_flags`.
    pub flags: u64,
    /// `tp_basicsize`.
    pub basicsize: usize,
    /// `tp_dictoffset`.
    pub dictoffset: i64,
    /// `ht_cached_keys` of a heap type (3.11+), 0 otherwise.
    pub cached_keys: usize,
}

/// The kinds of object this reader understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `None`.
    None,
    /// `bool`.
    Bool,
    /// `int` (3.x), `int`/`long` (2.7).
    Int,
    /// `float`.
    Float,
    /// Text: `str` on 3.x, `unicode` on 2.7.
    Str,
    /// Bytes: `bytes` on 3.x, `str` on 2.7.
    Bytes,
    /// `dict` or a subclass.
    Dict,
    /// `tuple` or a subclass.
    Tuple,
    /// `list` or a subclass.
    List,
    /// A closure cell.
    Cell,
    /// A module.
    Module,
    /// A 2.7 old-style class instance.
    OldInstance,
    /// Anything else.
    Other,
}

/// An object whose type and first bytes have been read.
#[derive(Debug, Clone)]
pub(crate) struct Obj {
    /// Its address in the target.
    pub addr: usize,
    /// Its type.
    pub ty: Rc<TypeInfo>,
    /// What kind of object that makes it.
    pub kind: Kind,
    head: Vec<u8>,
}

/// A string read from the target, possibly cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    /// The text (bytes decoded as UTF-8, invalid sequences replaced).
    pub value: String,
    /// Its full length in the target: characters for text, bytes for bytes.
    pub length: usize,
    /// True when only a prefix was read.
    pub truncated: bool,
}

/// Where a dict's entries are: a dict object, or (3.11+ instances) shared
/// keys with a values array of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// A dict object.
    Dict(usize),
    /// Split keys (`ht_cached_keys`) and the instance's values.
    Split {
        /// The `PyDictKeysObject`.
        keys: usize,
        /// The `PyDictValues`.
        values: usize,
    },
}

/// How much of a dict a scan saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Scan {
    /// Live entries the dict says it has (`ma_used`), where known.
    pub used: Option<usize>,
    /// Live entries examined.
    pub examined: usize,
    /// False when the scan stopped at the entry limit.
    pub complete: bool,
}

/// Where a 3.x dict keys object keeps its entries.
#[derive(Debug)]
struct KeysTable {
    /// Address of the first entry.
    entries_at: usize,
    /// Entries in use or used (`dk_nentries`).
    entries: usize,
    /// Bytes per entry (24 with hashes, 16 for 3.12+'s unicode-only keys).
    entry_size: usize,
    /// Offset of the key in an entry; the value follows it.
    key_at: usize,
    /// Where a split values array's first value is, from its start.
    values_offset: usize,
    /// The entries, when read whole (shared keys).
    raw: Option<Vec<u8>>,
}

/// The reader: one target's memory, one interpreter layout, one budget.
///
/// Caches (types, short strings by address) live as long as the reader, which
/// is meant to live for one sample: objects can be freed and their addresses
/// reused between samples.
pub(crate) struct Reader<'a, P: ProcessMemory> {
    memory: &'a P,
    /// The interpreter's layout.
    pub layout: &'a Layout,
    /// The bounds in force.
    pub limits: Limits,
    reads: Cell<u32>,
    bytes: Cell<usize>,
    types: RefCell<HashMap<usize, Rc<TypeInfo>>>,
    names: RefCell<HashMap<usize, Option<Rc<str>>>>,
    /// Shared keys tables of split mappings, by address of the keys object.
    shared_keys: RefCell<HashMap<usize, Rc<KeysTable>>>,
    /// Size of 2.7's `Py_UNICODE` (2 or 4), once known.
    pub py2_unicode_width: Cell<Option<usize>>,
}

impl<'a, P: ProcessMemory> Reader<'a, P> {
    /// A reader with a fresh budget.
    pub fn new(memory: &'a P, layout: &'a Layout, limits: Limits) -> Self {
        Reader {
            memory,
            layout,
            limits,
            reads: Cell::new(0),
            bytes: Cell::new(0),
            types: RefCell::new(HashMap::new()),
            names: RefCell::new(HashMap::new()),
            shared_keys: RefCell::new(HashMap::new()),
            py2_unicode_width: Cell::new(None),
        }
    }

    /// Start a new budget (caches are kept).
    pub fn reset_budget(&self) {
        self.reads.set(0);
        self.bytes.set(0);
    }

    /// Whether the budget is spent.
    pub fn budget_spent(&self) -> bool {
        self.reads.get() >= self.limits.reads || self.bytes.get() >= self.limits.bytes
    }

    /// Read `len` bytes at `addr`, within the budget. Addresses computed from
    /// pointers not yet read through are summed with `wrapping_add`, so a
    /// corrupt one fails here (unreadable) instead of overflowing.
    pub fn bytes_at(&self, addr: usize, len: usize) -> Read<Vec<u8>> {
        if addr < LOWEST_ADDRESS || addr.checked_add(len).is_none() {
            return Err(ReadError::Memory(addr));
        }
        if len > MAX_READ {
            return Err(ReadError::Corrupt("read size"));
        }
        if self.budget_spent() {
            return Err(ReadError::Budget);
        }
        self.reads.set(self.reads.get() + 1);
        self.bytes.set(self.bytes.get() + len);
        self.memory
            .copy(addr, len)
            .map_err(|_| ReadError::Memory(addr))
    }

    /// One pointer-sized word at `addr`.
    pub fn word(&self, addr: usize) -> Read<usize> {
        let bytes = self.bytes_at(addr, 8)?;
        Ok(word_in(&bytes, 0).unwrap_or(0))
    }

    /// Read an object's header and type.
    pub fn object(&self, addr: usize) -> Read<Obj> {
        if addr < LOWEST_ADDRESS || !addr.is_multiple_of(8) {
            return Err(ReadError::Memory(addr));
        }
        // An object near the end of a mapping may be shorter than HEAD.
        let head = match self.bytes_at(addr, HEAD) {
            Ok(head) => head,
            Err(ReadError::Memory(_)) => self.bytes_at(addr, 16)?,
            Err(err) => return Err(err),
        };
        let ty = self.type_info(word_in(&head, 8).unwrap_or(0))?;
        let kind = self.kind_of(&ty);
        Ok(Obj {
            addr,
            ty,
            kind,
            head,
        })
    }

    fn type_info(&self, addr: usize) -> Read<Rc<TypeInfo>> {
        if let Some(info) = self.types.borrow().get(&addr) {
            return Ok(Rc::clone(info));
        }
        let l = self.layout;
        let header = self.bytes_at(addr, l.type_dictoffset + 8)?;
        let field = |offset| word_in(&header, offset).ok_or(ReadError::Corrupt("type"));
        let name_ptr = field(l.type_name)?;
        let flags = field(l.type_flags)? as u64;
        let basicsize = field(l.type_basicsize)?;
        let dictoffset = field(l.type_dictoffset)? as i64;
        let name = self.c_string(name_ptr, self.limits.name_bytes)?;
        if name.is_empty() || basicsize == 0 || basicsize > 1 << 20 {
            return Err(ReadError::Corrupt("type"));
        }
        let cached_keys = match l.heap_cached_keys {
            Some(offset) if flags & TPFLAGS_HEAPTYPE != 0 => self.word(addr + offset).unwrap_or(0),
            _ => 0,
        };
        let info = Rc::new(TypeInfo {
            name,
            flags,
            basicsize,
            dictoffset,
            cached_keys,
        });
        self.types.borrow_mut().insert(addr, Rc::clone(&info));
        Ok(info)
    }

    /// A NUL-terminated C string of at most `max` bytes, read a page at a
    /// time so that it never reads past the mapping it lives in.
    fn c_string(&self, addr: usize, max: usize) -> Read<String> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            let page_end = (at | 4095).checked_add(1).ok_or(ReadError::Memory(at))?;
            let len = (page_end - at).min(max - out.len()).min(64);
            let chunk = self.bytes_at(at, len)?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk);
            at += len;
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn kind_of(&self, ty: &TypeInfo) -> Kind {
        let flags = ty.flags;
        let py2 = self.layout.is_py2();
        match ty.name.as_str() {
            "NoneType" => return Kind::None,
            "bool" => return Kind::Bool,
            "float" => return Kind::Float,
            "cell" => return Kind::Cell,
            "module" => return Kind::Module,
            "instance" if py2 => return Kind::OldInstance,
            _ => {}
        }
        if flags & TPFLAGS_LONG_SUBCLASS != 0 || (py2 && flags & TPFLAGS_INT_SUBCLASS != 0) {
            Kind::Int
        } else if flags & TPFLAGS_UNICODE_SUBCLASS != 0 {
            Kind::Str
        } else if flags & TPFLAGS_BYTES_SUBCLASS != 0 {
            Kind::Bytes
        } else if flags & TPFLAGS_DICT_SUBCLASS != 0 {
            Kind::Dict
        } else if flags & TPFLAGS_TUPLE_SUBCLASS != 0 {
            Kind::Tuple
        } else if flags & TPFLAGS_LIST_SUBCLASS != 0 {
            Kind::List
        } else {
            Kind::Other
        }
    }

    /// A field of `obj`: from the header already read, else from memory.
    pub fn field(&self, obj: &Obj, offset: usize) -> Read<usize> {
        match word_in(&obj.head, offset) {
            Some(value) => Ok(value),
            None => self.word(obj.addr + offset),
        }
    }

    /// The text of a `str`/`unicode`/`bytes` object, at most `max` bytes of
    /// its storage.
    pub fn text(&self, obj: &Obj, max: usize) -> Read<Text> {
        match (obj.kind, self.layout.strings) {
            (Kind::Bytes, StringLayout::Py2) => self.byte_string(obj, 16, 36, max),
            (Kind::Bytes, StringLayout::Py3 { .. }) => self.byte_string(obj, 16, 32, max),
            (Kind::Str, StringLayout::Py2) => self.py2_unicode(obj, max),
            (
                Kind::Str,
                StringLayout::Py3 {
                    ascii_size,
                    compact_size,
                },
            ) => self.py3_str(obj, ascii_size, compact_size, max),
            _ => Err(ReadError::WrongType {
                expected: "a string",
                found: obj.ty.name.clone(),
            }),
        }
    }

    /// The text at `addr`, if it is a string.
    pub fn text_at(&self, addr: usize, max: usize) -> Read<Text> {
        let obj = self.object(addr)?;
        self.text(&obj, max)
    }

    /// A short string (a key, an attribute or variable name) by address,
    /// cached for the reader's life; `None` if it is not a string or longer
    /// than `name_bytes`.
    pub fn name_at(&self, addr: usize) -> Read<Option<Rc<str>>> {
        if let Some(cached) = self.names.borrow().get(&addr) {
            return Ok(cached.clone());
        }
        let obj = self.object(addr)?;
        let name = match obj.kind {
            Kind::Str | Kind::Bytes => {
                let text = self.text(&obj, self.limits.name_bytes)?;
                (!text.truncated).then(|| Rc::from(text.value.as_str()))
            }
            _ => None,
        };
        self.names.borrow_mut().insert(addr, name.clone());
        Ok(name)
    }

    /// `len` bytes at `addr`, from the header already read when they are in it.
    fn data(&self, obj: &Obj, addr: usize, len: usize) -> Read<Vec<u8>> {
        let start = addr.wrapping_sub(obj.addr);
        match obj.head.get(start..start.saturating_add(len)) {
            Some(bytes) if addr >= obj.addr => Ok(bytes.to_vec()),
            _ => self.bytes_at(addr, len),
        }
    }

    fn byte_string(&self, obj: &Obj, size_at: usize, data_at: usize, max: usize) -> Read<Text> {
        let length = self.field(obj, size_at)? as u64;
        if length > INSANE {
            return Err(ReadError::Corrupt("string length"));
        }
        let length = length as usize;
        let take = length.min(max);
        let data = if take == 0 {
            Vec::new()
        } else {
            self.data(obj, obj.addr + data_at, take)?
        };
        Ok(Text {
            value: String::from_utf8_lossy(&data).into_owned(),
            length,
            truncated: take < length,
        })
    }

    fn py3_str(&self, obj: &Obj, ascii_size: usize, compact_size: usize, max: usize) -> Read<Text> {
        let length = self.field(obj, 16)? as u64;
        if length > INSANE {
            return Err(ReadError::Corrupt("string length"));
        }
        let length = length as usize;
        let state = (self.field(obj, 32)? & 0xffff_ffff) as u32;
        let kind = ((state >> 2) & 7) as usize;
        let compact = (state >> 5) & 1 == 1;
        let ascii = (state >> 6) & 1 == 1;
        if !matches!(kind, 1 | 2 | 4) {
            return Err(ReadError::Corrupt("string kind"));
        }
        let data = if compact && ascii {
            obj.addr + ascii_size
        } else if compact {
            obj.addr + compact_size
        } else {
            self.field(obj, compact_size)?
        };
        let take = length.min(max / kind);
        let raw = if take == 0 {
            Vec::new()
        } else {
            self.data(obj, data, take * kind)?
        };
        Ok(Text {
            value: decode_units(&raw, kind),
            length,
            truncated: take < length,
        })
    }

    fn py2_unicode(&self, obj: &Obj, max: usize) -> Read<Text> {
        let length = self.field(obj, 16)? as u64;
        if length > INSANE {
            return Err(ReadError::Corrupt("string length"));
        }
        let length = length as usize;
        let data = self.field(obj, 24)?;
        let width = self.py2_unicode_width.get().unwrap_or(4);
        let take = length.min(max / width);
        let raw = if take == 0 {
            Vec::new()
        } else {
            self.bytes_at(data, take * width)?
        };
        Ok(Text {
            value: decode_units(&raw, width),
            length,
            truncated: take < length,
        })
    }

    /// An `int`'s value; `None` when it does not fit in an `i64`.
    pub fn int(&self, obj: &Obj) -> Read<Option<i64>> {
        if obj.kind != Kind::Int && obj.kind != Kind::Bool {
            return Err(ReadError::WrongType {
                expected: "an int",
                found: obj.ty.name.clone(),
            });
        }
        if self.layout.is_py2() && obj.ty.flags & TPFLAGS_INT_SUBCLASS != 0 {
            return Ok(Some(self.field(obj, 16)? as i64));
        }
        let tag = self.field(obj, 16)? as i64;
        let (negative, digits) = match self.layout.long {
            LongLayout::SignedSize => (tag < 0, tag.unsigned_abs()),
            LongLayout::Tagged => ((tag & 3) == 2, (tag as u64) >> 3),
        };
        if digits > 2 {
            return Ok(None);
        }
        let mut value: u64 = 0;
        if digits > 0 {
            let raw = self.bytes_at(obj.addr + 24, 4 * digits as usize)?;
            for (i, chunk) in raw.chunks_exact(4).enumerate() {
                let digit = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                value |= u64::from(digit & 0x3fff_ffff) << (30 * i);
            }
        }
        let value = value as i64;
        Ok(Some(if negative { -value } else { value }))
    }

    /// A `float`'s value.
    pub fn float(&self, obj: &Obj) -> Read<f64> {
        Ok(f64::from_bits(self.field(obj, 16)? as u64))
    }

    /// A tuple's or list's item addresses (at most `max`) and its length.
    pub fn items(&self, obj: &Obj, max: usize) -> Read<(Vec<usize>, usize)> {
        let length = self.field(obj, 16)? as u64;
        if length > INSANE {
            return Err(ReadError::Corrupt("sequence length"));
        }
        let length = length as usize;
        let base = match obj.kind {
            Kind::Tuple => obj.addr + self.layout.tuple_items,
            Kind::List => self.field(obj, self.layout.list_items)?,
            _ => {
                return Err(ReadError::WrongType {
                    expected: "a tuple or list",
                    found: obj.ty.name.clone(),
                });
            }
        };
        let take = length.min(max);
        if take == 0 {
            return Ok((Vec::new(), length));
        }
        let raw = self.bytes_at(base, 8 * take)?;
        let items = (0..take).filter_map(|i| word_in(&raw, 8 * i)).collect();
        Ok((items, length))
    }

    /// What a closure cell holds (0 when empty).
    pub fn cell_contents(&self, obj: &Obj) -> Read<usize> {
        self.field(obj, 16)
    }

    /// Where an instance (or module) keeps its attributes, if anywhere.
    pub fn attributes(&self, obj: &Obj) -> Read<Option<Mapping>> {
        let ty = &obj.ty;
        if obj.kind == Kind::OldInstance {
            let dict = self.field(obj, 24)?;
            return Ok((dict != 0).then_some(Mapping::Dict(dict)));
        }
        let word = std::mem::size_of::<usize>();
        if ty.flags & TPFLAGS_MANAGED_DICT != 0 {
            match self.layout.managed_dict {
                ManagedDict::None => {}
                ManagedDict::V311 => {
                    let dict = self.word(obj.addr - 3 * word)?;
                    if dict != 0 {
                        return Ok(Some(Mapping::Dict(dict)));
                    }
                    let values = self.word(obj.addr - 4 * word)?;
                    return Ok(self.split(ty, values));
                }
                ManagedDict::V312 => {
                    let tagged = self.word(obj.addr - 3 * word)?;
                    if tagged & 1 == 1 {
                        return Ok(self.split(ty, tagged.wrapping_add(1)));
                    }
                    return Ok((tagged != 0).then_some(Mapping::Dict(tagged)));
                }
                ManagedDict::V313 => {
                    let dict = self.word(obj.addr - 3 * word)?;
                    if dict != 0 {
                        return Ok(Some(Mapping::Dict(dict)));
                    }
                    if ty.flags & TPFLAGS_INLINE_VALUES == 0 {
                        return Ok(None);
                    }
                    let values = obj.addr + ty.basicsize;
                    // PyDictValues: capacity, size, embedded, valid.
                    let header = self.bytes_at(values, 4)?;
                    if header.get(3).copied().unwrap_or(0) == 0 {
                        return Ok(None);
                    }
                    return Ok(self.split(ty, values));
                }
            }
        }
        if ty.dictoffset > 0 && (ty.dictoffset as usize) < (1 << 20) {
            let dict = self.word(obj.addr + ty.dictoffset as usize)?;
            return Ok((dict != 0).then_some(Mapping::Dict(dict)));
        }
        Ok(None)
    }

    fn split(&self, ty: &TypeInfo, values: usize) -> Option<Mapping> {
        (values != 0 && ty.cached_keys != 0).then_some(Mapping::Split {
            keys: ty.cached_keys,
            values,
        })
    }

    /// Visit a mapping's live entries `(key, value)` in storage order, at
    /// most `limit` of them, until `visit` breaks.
    pub fn scan(
        &self,
        mapping: Mapping,
        limit: usize,
        mut visit: impl FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Read<Scan> {
        let mut scan = Scan::default();
        let mut emit = |key: usize, value: usize, scan: &mut Scan| {
            if key == 0 || value == 0 {
                return ControlFlow::Continue(());
            }
            scan.examined += 1;
            if visit(key, value).is_break() || scan.examined >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        match (self.layout.dict, mapping) {
            (DictLayout::Py2, Mapping::Dict(addr)) => {
                let dict = self.object(addr)?;
                self.expect_dict(&dict)?;
                let used = self.field(&dict, 24)? as u64;
                let mask = self.field(&dict, 32)? as u64;
                let table = self.field(&dict, 40)?;
                if used > INSANE || mask > INSANE || !(mask + 1).is_power_of_two() {
                    return Err(ReadError::Corrupt("dict"));
                }
                scan.used = Some(used as usize);
                let slots = mask as usize + 1;
                let mut slot = 0;
                while slot < slots {
                    let n = (slots - slot).min(ENTRY_CHUNK);
                    let raw = self.bytes_at(table.wrapping_add(24 * slot), 24 * n)?;
                    for i in 0..n {
                        let key = word_in(&raw, 24 * i + 8).unwrap_or(0);
                        let value = word_in(&raw, 24 * i + 16).unwrap_or(0);
                        if emit(key, value, &mut scan).is_break() {
                            return Ok(scan);
                        }
                    }
                    slot += n;
                }
                scan.complete = true;
            }
            (DictLayout::Py2, Mapping::Split { .. }) => return Err(ReadError::Corrupt("dict")),
            (layout, mapping) => {
                let (keys, values) = match mapping {
                    Mapping::Dict(addr) => {
                        let dict = self.object(addr)?;
                        self.expect_dict(&dict)?;
                        let used = self.field(&dict, 16)? as u64;
                        if used > INSANE {
                            return Err(ReadError::Corrupt("dict"));
                        }
                        scan.used = Some(used as usize);
                        (self.field(&dict, 32)?, self.field(&dict, 40)?)
                    }
                    Mapping::Split { keys, values } => (keys, values),
                };
                // With values of its own, a mapping's keys are a class's
                // shared keys (split dicts; 3.11+ managed values).
                let table = if values != 0 {
                    self.shared_keys_table(keys, layout)?
                } else {
                    Rc::new(self.keys_table(keys, layout, false)?)
                };
                let mut index = 0;
                while index < table.entries {
                    let n = (table.entries - index).min(ENTRY_CHUNK);
                    let read;
                    let raw = match &table.raw {
                        Some(raw) => raw
                            .get(table.entry_size * index..table.entry_size * (index + n))
                            .ok_or(ReadError::Corrupt("dict keys"))?,
                        None => {
                            read = self.bytes_at(
                                table.entries_at.wrapping_add(table.entry_size * index),
                                table.entry_size * n,
                            )?;
                            &read[..]
                        }
                    };
                    let split_values = if values != 0 {
                        Some(self.bytes_at(
                            values.wrapping_add(table.values_offset + 8 * index),
                            8 * n,
                        )?)
                    } else {
                        None
                    };
                    for i in 0..n {
                        let key = word_in(raw, table.entry_size * i + table.key_at).unwrap_or(0);
                        let value = match &split_values {
                            Some(values) => word_in(values, 8 * i).unwrap_or(0),
                            None => {
                                word_in(raw, table.entry_size * i + table.key_at + 8).unwrap_or(0)
                            }
                        };
                        if emit(key, value, &mut scan).is_break() {
                            return Ok(scan);
                        }
                    }
                    index += n;
                }
                scan.complete = true;
            }
        }
        Ok(scan)
    }

    /// Where a 3.x dict keys object keeps its entries; with `whole`, the
    /// entries themselves too (one read, when they fit in [`ENTRY_CHUNK`]).
    fn keys_table(&self, keys: usize, layout: DictLayout, whole: bool) -> Read<KeysTable> {
        let header = self.bytes_at(keys, 40)?;
        let mut table = match layout {
            DictLayout::Compact { values_offset } => {
                let log2_index_bytes = header.get(9).copied().unwrap_or(64);
                let kind = header.get(10).copied().unwrap_or(0);
                let nentries = word_in(&header, 24).unwrap_or(0) as u64;
                if log2_index_bytes > 40 || nentries > INSANE {
                    return Err(ReadError::Corrupt("dict keys"));
                }
                let (entry_size, key_at) = if kind == 0 { (24, 8) } else { (16, 0) };
                KeysTable {
                    entries_at: keys.wrapping_add(32 + (1usize << log2_index_bytes)),
                    entries: nentries as usize,
                    entry_size,
                    key_at,
                    values_offset,
                    raw: None,
                }
            }
            _ => {
                let size = word_in(&header, 8).unwrap_or(0) as u64;
                let nentries = word_in(&header, 32).unwrap_or(0) as u64;
                if size > INSANE || nentries > size {
                    return Err(ReadError::Corrupt("dict keys"));
                }
                let index_bytes = match size {
                    0..=0xff => 1,
                    0x100..=0xffff => 2,
                    0x1_0000..=0xffff_ffff => 4,
                    _ => 8,
                };
                KeysTable {
                    entries_at: keys.wrapping_add(40 + index_bytes * size as usize),
                    entries: nentries as usize,
                    entry_size: 24,
                    key_at: 8,
                    values_offset: 0,
                    raw: None,
                }
            }
        };
        if whole && table.entries <= ENTRY_CHUNK {
            table.raw = Some(self.bytes_at(table.entries_at, table.entry_size * table.entries)?);
        }
        Ok(table)
    }

    /// The keys table shared by the instances of one class (split dicts,
    /// 3.11+ managed values), read once per reader: looking the same
    /// attribute up on a hundred thread or request objects then costs one
    /// read of each one's values, not three. Shared keys only grow (new
    /// attribute names are appended), so a table read earlier in the
    /// reader's life still places every name it lists.
    fn shared_keys_table(&self, keys: usize, layout: DictLayout) -> Read<Rc<KeysTable>> {
        if let Some(table) = self.shared_keys.borrow().get(&keys) {
            return Ok(Rc::clone(table));
        }
        let table = Rc::new(self.keys_table(keys, layout, true)?);
        self.shared_keys
            .borrow_mut()
            .insert(keys, Rc::clone(&table));
        Ok(table)
    }

    fn expect_dict(&self, obj: &Obj) -> Read<()> {
        if obj.kind == Kind::Dict {
            Ok(())
        } else {
            Err(ReadError::WrongType {
                expected: "a dict",
                found: obj.ty.name.clone(),
            })
        }
    }

    /// Look string keys up in a mapping: the value address of each of
    /// `wanted` that is present (scanning at most `dict_entries` entries),
    /// and how much was scanned.
    pub fn lookup(&self, mapping: Mapping, wanted: &[&str]) -> Read<(Vec<Option<usize>>, Scan)> {
        if let (DictLayout::Py2, Mapping::Dict(addr)) = (self.layout.dict, mapping)
            && let Some(answer) = self.probe_py2(addr, wanted)?
        {
            return Ok(answer);
        }
        let mut found = vec![None; wanted.len()];
        let mut missing = wanted.len();
        let scan = self.scan(mapping, self.limits.dict_entries, |key, value| {
            if let Ok(Some(name)) = self.name_at(key)
                && let Some(i) = wanted.iter().position(|w| **w == *name)
                && let Some(slot) = found.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(value);
                missing -= 1;
                if missing == 0 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok((found, scan))
    }

    /// 2.7: look `wanted` up the way `dict` does, through its hash table, with
    /// `str`'s hash computed here — a handful of reads however big the dict.
    /// Only conclusive when at least one key is found (proving the hash is
    /// not randomized, `-R` / `PYTHONHASHSEED`); `None` means "scan instead".
    fn probe_py2(&self, dict: usize, wanted: &[&str]) -> Read<Option<(Vec<Option<usize>>, Scan)>> {
        let obj = self.object(dict)?;
        self.expect_dict(&obj)?;
        let used = self.field(&obj, 24)? as u64;
        let mask = self.field(&obj, 32)? as u64;
        let table = self.field(&obj, 40)?;
        if used > INSANE || mask > INSANE || !(mask + 1).is_power_of_two() {
            return Err(ReadError::Corrupt("dict"));
        }
        let mut found = vec![None; wanted.len()];
        for (slot, key) in found.iter_mut().zip(wanted) {
            let hash = py2_str_hash(key.as_bytes());
            let mut i = hash as u64;
            let mut perturb = hash as u64;
            // CPython's probe sequence; it ends at an empty slot. Bounded:
            // after 64 steps perturb is 0 and the sequence cycles the table.
            for _ in 0..(mask + 1).min(4096) {
                let at = table.wrapping_add(24 * (i & mask) as usize);
                let entry = self.bytes_at(at, 24)?;
                let entry_hash = word_in(&entry, 0).unwrap_or(0) as i64;
                let entry_key = word_in(&entry, 8).unwrap_or(0);
                if entry_key == 0 {
                    break;
                }
                if entry_hash == hash
                    && self.name_at(entry_key).ok().flatten().as_deref() == Some(*key)
                {
                    let value = word_in(&entry, 16).unwrap_or(0);
                    *slot = (value != 0).then_some(value);
                    break;
                }
                i = (i << 2)
                    .wrapping_add(i)
                    .wrapping_add(perturb)
                    .wrapping_add(1);
                perturb >>= 5;
            }
        }
        if found.iter().all(Option::is_none) {
            return Ok(None);
        }
        let scan = Scan {
            used: Some(used as usize),
            examined: found.iter().flatten().count(),
            complete: true,
        };
        Ok(Some((found, scan)))
    }

    /// A Python-like repr of the object at `addr`: bounded in depth, items
    /// and length; cycles shown as `...`; values under secret-looking keys
    /// replaced by `***` without being read, and secret `name=value` pairs
    /// inside strings (query strings, URLs) redacted.
    pub fn repr(&self, addr: usize, redactor: &Redactor) -> String {
        let mut out = String::new();
        let mut path = Vec::new();
        self.repr_into(&mut out, addr, 0, &mut path, redactor);
        truncate_chars(&mut out, self.limits.repr_chars);
        out
    }

    fn repr_into(
        &self,
        out: &mut String,
        addr: usize,
        depth: usize,
        path: &mut Vec<usize>,
        redactor: &Redactor,
    ) {
        if out.chars().count() > self.limits.repr_chars {
            out.push('…');
            return;
        }
        let obj = match self.object(addr) {
            Ok(obj) => obj,
            Err(ReadError::Budget) => return out.push('…'),
            Err(_) => {
                let _ = write!(out, "<unreadable at {addr:#x}>");
                return;
            }
        };
        let container = matches!(obj.kind, Kind::Dict | Kind::Tuple | Kind::List);
        if container && path.contains(&addr) {
            out.push_str(match obj.kind {
                Kind::Dict => "{...}",
                Kind::List => "[...]",
                _ => "(...)",
            });
            return;
        }
        if container && depth >= self.limits.repr_depth {
            out.push_str(match obj.kind {
                Kind::Dict => "{…}",
                Kind::List => "[…]",
                _ => "(…)",
            });
            return;
        }
        let max = self.limits.repr_chars;
        match obj.kind {
            Kind::None => out.push_str("None"),
            Kind::Bool => out.push_str(match self.int(&obj) {
                Ok(Some(0)) => "False",
                Ok(Some(_)) => "True",
                _ => "<bool?>",
            }),
            Kind::Int => match self.int(&obj) {
                Ok(Some(value)) => {
                    let _ = write!(out, "{value}");
                }
                Ok(None) => out.push_str("<big int>"),
                Err(_) => out.push_str("<int?>"),
            },
            Kind::Float => match self.float(&obj) {
                Ok(value) => {
                    let _ = write!(out, "{value:?}");
                }
                Err(_) => out.push_str("<float?>"),
            },
            Kind::Str | Kind::Bytes => match self.text(&obj, max) {
                Ok(text) => {
                    let prefix = match (obj.kind, self.layout.is_py2()) {
                        (Kind::Bytes, false) => "b",
                        (Kind::Str, true) => "u",
                        _ => "",
                    };
                    // `name=value` pairs anywhere (a QUERY_STRING value, a
                    // URL) get the query-string redaction too.
                    let shown = crate::redact::userinfo(&text.value);
                    if shown.contains('=') {
                        quote(out, prefix, &redactor.query(&shown));
                    } else {
                        quote(out, prefix, &shown);
                    }
                    if text.truncated {
                        let _ = write!(out, "…({} long)", text.length);
                    }
                }
                Err(_) => out.push_str("<string?>"),
            },
            Kind::Tuple | Kind::List => {
                let (open, close) = if obj.kind == Kind::List {
                    ('[', ']')
                } else {
                    ('(', ')')
                };
                match self.items(&obj, self.limits.repr_items) {
                    Ok((items, length)) => {
                        path.push(addr);
                        out.push(open);
                        // `['--password', 'x']`, `('token', 'x')`: an item
                        // after a secret-looking string is a secret's value.
                        let mut after_secret = false;
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                out.push_str(", ");
                            }
                            if after_secret {
                                out.push_str(MASK);
                            } else {
                                self.repr_into(out, *item, depth + 1, path, redactor);
                            }
                            after_secret = self
                                .object(*item)
                                .ok()
                                .filter(|o| matches!(o.kind, Kind::Str | Kind::Bytes))
                                .and_then(|o| self.text(&o, self.limits.name_bytes).ok())
                                .is_some_and(|t| redactor.is_secret(&t.value));
                        }
                        if length > items.len() {
                            let _ = write!(out, ", …{} more", length - items.len());
                        } else if length == 1 && obj.kind == Kind::Tuple {
                            out.push(',');
                        }
                        out.push(close);
                        path.pop();
                    }
                    Err(_) => out.push_str("<sequence?>"),
                }
            }
            Kind::Dict => {
                path.push(addr);
                out.push('{');
                let mut shown = 0;
                let result =
                    self.scan(Mapping::Dict(addr), self.limits.repr_items, |key, value| {
                        if shown > 0 {
                            out.push_str(", ");
                        }
                        shown += 1;
                        let name = self.name_at(key).ok().flatten();
                        self.repr_into(out, key, depth + 1, path, redactor);
                        out.push_str(": ");
                        match name {
                            Some(name) if redactor.is_secret(&name) => out.push_str(MASK),
                            _ => self.repr_into(out, value, depth + 1, path, redactor),
                        }
                        ControlFlow::Continue(())
                    });
                match result {
                    Ok(scan) if !scan.complete => {
                        let more = scan.used.map_or(String::new(), |used| {
                            format!("{} ", used.saturating_sub(scan.examined))
                        });
                        let _ = write!(out, ", …{more}more");
                    }
                    Ok(_) => {}
                    Err(_) => out.push_str("<dict?>"),
                }
                out.push('}');
                path.pop();
            }
            Kind::Cell => match self.cell_contents(&obj) {
                Ok(0) => out.push_str("<empty cell>"),
                Ok(inner) => self.repr_into(out, inner, depth, path, redactor),
                Err(_) => out.push_str("<cell?>"),
            },
            Kind::Module => {
                let _ = write!(out, "<module at {addr:#x}>");
            }
            Kind::OldInstance | Kind::Other => {
                let _ = write!(out, "<{} object at {addr:#x}>", obj.ty.name);
            }
        }
    }
}

/// The little-endian word at `offset` of `bytes`, if it is there.
pub(crate) fn word_in(bytes: &[u8], offset: usize) -> Option<usize> {
    let raw: [u8; 8] = bytes.get(offset..offset.checked_add(8)?)?.try_into().ok()?;
    Some(usize::from_ne_bytes(raw))
}

/// Python 2.7's `str` hash without randomization (`Objects/stringobject.c`,
/// `string_hash` with a zero `_Py_HashSecret`).
fn py2_str_hash(bytes: &[u8]) -> i64 {
    let Some(&first) = bytes.first() else {
        return 0;
    };
    let mut x: i64 = i64::from(first) << 7;
    for &b in bytes {
        x = x.wrapping_mul(1_000_003) ^ i64::from(b);
    }
    x ^= bytes.len() as i64;
    if x == -1 { -2 } else { x }
}

/// Decode 1-, 2- or 4-byte code units (Latin-1, UCS-2/UTF-16, UCS-4),
/// replacing anything invalid with U+FFFD.
fn decode_units(raw: &[u8], width: usize) -> String {
    match width {
        1 => raw.iter().map(|&b| b as char).collect(),
        2 => {
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => raw
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
    }
}

/// Append `text` quoted and escaped as Python would show it.
fn quote(out: &mut String, prefix: &str, text: &str) {
    out.push_str(prefix);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || crate::sanitize::is_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// Cut `text` to `max` characters, marking the cut.
pub(crate) fn truncate_chars(text: &mut String, max: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
        text.push('…');
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! Fake target memory for unit tests: objects built byte by byte with
    //! the layout under test, at addresses of their own.

    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use remoteprocess::{Error, ProcessMemory};

    use super::super::layout::{
        DictLayout, Layout, StringLayout, TPFLAGS_BYTES_SUBCLASS, TPFLAGS_DICT_SUBCLASS,
        TPFLAGS_HEAPTYPE, TPFLAGS_LIST_SUBCLASS, TPFLAGS_LONG_SUBCLASS, TPFLAGS_MANAGED_DICT,
        TPFLAGS_TUPLE_SUBCLASS, TPFLAGS_UNICODE_SUBCLASS,
    };

    /// Memory made of separate regions; anything else is unmapped.
    #[derive(Default)]
    pub struct Memory {
        regions: RefCell<BTreeMap<usize, Vec<u8>>>,
        next: RefCell<usize>,
        /// Reads served, to check that bounds hold.
        pub reads: RefCell<usize>,
    }

    impl ProcessMemory for Memory {
        fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), Error> {
            *self.reads.borrow_mut() += 1;
            let regions = self.regions.borrow();
            let (start, bytes) = regions
                .range(..=addr)
                .next_back()
                .ok_or_else(|| Error::Other("unmapped".into()))?;
            let offset = addr - start;
            let src = bytes
                .get(offset..offset + buf.len())
                .ok_or_else(|| Error::Other("unmapped".into()))?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    /// Builds objects of one layout.
    pub struct Builder {
        pub memory: Memory,
        pub layout: Layout,
        types: RefCell<BTreeMap<String, usize>>,
    }

    fn w(value: usize) -> [u8; 8] {
        value.to_ne_bytes()
    }

    impl Builder {
        pub fn new(layout: Layout) -> Builder {
            let memory = Memory::default();
            *memory.next.borrow_mut() = 0x10_0000;
            Builder {
                memory,
                layout,
                types: RefCell::new(BTreeMap::new()),
            }
        }

        /// Place `bytes` at a fresh 16-aligned address, with `before`
        /// bytes of room in front (for managed-dict pre-headers).
        pub fn place_with(&self, bytes: Vec<u8>, before: usize) -> usize {
            let mut next = self.memory.next.borrow_mut();
            let start = *next;
            let addr = start + before;
            let mut region = vec![0u8; before];
            region.extend(bytes);
            // Real objects sit inside mapped pages: a short overread (a C
            // string read in chunks) succeeds there, so it does here.
            region.extend([0u8; 64]);
            *next = (addr + region.len() - before + 0x100) & !0xf;
            self.memory.regions.borrow_mut().insert(start, region);
            addr
        }

        pub fn place(&self, bytes: Vec<u8>) -> usize {
            self.place_with(bytes, 0)
        }

        /// Overwrite bytes at `addr` (which must be inside a region).
        pub fn poke(&self, addr: usize, bytes: &[u8]) {
            let mut regions = self.memory.regions.borrow_mut();
            let (start, region) = regions.range_mut(..=addr).next_back().expect("mapped");
            let offset = addr - *start;
            region[offset..offset + bytes.len()].copy_from_slice(bytes);
        }

        /// A type object named `name` with `flags`.
        pub fn ty(&self, name: &str, flags: u64, basicsize: usize, dictoffset: i64) -> usize {
            if let Some(addr) = self.types.borrow().get(name) {
                return *addr;
            }
            let mut cname = name.as_bytes().to_vec();
            cname.push(0);
            let name_addr = self.place(cname);
            let l = &self.layout;
            let mut t = vec![0u8; 900];
            t[l.type_name..l.type_name + 8].copy_from_slice(&w(name_addr));
            t[l.type_basicsize..l.type_basicsize + 8].copy_from_slice(&w(basicsize));
            t[l.type_flags..l.type_flags + 8].copy_from_slice(&flags.to_ne_bytes());
            t[l.type_dictoffset..l.type_dictoffset + 8].copy_from_slice(&dictoffset.to_ne_bytes());
            let addr = self.place(t);
            self.types.borrow_mut().insert(name.to_string(), addr);
            addr
        }

        fn head(&self, type_addr: usize, size: usize) -> Vec<u8> {
            let mut o = vec![0u8; size];
            o[0..8].copy_from_slice(&w(1));
            o[8..16].copy_from_slice(&w(type_addr));
            o
        }

        /// A text string (`str` on 3.x, 2.7 `str` bytes on 2.7).
        pub fn str(&self, text: &str) -> usize {
            match self.layout.strings {
                StringLayout::Py2 => self.bytes_obj("str", text.as_bytes()),
                StringLayout::Py3 { ascii_size, .. } => {
                    assert!(text.is_ascii(), "fake builds ASCII strings only");
                    let t = self.ty("str", TPFLAGS_UNICODE_SUBCLASS, ascii_size, 0);
                    let mut o = self.head(t, ascii_size);
                    o[16..24].copy_from_slice(&w(text.len()));
                    // kind 1, compact, ascii
                    let state: u32 = (1 << 2) | (1 << 5) | (1 << 6);
                    o[32..36].copy_from_slice(&state.to_ne_bytes());
                    o.extend_from_slice(text.as_bytes());
                    o.push(0);
                    self.place(o)
                }
            }
        }

        /// A str claiming `length` characters but holding only `stored`.
        pub fn huge_str(&self, stored: &str, length: usize) -> usize {
            let addr = self.str(stored);
            self.poke(addr + 16, &w(length));
            addr
        }

        pub fn bytes_obj(&self, type_name: &str, data: &[u8]) -> usize {
            let t = self.ty(type_name, TPFLAGS_BYTES_SUBCLASS, 33, 0);
            let at = if self.layout.is_py2() { 36 } else { 32 };
            let mut o = self.head(t, at);
            o[16..24].copy_from_slice(&w(data.len()));
            o.extend_from_slice(data);
            o.push(0);
            self.place(o)
        }

        pub fn int(&self, value: u32) -> usize {
            let t = self.ty("int", TPFLAGS_LONG_SUBCLASS, 24, 0);
            let mut o = self.head(t, 28);
            let tag = match self.layout.long {
                super::super::layout::LongLayout::SignedSize => usize::from(value != 0),
                super::super::layout::LongLayout::Tagged => {
                    if value == 0 {
                        1
                    } else {
                        1 << 3
                    }
                }
            };
            o[16..24].copy_from_slice(&w(tag));
            o[24..28].copy_from_slice(&value.to_ne_bytes());
            self.place(o)
        }

        pub fn none(&self) -> usize {
            let t = self.ty("NoneType", 0, 16, 0);
            self.place(self.head(t, 16))
        }

        pub fn tuple(&self, items: &[usize]) -> usize {
            let t = self.ty("tuple", TPFLAGS_TUPLE_SUBCLASS, 24, 0);
            let mut o = self.head(t, self.layout.tuple_items);
            o[16..24].copy_from_slice(&w(items.len()));
            for item in items {
                o.extend_from_slice(&w(*item));
            }
            self.place(o)
        }

        pub fn list(&self, items: &[usize]) -> usize {
            let t = self.ty("list", TPFLAGS_LIST_SUBCLASS, 40, 0);
            let array: Vec<u8> = items.iter().flat_map(|i| w(*i)).collect();
            let array = self.place(if array.is_empty() { vec![0; 8] } else { array });
            let mut o = self.head(t, 40);
            o[16..24].copy_from_slice(&w(items.len()));
            o[24..32].copy_from_slice(&w(array));
            self.place(o)
        }

        /// A dict of `entries` in this layout (general keys).
        pub fn dict(&self, entries: &[(usize, usize)]) -> usize {
            let t = self.ty("dict", TPFLAGS_DICT_SUBCLASS, 48, 0);
            match self.layout.dict {
                DictLayout::Py2 => {
                    let slots = (entries.len() * 2).next_power_of_two().max(8);
                    let mut table = vec![0u8; 24 * slots];
                    for (i, (k, v)) in entries.iter().enumerate() {
                        // Spread entries over the table like a hash would.
                        let slot = (i * 2) % slots;
                        table[24 * slot + 8..24 * slot + 16].copy_from_slice(&w(*k));
                        table[24 * slot + 16..24 * slot + 24].copy_from_slice(&w(*v));
                    }
                    let table = self.place(table);
                    let mut o = self.head(t, 56);
                    o[24..32].copy_from_slice(&w(entries.len()));
                    o[32..40].copy_from_slice(&w(slots - 1));
                    o[40..48].copy_from_slice(&w(table));
                    self.place(o)
                }
                DictLayout::Classic => {
                    let size = (entries.len() * 3 / 2 + 1).next_power_of_two().max(8);
                    let index_bytes = if size <= 0xff {
                        1
                    } else if size <= 0xffff {
                        2
                    } else {
                        4
                    };
                    let mut keys = vec![0u8; 40 + index_bytes * size];
                    keys[8..16].copy_from_slice(&w(size));
                    keys[32..40].copy_from_slice(&w(entries.len()));
                    for (k, v) in entries {
                        keys.extend_from_slice(&w(0x5eed));
                        keys.extend_from_slice(&w(*k));
                        keys.extend_from_slice(&w(*v));
                    }
                    let keys = self.place(keys);
                    let mut o = self.head(t, 48);
                    o[16..24].copy_from_slice(&w(entries.len()));
                    o[32..40].copy_from_slice(&w(keys));
                    self.place(o)
                }
                DictLayout::Compact { .. } => {
                    let keys = self.compact_keys(entries, 0);
                    let mut o = self.head(t, 48);
                    o[16..24].copy_from_slice(&w(entries.len()));
                    o[32..40].copy_from_slice(&w(keys));
                    self.place(o)
                }
            }
        }

        /// A 2.7 dict with string keys placed where CPython would put them
        /// (by `str` hash and probing), like a real one.
        pub fn py2_hashed_dict(&self, entries: &[(&str, usize)]) -> usize {
            let t = self.ty("dict", TPFLAGS_DICT_SUBCLASS, 48, 0);
            let slots = (entries.len() * 3).next_power_of_two().max(8);
            let mask = (slots - 1) as u64;
            let mut table = vec![0u8; 24 * slots];
            for (key, value) in entries {
                let hash = super::py2_str_hash(key.as_bytes());
                let (mut i, mut perturb) = (hash as u64, hash as u64);
                loop {
                    let at = 24 * (i & mask) as usize;
                    if table[at + 8..at + 16] == [0; 8] {
                        table[at..at + 8].copy_from_slice(&hash.to_ne_bytes());
                        table[at + 8..at + 16].copy_from_slice(&w(self.str(key)));
                        table[at + 16..at + 24].copy_from_slice(&w(*value));
                        break;
                    }
                    i = (i << 2)
                        .wrapping_add(i)
                        .wrapping_add(perturb)
                        .wrapping_add(1);
                    perturb >>= 5;
                }
            }
            let table = self.place(table);
            let mut o = self.head(t, 56);
            o[24..32].copy_from_slice(&w(entries.len()));
            o[32..40].copy_from_slice(&w(slots - 1));
            o[40..48].copy_from_slice(&w(table));
            self.place(o)
        }

        /// A 3.11+ keys object: `kind` 0 general, 1 unicode, 2 split.
        pub fn compact_keys(&self, entries: &[(usize, usize)], kind: u8) -> usize {
            let log2_size = (entries.len() * 3 / 2 + 1)
                .next_power_of_two()
                .max(8)
                .trailing_zeros() as u8;
            let log2_index_bytes = log2_size + if log2_size < 8 { 0 } else { 1 };
            let mut keys = vec![0u8; 32 + (1usize << log2_index_bytes)];
            keys[8] = log2_size;
            keys[9] = log2_index_bytes;
            keys[10] = kind;
            keys[24..32].copy_from_slice(&w(entries.len()));
            for (k, v) in entries {
                if kind == 0 {
                    keys.extend_from_slice(&w(0x5eed));
                }
                keys.extend_from_slice(&w(*k));
                keys.extend_from_slice(&w(if kind == 2 { 0 } else { *v }));
            }
            self.place(keys)
        }

        /// A heap-type instance whose attributes live in a dict at
        /// `tp_dictoffset` 16 (≤ 3.10) or in the managed pre-header (3.11+).
        pub fn instance(&self, class: &str, attributes: &[(usize, usize)]) -> usize {
            let dict = self.dict(attributes);
            if self.layout.heap_cached_keys.is_some() {
                let t = self.ty(class, TPFLAGS_HEAPTYPE | TPFLAGS_MANAGED_DICT, 16, -1);
                let mut o = self.head(t, 16);
                o.extend_from_slice(&[0; 16]);
                // Managed dict pointer three words before the object (tag bit clear).
                let mut pre = vec![0u8; 32];
                pre[8..16].copy_from_slice(&w(dict));
                pre.extend(o);
                let start = self.place(pre);
                start + 32
            } else {
                let t = self.ty(class, TPFLAGS_HEAPTYPE, 32, 16);
                let mut o = self.head(t, 32);
                o[16..24].copy_from_slice(&w(dict));
                self.place(o)
            }
        }

        /// A 3.11+ instance with split values over shared keys.
        pub fn split_instance(&self, class: &str, attributes: &[(usize, usize)]) -> usize {
            let keys = self.compact_keys(attributes, 2);
            let t = self.ty(class, TPFLAGS_HEAPTYPE | TPFLAGS_MANAGED_DICT, 16, -1);
            let offset = self.layout.heap_cached_keys.expect("3.11+");
            self.poke(t + offset, &w(keys));
            let DictLayout::Compact { values_offset } = self.layout.dict else {
                panic!("3.11+ only")
            };
            let mut values = vec![0u8; values_offset];
            if values_offset > 0 {
                values[3] = 1; // valid
            }
            for (_, v) in attributes {
                values.extend_from_slice(&w(*v));
            }
            let values = self.place(values);
            let mut pre = vec![0u8; 32];
            match self.layout.managed_dict {
                super::super::layout::ManagedDict::V311 => {
                    pre[0..8].copy_from_slice(&w(values));
                }
                super::super::layout::ManagedDict::V312 => {
                    pre[8..16].copy_from_slice(&w(values - 1));
                }
                _ => panic!("use a 3.11 or 3.12 layout"),
            }
            pre.extend(self.head(t, 32));
            self.place(pre) + 32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Builder;
    use super::*;

    fn layouts() -> Vec<Layout> {
        [(2, 7), (3, 6), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14)]
            .iter()
            .filter_map(|(a, b)| Layout::for_version(*a, *b))
            .collect()
    }

    #[test]
    fn strings_ints_and_containers_on_every_layout() {
        for layout in layouts() {
            let b = Builder::new(layout.clone());
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let s = b.str("REQUEST_METHOD");
            let text = r.text_at(s, 100).expect("text");
            assert_eq!(text.value, "REQUEST_METHOD", "{:?}", layout.version);
            assert!(!text.truncated);
            let cut = r.text_at(s, 4).expect("text");
            assert_eq!(
                (cut.value.as_str(), cut.length, cut.truncated),
                ("REQU", 14, true)
            );

            let n = b.int(42);
            let obj = r.object(n).expect("int");
            assert_eq!(r.int(&obj), Ok(Some(42)), "{:?}", layout.version);

            let get = b.str("GET");
            let key = b.str("REQUEST_METHOD");
            let other = b.str("PATH_INFO");
            let path = b.str("/x");
            let d = b.dict(&[(key, get), (other, path)]);
            let (found, scan) = r
                .lookup(
                    Mapping::Dict(d),
                    &["PATH_INFO", "REQUEST_METHOD", "MISSING"],
                )
                .expect("lookup");
            assert_eq!(
                found,
                vec![Some(path), Some(get), None],
                "{:?}",
                layout.version
            );
            assert!(scan.complete);
            assert_eq!(scan.used, Some(2));

            let t = b.tuple(&[n, s]);
            let l = b.list(&[t, b.none()]);
            let red = Redactor::default();
            let repr = r.repr(l, &red);
            assert_eq!(
                repr, "[(42, 'REQUEST_METHOD'), None]",
                "{:?}",
                layout.version
            );
        }
    }

    #[test]
    fn instance_attributes_by_layout() {
        for layout in layouts() {
            let b = Builder::new(layout.clone());
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let name = b.str("_name");
            let value = b.str("worker-1");
            let obj = b.instance("Thread", &[(name, value)]);
            let obj = r.object(obj).expect("instance");
            let mapping = r.attributes(&obj).expect("read").expect("has attributes");
            let (found, _) = r.lookup(mapping, &["_name"]).expect("lookup");
            let text = r.text_at(found[0].expect("found"), 64).expect("text");
            assert_eq!(text.value, "worker-1", "{:?}", layout.version);
        }
        for version in [(3, 11), (3, 12)] {
            let b = Builder::new(Layout::for_version(version.0, version.1).expect("layout"));
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let (k1, k2) = (b.str("_ident"), b.str("_name"));
            let (v1, v2) = (b.int(7), b.str("split-values"));
            let obj = b.split_instance("Thread", &[(k1, v1), (k2, v2)]);
            let obj = r.object(obj).expect("instance");
            let mapping = r.attributes(&obj).expect("read").expect("split");
            assert!(matches!(mapping, Mapping::Split { .. }), "{version:?}");
            let (found, _) = r.lookup(mapping, &["_name"]).expect("lookup");
            assert_eq!(
                r.text_at(found[0].expect("found"), 64).map(|t| t.value),
                Ok("split-values".to_string())
            );
        }
    }

    #[test]
    fn a_class_shared_keys_are_read_once_per_reader() {
        for version in [(3, 11), (3, 12)] {
            let b = Builder::new(Layout::for_version(version.0, version.1).expect("layout"));
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let (k1, k2) = (b.str("_ident"), b.str("_name"));
            let (v1, v2) = (b.int(7), b.str("worker-1"));
            let obj = b.split_instance("Thread", &[(k1, v1), (k2, v2)]);
            let obj = r.object(obj).expect("instance");
            let mapping = r.attributes(&obj).expect("read").expect("split");
            let (first, _) = r.lookup(mapping, &["_name"]).expect("lookup");
            assert_eq!(first[0], Some(v2), "{version:?}");
            // Another instance of the class (here: the same values array
            // with a new value) costs one read of its values, no more.
            let Mapping::Split { values, .. } = mapping else {
                panic!("split")
            };
            let DictLayout::Compact { values_offset } = b.layout.dict else {
                panic!("3.11+")
            };
            let renamed = b.str("worker-2");
            b.poke(values + values_offset + 8, &renamed.to_ne_bytes());
            let before = r.reads.get();
            let (again, _) = r.lookup(mapping, &["_name"]).expect("lookup");
            assert_eq!(again[0], Some(renamed), "{version:?}");
            assert_eq!(r.reads.get() - before, 1, "{version:?}: only the values");
        }
    }

    #[test]
    fn cycles_are_cut_and_secrets_never_read() {
        for layout in layouts() {
            let b = Builder::new(layout.clone());
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let (me, pw) = (b.str("me"), b.str("password"));
            // The value under "password" is unmapped: had it been read, the
            // repr would say <unreadable>.
            let (qs, query) = (b.str("QUERY_STRING"), b.str("a=1&password=hunter2"));
            let d = b.dict(&[(me, 0x10_0000), (pw, 0xdead_0000), (qs, query)]);
            patch_first_value(&b, d, d);
            let repr = r.repr(d, &Redactor::default());
            assert_eq!(
                repr, "{'me': {...}, 'password': ***, 'QUERY_STRING': 'a=1&password=***'}",
                "{:?}",
                layout.version
            );
        }
    }

    /// Make the first entry's value of dict `d` point to `value`.
    fn patch_first_value(b: &Builder, d: usize, value: usize) {
        let l = &b.layout;
        let r = Reader::new(&b.memory, l, Limits::default());
        let obj = r.object(d).expect("dict");
        match l.dict {
            DictLayout::Py2 => {
                let table = r.field(&obj, 40).expect("table");
                b.poke(table + 16, &value.to_ne_bytes());
            }
            DictLayout::Classic => {
                let keys = r.field(&obj, 32).expect("keys");
                let size = r.word(keys + 8).expect("size");
                b.poke(keys + 40 + size + 16, &value.to_ne_bytes());
            }
            DictLayout::Compact { .. } => {
                let keys = r.field(&obj, 32).expect("keys");
                let raw = r.bytes_at(keys, 32).expect("header");
                b.poke(keys + 32 + (1usize << raw[9]) + 16, &value.to_ne_bytes());
            }
        }
    }

    #[test]
    fn corrupt_pointers_and_sizes_are_errors_not_hangs() {
        for layout in layouts() {
            let b = Builder::new(layout.clone());
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            assert!(matches!(r.object(0), Err(ReadError::Memory(0))));
            assert!(matches!(
                r.object(0xdead_beef_0000),
                Err(ReadError::Memory(_))
            ));
            // Misaligned.
            let s = b.str("abc");
            assert!(r.object(s + 1).is_err());
            // A string claiming 2^39 characters: read at most the limit,
            // which here runs off the end of the region: an error, quickly.
            let huge = b.huge_str("abc", 1 << 39);
            let before = *b.memory.reads.borrow();
            let result = r.text_at(huge, 2048);
            assert!(*b.memory.reads.borrow() - before <= 5);
            assert!(result.is_err() || result.is_ok_and(|t| t.truncated));
            // An absurd length is rejected outright.
            let absurd = b.huge_str("abc", usize::MAX / 2);
            assert!(matches!(r.text_at(absurd, 64), Err(ReadError::Corrupt(_))));
            // A dict whose keys pointer is garbage.
            let d = b.dict(&[]);
            b.poke(
                d + if layout.is_py2() { 40 } else { 32 },
                &0x7777usize.to_ne_bytes(),
            );
            assert!(r.lookup(Mapping::Dict(d), &["x"]).is_err());
            // A type pointer to nowhere.
            let bogus = b.place(vec![1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0]);
            assert!(r.object(bogus).is_err());
        }
    }

    #[test]
    fn big_dicts_are_scanned_up_to_the_limit() {
        for layout in layouts() {
            let b = Builder::new(layout.clone());
            let limits = Limits {
                dict_entries: 500,
                ..Limits::default()
            };
            let r = Reader::new(&b.memory, &b.layout, limits);
            let value = b.str("v");
            let mut entries = Vec::new();
            for i in 0..20_000 {
                entries.push((b.str(&format!("k{i}")), value));
            }
            let d = b.dict(&entries);
            let before = *b.memory.reads.borrow();
            let (found, scan) = r.lookup(Mapping::Dict(d), &["absent"]).expect("scan");
            let reads = *b.memory.reads.borrow() - before;
            assert_eq!(found, vec![None]);
            assert!(!scan.complete, "{:?}", layout.version);
            assert_eq!(scan.examined, 500);
            assert_eq!(scan.used, Some(20_000));
            // About three reads per key examined (header, type cached, data).
            assert!(reads < 2000, "{reads} reads on {:?}", layout.version);
        }
    }

    #[test]
    fn python_2_dicts_are_probed_not_scanned() {
        let b = Builder::new(Layout::for_version(2, 7).expect("2.7"));
        let r = Reader::new(&b.memory, &b.layout, Limits::default());
        let value = b.str("GET");
        let keys: Vec<String> = (0..20_000).map(|i| format!("zhw.filler.{i}")).collect();
        let mut entries: Vec<(&str, usize)> = keys.iter().map(|k| (k.as_str(), value)).collect();
        entries.push(("REQUEST_METHOD", value));
        let d = b.py2_hashed_dict(&entries);
        let before = *b.memory.reads.borrow();
        let (found, scan) = r
            .lookup(
                Mapping::Dict(d),
                &["REQUEST_METHOD", "HTTP_COOKIE_NOT_THERE"],
            )
            .expect("lookup");
        assert_eq!(found, vec![Some(value), None]);
        assert!(scan.complete);
        assert!(
            *b.memory.reads.borrow() - before < 40,
            "probing, not scanning"
        );
        // No key found (as under hash randomization): fall back to the scan.
        let (found, scan) = r.lookup(Mapping::Dict(d), &["absent"]).expect("lookup");
        assert_eq!(found, vec![None]);
        assert!(!scan.complete);
    }

    #[test]
    fn python_2_string_hashes() {
        // hash('') and values printed by python2.7 -c 'print hash("...")'.
        assert_eq!(py2_str_hash(b""), 0);
        assert_eq!(py2_str_hash(b"a"), 12416037344);
        assert_eq!(py2_str_hash(b"REQUEST_METHOD"), -933809413294596589);
    }

    #[test]
    fn the_budget_stops_everything() {
        let b = Builder::new(Layout::for_version(3, 12).expect("3.12"));
        let limits = Limits {
            reads: 5,
            ..Limits::default()
        };
        let r = Reader::new(&b.memory, &b.layout, limits);
        let items: Vec<usize> = (0..50).map(|i| b.str(&format!("item{i}"))).collect();
        let l = b.list(&items);
        let repr = r.repr(l, &Redactor::default());
        assert!(repr.contains('…'), "{repr}");
        assert!(r.budget_spent());
        assert_eq!(r.object(l).err(), Some(ReadError::Budget));
        r.reset_budget();
        assert!(r.object(l).is_ok());
    }

    #[test]
    fn reprs_are_bounded() {
        let b = Builder::new(Layout::for_version(3, 12).expect("3.12"));
        let r = Reader::new(&b.memory, &b.layout, Limits::default());
        let long = b.str(&"x".repeat(5000));
        assert!(r.repr(long, &Redactor::default()).chars().count() <= 201);
        let mut nested = b.none();
        for _ in 0..50 {
            nested = b.list(&[nested]);
        }
        assert_eq!(r.repr(nested, &Redactor::default()), "[[[[…]]]]");
        let odd = b.str("a'b\x1b]0;x\x07");
        assert_eq!(
            r.repr(odd, &Redactor::default()),
            "'a\\'b\\u{1b}]0;x\\u{7}'"
        );
    }

    /// Regression (found by trying zhw with nasty inputs): `--locals`
    /// showed `['--password', 'x']`, `('password', 'x')` and database URLs
    /// with their passwords.
    #[test]
    fn secrets_in_sequences_and_urls_are_masked() {
        let b = Builder::new(Layout::for_version(3, 12).expect("3.12"));
        let r = Reader::new(&b.memory, &b.layout, Limits::default());
        let argv = b.list(&[b.str("--password"), b.str("ARGV"), b.str("-v")]);
        assert_eq!(
            r.repr(argv, &Redactor::default()),
            "['--password', ***, '-v']"
        );
        let pair = b.tuple(&[b.str("token"), b.str("PAIR")]);
        assert_eq!(r.repr(pair, &Redactor::default()), "('token', ***)");
        let dsn = b.str("postgresql://scott:DSN@db/prod");
        assert_eq!(
            r.repr(dsn, &Redactor::default()),
            "'postgresql://scott:***@db/prod'"
        );
    }
}

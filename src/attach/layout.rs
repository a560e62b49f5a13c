//! Where CPython keeps what zhw reads beyond stacks — thread states, frames'
//! local variables, code objects, strings, ints, dicts and instance
//! attributes — as byte offsets per interpreter version (x86-64 and other
//! 64-bit Linux builds, default non-debug, GIL-enabled configuration).
//!
//! Pure data, no memory access. The offsets were taken from the same bindgen
//! output that py-spy 0.4.3 reads stacks with (its `python_bindings`
//! module, which it does not export), with `std::mem::offset_of!`, and are
//! checked live on every interpreter the tests find (3.14 on Debian sid's
//! build, in a chroot). A version not listed here gets no layout: zhw then
//! reads stacks only, never guesses. Free-threaded builds never get here:
//! py-spy's patched reader refuses them at attach (their object header is
//! another; vendor/py-spy/ZHW-PATCH.md, patch 7).

/// Version-specific offsets for one CPython minor version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// `(major, minor)`.
    pub version: (u8, u8),
    /// `PyInterpreterState` → head of its thread-state list.
    pub interp_threads_head: usize,
    /// `PyThreadState.next`.
    pub tstate_next: usize,
    /// `PyThreadState.thread_id` (the `pthread_t`, what py-spy reports).
    pub tstate_thread_id: usize,
    /// How a thread state leads to its innermost frame.
    pub current_frame: CurrentFrame,
    /// Frame layout.
    pub frame: FrameLayout,
    /// Code object layout.
    pub code: CodeLayout,
    /// `PyTypeObject` fields (identical from 2.7 to 3.14 on 64-bit).
    pub type_name: usize,
    /// `tp_basicsize`.
    pub type_basicsize: usize,
    /// `tp_flags`.
    pub type_flags: usize,
    /// `tp_dictoffset`.
    pub type_dictoffset: usize,
    /// `PyHeapTypeObject.ht_cached_keys` (3.11+: shared keys of instances).
    pub heap_cached_keys: Option<usize>,
    /// How `str` (and on 2.7 `unicode`) is stored.
    pub strings: StringLayout,
    /// `PyTupleObject.ob_item` (3.14 added a cached hash before it).
    pub tuple_items: usize,
    /// `PyListObject.ob_item` (a pointer to the item array).
    pub list_items: usize,
    /// How dicts are stored.
    pub dict: DictLayout,
    /// How `int` (3.x) / `long` (2.7) is stored.
    pub long: LongLayout,
    /// Where an instance keeps its attributes when the type manages them.
    pub managed_dict: ManagedDict,
    /// Stack references (3.14) carry tag bits in their low bits.
    pub tagged_stackrefs: bool,
}

/// From a thread state to its innermost frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CurrentFrame {
    /// A pointer field in the thread state (≤ 3.10 `frame`, 3.13+ `current_frame`).
    Direct(usize),
    /// Through `tstate->cframe->current_frame` (3.11, 3.12).
    ViaCFrame {
        /// `PyThreadState.cframe`.
        cframe: usize,
        /// `_PyCFrame.current_frame`.
        current: usize,
    },
}

/// Frame (`PyFrameObject` ≤ 3.10, `_PyInterpreterFrame` 3.11+) offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameLayout {
    /// The calling frame.
    pub back: usize,
    /// The code object (3.13+ `f_executable`, which may be something else).
    pub code: usize,
    /// First slot of the fast locals (`f_localsplus` / `localsplus`).
    pub localsplus: usize,
    /// `owner` byte and the values that mark a frame that is not Python code
    /// (3.12+: owned by the C stack; 3.14: also by the interpreter).
    pub owner: Option<(usize, &'static [u8])>,
    /// Bytes to read to get every field above.
    pub header: usize,
}

/// Code object offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CodeLayout {
    /// `co_name`.
    pub name: usize,
    /// `co_filename`.
    pub filename: usize,
    /// `co_qualname` (3.11+), which py-spy reports as the function.
    pub qualname: Option<usize>,
    /// Where the local variables' names are.
    pub names: LocalNames,
    /// Bytes to read to get every field above.
    pub header: usize,
}

/// How a code object names its fast locals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalNames {
    /// ≤ 3.10: `co_nlocals` (int) names from `co_varnames`, then cells
    /// (`co_cellvars`) and free variables (`co_freevars`).
    Classic {
        /// `co_nlocals` (a C int).
        nlocals: usize,
        /// `co_varnames`.
        varnames: usize,
        /// `co_cellvars`.
        cellvars: usize,
        /// `co_freevars`.
        freevars: usize,
    },
    /// 3.11+: one tuple `co_localsplusnames` for every slot.
    LocalsPlus {
        /// `co_localsplusnames`.
        names: usize,
    },
}

/// String storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringLayout {
    /// 2.7: `str` is bytes (`ob_size` at 16, data at 36); `unicode` has a
    /// length at 16 and a pointer to UCS-2 or UCS-4 data at 24.
    Py2,
    /// 3.3+ (PEP 393): length at 16, state bits at 32, data after the
    /// compact header (ASCII or not), or behind a pointer (legacy strings
    /// such as `str` subclasses).
    Py3 {
        /// `sizeof(PyASCIIObject)`.
        ascii_size: usize,
        /// `sizeof(PyCompactUnicodeObject)` (also `PyUnicodeObject.data`).
        compact_size: usize,
    },
}

/// Dict storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DictLayout {
    /// 2.7: an open-addressing table of `(hash, key, value)` entries:
    /// `ma_used` at 24, `ma_mask` at 32, `ma_table` at 40.
    Py2,
    /// 3.6–3.10: `ma_keys` with `dk_size` at 8, `dk_nentries` at 32 and
    /// the index table at 40; entries `(hash, key, value)`.
    Classic,
    /// 3.11+: `dk_log2_size` at 8, `dk_log2_index_bytes` at 9, `dk_kind`
    /// at 10, `dk_nentries` at 24, indices at 32; entries `(key, value)`
    /// when the keys are all strings, else `(hash, key, value)`.
    Compact {
        /// Offset of the first value in a `PyDictValues` (8 on 3.13+).
        values_offset: usize,
    },
}

/// Integer storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LongLayout {
    /// Signed digit count at 16, 30-bit digits from 24 (2.7 `long`, ≤ 3.11).
    SignedSize,
    /// `lv_tag` at 16 (sign in bits 0–1, digit count from bit 3), digits
    /// from 24 (3.12+).
    Tagged,
}

/// Where a managed-dict instance keeps its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManagedDict {
    /// No managed dicts (≤ 3.10): `tp_dictoffset` says where the dict is.
    None,
    /// 3.11: dict pointer 3 words before the object, values 4 words before.
    V311,
    /// 3.12: one tagged word 3 words before: a dict, or values (low bit set).
    V312,
    /// 3.13+: dict pointer 3 words before; otherwise values inline after
    /// `tp_basicsize` (with a 4-byte header whose last byte is `valid`).
    V313,
}

/// `Py_TPFLAGS_INLINE_VALUES` (3.13+).
pub(crate) const TPFLAGS_INLINE_VALUES: u64 = 1 << 2;
/// `Py_TPFLAGS_MANAGED_DICT` (3.11+).
pub(crate) const TPFLAGS_MANAGED_DICT: u64 = 1 << 4;
/// `Py_TPFLAGS_HEAPTYPE`.
pub(crate) const TPFLAGS_HEAPTYPE: u64 = 1 << 9;
/// 2.7 `Py_TPFLAGS_INT_SUBCLASS`.
pub(crate) const TPFLAGS_INT_SUBCLASS: u64 = 1 << 23;
/// `Py_TPFLAGS_LONG_SUBCLASS`.
pub(crate) const TPFLAGS_LONG_SUBCLASS: u64 = 1 << 24;
/// `Py_TPFLAGS_LIST_SUBCLASS`.
pub(crate) const TPFLAGS_LIST_SUBCLASS: u64 = 1 << 25;
/// `Py_TPFLAGS_TUPLE_SUBCLASS`.
pub(crate) const TPFLAGS_TUPLE_SUBCLASS: u64 = 1 << 26;
/// `Py_TPFLAGS_BYTES_SUBCLASS` (2.7: `str`).
pub(crate) const TPFLAGS_BYTES_SUBCLASS: u64 = 1 << 27;
/// `Py_TPFLAGS_UNICODE_SUBCLASS`.
pub(crate) const TPFLAGS_UNICODE_SUBCLASS: u64 = 1 << 28;
/// `Py_TPFLAGS_DICT_SUBCLASS`.
pub(crate) const TPFLAGS_DICT_SUBCLASS: u64 = 1 << 29;

const CLASSIC_FRAME_HEADER: usize = 40;

impl Layout {
    /// The layout of CPython `major.minor`, if zhw knows it.
    pub fn for_version(major: u64, minor: u64) -> Option<Layout> {
        let py3 = |ascii_size, compact_size| StringLayout::Py3 {
            ascii_size,
            compact_size,
        };
        let classic_frame = |localsplus| FrameLayout {
            back: 24,
            code: 32,
            localsplus,
            owner: None,
            header: CLASSIC_FRAME_HEADER,
        };
        let classic_code = |nlocals, varnames, cellvars, freevars, filename, name| CodeLayout {
            name,
            filename,
            qualname: None,
            names: LocalNames::Classic {
                nlocals,
                varnames,
                cellvars,
                freevars,
            },
            header: 128,
        };
        let compact_code = CodeLayout {
            name: 120,
            filename: 112,
            qualname: Some(128),
            names: LocalNames::LocalsPlus { names: 96 },
            header: 136,
        };
        let base = Layout {
            version: (3, 0),
            interp_threads_head: 8,
            tstate_next: 8,
            tstate_thread_id: 176,
            current_frame: CurrentFrame::Direct(24),
            frame: classic_frame(360),
            code: classic_code(28, 72, 88, 80, 104, 112),
            type_name: 24,
            type_basicsize: 32,
            type_flags: 168,
            type_dictoffset: 288,
            heap_cached_keys: None,
            strings: py3(48, 72),
            tuple_items: 24,
            list_items: 24,
            dict: DictLayout::Classic,
            long: LongLayout::SignedSize,
            managed_dict: ManagedDict::None,
            tagged_stackrefs: false,
        };
        let layout = match (major, minor) {
            (2, 7) => Layout {
                version: (2, 7),
                tstate_next: 0,
                tstate_thread_id: 144,
                current_frame: CurrentFrame::Direct(16),
                frame: classic_frame(376),
                code: classic_code(20, 56, 72, 64, 80, 88),
                strings: StringLayout::Py2,
                dict: DictLayout::Py2,
                ..base
            },
            (3, 6) => Layout {
                version: (3, 6),
                tstate_thread_id: 152,
                frame: classic_frame(376),
                code: classic_code(24, 64, 80, 72, 96, 104),
                ..base
            },
            (3, 7) => Layout {
                version: (3, 7),
                code: classic_code(24, 64, 80, 72, 96, 104),
                ..base
            },
            (3, 8) | (3, 9) => Layout {
                version: (3, minor as u8),
                ..base
            },
            (3, 10) => Layout {
                version: (3, 10),
                frame: classic_frame(352),
                ..base
            },
            (3, 11) => Layout {
                version: (3, 11),
                interp_threads_head: 16,
                tstate_thread_id: 152,
                current_frame: CurrentFrame::ViaCFrame {
                    cframe: 56,
                    current: 8,
                },
                frame: FrameLayout {
                    back: 48,
                    code: 32,
                    localsplus: 72,
                    owner: None,
                    header: 72,
                },
                code: compact_code,
                heap_cached_keys: Some(872),
                dict: DictLayout::Compact { values_offset: 0 },
                managed_dict: ManagedDict::V311,
                ..base
            },
            (3, 12) => Layout {
                version: (3, 12),
                interp_threads_head: 72,
                tstate_thread_id: 136,
                current_frame: CurrentFrame::ViaCFrame {
                    cframe: 56,
                    current: 0,
                },
                frame: FrameLayout {
                    back: 8,
                    code: 0,
                    localsplus: 72,
                    // FRAME_OWNED_BY_CSTACK
                    owner: Some((70, &[3])),
                    header: 72,
                },
                code: compact_code,
                heap_cached_keys: Some(880),
                strings: py3(40, 56),
                dict: DictLayout::Compact { values_offset: 0 },
                long: LongLayout::Tagged,
                managed_dict: ManagedDict::V312,
                ..base
            },
            (3, 13) => Layout {
                version: (3, 13),
                interp_threads_head: 7344,
                tstate_thread_id: 152,
                current_frame: CurrentFrame::Direct(72),
                frame: FrameLayout {
                    back: 8,
                    code: 0,
                    localsplus: 72,
                    owner: Some((70, &[3])),
                    header: 72,
                },
                code: compact_code,
                heap_cached_keys: Some(880),
                strings: py3(40, 56),
                dict: DictLayout::Compact { values_offset: 8 },
                long: LongLayout::Tagged,
                managed_dict: ManagedDict::V313,
                ..base
            },
            (3, 14) => Layout {
                version: (3, 14),
                interp_threads_head: 7344,
                tstate_thread_id: 152,
                current_frame: CurrentFrame::Direct(72),
                frame: FrameLayout {
                    back: 8,
                    code: 0,
                    localsplus: 80,
                    // FRAME_OWNED_BY_INTERPRETER, FRAME_OWNED_BY_CSTACK
                    owner: Some((74, &[3, 4])),
                    header: 80,
                },
                code: compact_code,
                heap_cached_keys: Some(880),
                strings: py3(40, 56),
                tuple_items: 32,
                dict: DictLayout::Compact { values_offset: 8 },
                long: LongLayout::Tagged,
                managed_dict: ManagedDict::V313,
                tagged_stackrefs: true,
                ..base
            },
            _ => return None,
        };
        Some(layout)
    }

    /// Python 2.
    pub fn is_py2(&self) -> bool {
        self.version.0 == 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_versions_only() {
        for (major, minor) in [(2, 7), (3, 6), (3, 9), (3, 11), (3, 12), (3, 13), (3, 14)] {
            let layout = Layout::for_version(major, minor).expect("known");
            assert_eq!(layout.version, (major as u8, minor as u8));
        }
        for (major, minor) in [(2, 6), (3, 5), (3, 15), (4, 0)] {
            assert!(Layout::for_version(major, minor).is_none());
        }
    }

    #[test]
    fn spot_checks_against_the_bindings() {
        // A few offsets printed with offset_of! from py-spy 0.4.3's bindings.
        let l = Layout::for_version(2, 7).expect("2.7");
        assert_eq!((l.frame.localsplus, l.tstate_thread_id), (376, 144));
        let l = Layout::for_version(3, 10).expect("3.10");
        assert_eq!(l.frame.localsplus, 352);
        let l = Layout::for_version(3, 12).expect("3.12");
        assert_eq!((l.interp_threads_head, l.tstate_thread_id), (72, 136));
        let l = Layout::for_version(3, 14).expect("3.14");
        assert_eq!((l.frame.localsplus, l.tuple_items), (80, 32));
    }
}

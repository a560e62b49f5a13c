//! Thread names, as Python's `threading` module knows them, on every
//! version zhw reads (py-spy 0.4.3 finds none on 2.7).
//!
//! `sys.modules['threading']._active` maps each thread's ident to its
//! `Thread` object, whose name is the attribute `_name` (3.x) or, name-mangled,
//! `_Thread__name` (2.7). Read fresh on every sample, so a renamed thread
//! shows its current name; only the address of `_active` (a dict that lives
//! as long as the module) is remembered between samples, and checked again
//! before use. Threads started without `threading` (`_thread.start_new_thread`)
//! have no entry and no name. Bounded by the [`Reader`]'s budget.

use std::collections::HashMap;
use std::ops::ControlFlow;

use remoteprocess::ProcessMemory;

use super::objects::{Kind, Mapping, Read, ReadError, Reader};

/// Most `_active` entries read (py-spy reads at most 4096 thread states).
const MAX_THREADS: usize = 8192;
/// Most `sys.modules` entries searched for `threading` and `sys`.
const MAX_MODULES: usize = 50_000;

/// What the name lookup remembers between samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NameCache {
    /// Address of `threading._active`.
    active: Option<usize>,
    /// 2.7: size of `Py_UNICODE` (from `sys.maxunicode`).
    pub unicode_width: Option<usize>,
}

/// `thread_id → name` for every thread `threading` knows.
/// `modules` is the address of the interpreter's pointer to `sys.modules`.
pub(crate) fn thread_names<P: ProcessMemory>(
    reader: &Reader<'_, P>,
    modules: usize,
    cache: &mut NameCache,
    expected: usize,
) -> Read<HashMap<u64, String>> {
    let active = match cache.active.filter(|addr| is_dict(reader, *addr)) {
        Some(active) => active,
        None => match find_active(reader, modules, cache)? {
            Some(active) => {
                cache.active = Some(active);
                active
            }
            // `threading` was never imported: no thread has a name.
            None => return Ok(HashMap::new()),
        },
    };
    let attribute = if reader.layout.is_py2() {
        "_Thread__name"
    } else {
        "_name"
    };
    let mut threads = Vec::new();
    // Room for every thread the interpreter listed, and some that started since.
    let most = MAX_THREADS.max(expected.saturating_mul(2));
    reader.scan(Mapping::Dict(active), most, |key, value| {
        threads.push((key, value));
        ControlFlow::Continue(())
    })?;
    let mut names = HashMap::new();
    for (key, thread) in threads {
        let ident = match reader.object(key).and_then(|obj| reader.int(&obj)) {
            Ok(Some(ident)) => ident as u64,
            Ok(None) => continue,
            Err(ReadError::Budget) => return Err(ReadError::Budget),
            Err(_) => continue,
        };
        match thread_name(reader, thread, attribute) {
            Ok(Some(name)) => {
                names.insert(ident, name);
            }
            Ok(None) => {}
            Err(ReadError::Budget) => return Err(ReadError::Budget),
            // One thread object changing under the reader does not lose the others.
            Err(_) => {}
        }
    }
    Ok(names)
}

fn is_dict<P: ProcessMemory>(reader: &Reader<'_, P>, addr: usize) -> bool {
    reader.object(addr).is_ok_and(|obj| obj.kind == Kind::Dict)
}

fn thread_name<P: ProcessMemory>(
    reader: &Reader<'_, P>,
    thread: usize,
    attribute: &str,
) -> Read<Option<String>> {
    let obj = reader.object(thread)?;
    let Some(attributes) = reader.attributes(&obj)? else {
        return Ok(None);
    };
    let (found, _) = reader.lookup(attributes, &[attribute])?;
    match found[0] {
        Some(name) => {
            let text = reader.text_at(name, reader.limits.name_bytes)?;
            Ok(Some(text.value))
        }
        None => Ok(None),
    }
}

/// Find `threading._active` through `sys.modules` (and, on 2.7, learn the
/// width of `unicode` from `sys.maxunicode` on the way).
fn find_active<P: ProcessMemory>(
    reader: &Reader<'_, P>,
    modules: usize,
    cache: &mut NameCache,
) -> Read<Option<usize>> {
    let modules = reader.word(modules)?;
    if modules == 0 {
        return Ok(None);
    }
    let mut threading = None;
    let mut sys = None;
    let py2 = reader.layout.is_py2();
    reader.scan(Mapping::Dict(modules), MAX_MODULES, |key, value| {
        match reader.name_at(key).ok().flatten().as_deref() {
            Some("threading") => threading = Some(value),
            Some("sys") => sys = Some(value),
            _ => {}
        }
        if threading.is_some() && (sys.is_some() || !py2) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(sys) = sys {
        cache.unicode_width = unicode_width(reader, sys).ok().flatten();
        reader.py2_unicode_width.set(cache.unicode_width);
    }
    let Some(module) = threading else {
        return Ok(None);
    };
    let obj = reader.object(module)?;
    let Some(attributes) = reader.attributes(&obj)? else {
        return Ok(None);
    };
    let (found, _) = reader.lookup(attributes, &["_active"])?;
    Ok(found[0].filter(|addr| is_dict(reader, *addr)))
}

/// 2 on a narrow (UCS-2) 2.7 build, 4 on a wide one.
fn unicode_width<P: ProcessMemory>(reader: &Reader<'_, P>, sys: usize) -> Read<Option<usize>> {
    let obj = reader.object(sys)?;
    let Some(attributes) = reader.attributes(&obj)? else {
        return Ok(None);
    };
    let (found, _) = reader.lookup(attributes, &["maxunicode"])?;
    let Some(value) = found[0] else {
        return Ok(None);
    };
    let value = reader.object(value)?;
    Ok(match reader.int(&value)? {
        Some(0xffff) => Some(2),
        Some(_) => Some(4),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::layout::Layout;
    use super::super::objects::Limits;
    use super::super::objects::fake::Builder;
    use super::*;

    #[test]
    fn names_from_threading_active() {
        for (major, minor) in [(2, 7), (3, 6), (3, 11), (3, 12), (3, 13)] {
            let b = Builder::new(Layout::for_version(major, minor).expect("layout"));
            let attribute = if major == 2 { "_Thread__name" } else { "_name" };
            let thread = |name: &str| b.instance("Thread", &[(b.str(attribute), b.str(name))]);
            let active = b.dict(&[
                (b.int(101), thread("MainThread")),
                (b.int(202), thread("scheduler")),
            ]);
            let module = b.instance("module", &[(b.str("_active"), active)]);
            let modules = b.dict(&[(b.str("os"), b.none()), (b.str("threading"), module)]);
            let pointer = b.place(modules.to_ne_bytes().to_vec());
            let r = Reader::new(&b.memory, &b.layout, Limits::default());
            let mut cache = NameCache::default();
            let names = thread_names(&r, pointer, &mut cache, 4).expect("names");
            assert_eq!(names.get(&101).map(String::as_str), Some("MainThread"));
            assert_eq!(names.get(&202).map(String::as_str), Some("scheduler"));
            assert_eq!(cache.active, Some(active), "{major}.{minor}");
            // The second lookup goes straight to the cached dict.
            let again = thread_names(&r, pointer, &mut cache, 4).expect("names");
            assert_eq!(again, names);
        }
    }

    #[test]
    fn no_threading_module_means_no_names() {
        let b = Builder::new(Layout::for_version(3, 12).expect("3.12"));
        let modules = b.dict(&[(b.str("os"), b.none())]);
        let pointer = b.place(modules.to_ne_bytes().to_vec());
        let r = Reader::new(&b.memory, &b.layout, Limits::default());
        let mut cache = NameCache::default();
        assert_eq!(thread_names(&r, pointer, &mut cache, 4), Ok(HashMap::new()));
    }
}

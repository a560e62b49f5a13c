"""Pose as a free-threaded (no-GIL) build, for tests/shapes.rs.

    python fake_free_threaded.py OFFSET

CPython 3.13+ describes its own layouts for out-of-process readers in
`_PyRuntime.debug_offsets` (`_Py_DebugOffsets`), a table the interpreter
itself never reads. This script changes one entry, the offset of the type
pointer in an object header (`pyobject.ob_type`, at byte OFFSET of the
table), from the default build's 8 to the 24 that free-threaded 3.13t and
3.14t builds have, so a reader must refuse the process as it would a real
free-threaded one. Everything else runs as usual.

Prints `READY pid=N` after the change, or `BADOFFSET …` on stderr (and exits 1)
if the table does not hold 8 at OFFSET. Exits at stdin EOF or after 120 s.
"""
import ctypes
import os
import signal
import sys

signal.alarm(120)
offset = int(sys.argv[1])
runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
cookie = ctypes.string_at(runtime, 8)
entry = ctypes.c_uint64.from_address(runtime + offset)
if cookie != b"xdebugpy" or entry.value != 8:
    sys.stderr.write("BADOFFSET %r %d\n" % (cookie, entry.value))
    sys.exit(1)
entry.value = 24
print("READY pid=%d" % os.getpid(), flush=True)
sys.stdin.read()

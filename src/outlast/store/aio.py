"""Linux native AIO for the journal's commits: a durable write that does not block the event loop.

Under load the recorder used to hand each batch to a thread that wrote and ``fdatasync``'d it.
That thread costs the gateway more than the fsync itself: every batch moves the GIL between it
and the event loop three or four times, each move a pair of futex calls and a context switch on
the gateway's core (measured: ~3 futex calls per request at 16 connections, ~40 us of CPU per
request for the journal in all). With native AIO the event loop submits the batch itself
(``io_submit``: an ``O_DIRECT`` write with ``RWF_DSYNC``, so the kernel flushes the device's cache
before it completes) and learns of the completion through an eventfd it watches like a socket.
No thread, no GIL hand-off.

This is the kernel's ``io_setup``/``io_submit``/``io_getevents`` (``linux/aio_abi.h``), called with
ctypes because the standard library has no binding; :meth:`AsyncWrites.open` returns ``None``
wherever that is not available (another OS, an unknown architecture, a kernel without it, a
container that forbids it), and the recorder keeps its thread there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import platform
import sys
from collections.abc import Callable

log = logging.getLogger("outlast.journal")

# System call numbers: they differ by architecture.
_SYSCALLS = {
    "x86_64": {"io_setup": 206, "io_destroy": 207, "io_getevents": 208, "io_submit": 209},
    "aarch64": {"io_setup": 0, "io_destroy": 1, "io_submit": 2, "io_getevents": 4},
}
_IOCB_CMD_PWRITE = 1
_IOCB_FLAG_RESFD = 1
_RWF_DSYNC = 2
_MAX_EVENTS = 8  # writes in flight at once: the recorder has at most one


class _IOCB(ctypes.Structure):  # struct iocb, little-endian layout
    _fields_ = [("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32), ("aio_rw_flags", ctypes.c_int32),
                ("aio_lio_opcode", ctypes.c_uint16), ("aio_reqprio", ctypes.c_int16),
                ("aio_fildes", ctypes.c_uint32), ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64),
                ("aio_offset", ctypes.c_int64), ("aio_reserved2", ctypes.c_uint64), ("aio_flags", ctypes.c_uint32),
                ("aio_resfd", ctypes.c_uint32)]


class _Event(ctypes.Structure):  # struct io_event
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64),
                ("res2", ctypes.c_int64)]


Done = Callable[[int], None]  # bytes written, or -errno


class AsyncWrites:
    """Durable writes completed on ``loop``: ``write(fd, address, length, offset, done)``; ``done(result)``
    is called on the loop with the bytes written or ``-errno``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, libc: ctypes.CDLL, calls: dict[str, int],
                 context: ctypes.c_ulong, eventfd: int) -> None:
        self.loop = loop
        self._libc = libc
        self._calls = calls
        self._context = context
        self._eventfd = eventfd
        self._events = (_Event * _MAX_EVENTS)()
        self._done: dict[int, tuple[_IOCB, Done]] = {}  # by aio_data; keeps each iocb alive until it completes
        self._next = 1
        self._closed = False
        loop.add_reader(eventfd, self._reap)

    @classmethod
    def open(cls, loop: asyncio.AbstractEventLoop) -> AsyncWrites | None:
        """An AIO context watched by ``loop``, or ``None`` where Linux native AIO is unavailable."""
        calls = _SYSCALLS.get(platform.machine())
        if not sys.platform.startswith("linux") or calls is None or sys.byteorder != "little":
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            context = ctypes.c_ulong(0)
            if libc.syscall(calls["io_setup"], _MAX_EVENTS, ctypes.byref(context)) != 0:
                log.info("journal: no native AIO here (%s); commits go through a thread",
                         os.strerror(ctypes.get_errno()))
                return None
            eventfd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except (OSError, AttributeError) as error:
            log.info("journal: no native AIO here (%s); commits go through a thread", error)
            return None
        try:
            return cls(loop, libc, calls, context, eventfd)
        except Exception:  # e.g. the loop cannot watch an fd: keep the thread
            os.close(eventfd)
            libc.syscall(calls["io_destroy"], context)
            raise

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def write(self, fd: int, address: int, length: int, offset: int, done: Done) -> None:
        """Submit a write of ``length`` bytes at ``address`` (which must stay untouched until ``done``)
        to ``fd`` at ``offset``, made durable before it completes. Raises ``OSError`` if the kernel
        refuses it; ``done`` is then never called."""
        if self._closed:
            raise OSError(9, "the journal's AIO context is closed")  # EBADF
        key = self._next
        self._next += 1
        iocb = _IOCB(aio_data=key, aio_lio_opcode=_IOCB_CMD_PWRITE, aio_rw_flags=_RWF_DSYNC, aio_fildes=fd,
                     aio_buf=address, aio_nbytes=length, aio_offset=offset, aio_flags=_IOCB_FLAG_RESFD,
                     aio_resfd=self._eventfd)
        pointers = (ctypes.POINTER(_IOCB) * 1)(ctypes.pointer(iocb))
        self._done[key] = (iocb, done)
        if self._libc.syscall(self._calls["io_submit"], self._context, 1, pointers) != 1:
            del self._done[key]
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._eventfd)
        while self._done:
            n = self._libc.syscall(self._calls["io_getevents"], self._context, 0, _MAX_EVENTS, self._events, None)
            if n <= 0:
                return
            for event in self._events[:n]:
                entry = self._done.pop(event.data, None)
                if entry is None:
                    continue
                try:
                    entry[1](event.res)
                except Exception:  # a callback's failure must not stop the others
                    log.exception("journal: a completion callback failed")

    def close(self) -> None:
        """Stop watching; the kernel finishes what is in flight first (``io_destroy`` waits for it)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self._eventfd)
        self._libc.syscall(self._calls["io_destroy"], self._context)
        os.close(self._eventfd)
        self._done.clear()

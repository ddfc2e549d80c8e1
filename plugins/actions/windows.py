"""Which application window is at a desktop point: its title, read from the X server without moving the pointer.

Used for "always allow click in <window>" rules: the title is what the X server says about the window under the
target, never text the model wrote or text shown inside a screenshot. xdotool can only report the window under
the pointer (the pointer would have to move there before the user approved anything), so this asks the server
directly through libX11 (ctypes, read-only queries): XTranslateCoordinates finds the top-most viewable window at
the point, honouring input shapes (a compositor's overlay is skipped), then the path down to the client window
(the one a window manager marked with WM_STATE) gives the title (_NET_WM_NAME, else WM_NAME).

X errors (a window closing while it is looked at) are caught by a quiet error handler; any failure gives "" (no
title: the user is only offered "allow once").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

MAX_DEPTH = 8
"""How far down from the root the client window is looked for (window managers add one or two frame levels)."""

_lock = threading.Lock()
_x11: ctypes.CDLL | None = None
_handler = None  # the quiet X error handler, set only while this module queries (mss has its own)
_handler_keep: list[object] = []

Window = ctypes.c_ulong
Atom = ctypes.c_ulong


def _library() -> ctypes.CDLL | None:
    global _x11, _handler
    if _x11 is not None:
        return _x11
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        x11 = ctypes.CDLL(name)
    except OSError:
        return None
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = Window
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XTranslateCoordinates.argtypes = [
        ctypes.c_void_p, Window, Window, ctypes.c_int, ctypes.c_int,
        ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(Window),
    ]
    x11.XInternAtom.restype = Atom
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XGetWindowProperty.argtypes = [
        ctypes.c_void_p, Window, Atom, ctypes.c_long, ctypes.c_long, ctypes.c_int, Atom,
        ctypes.POINTER(Atom), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_void_p),
    ]
    x11.XFree.argtypes = [ctypes.c_void_p]
    handler_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    quiet = handler_type(lambda display, event: 0)  # Xlib's default handler exits the process
    _handler_keep.append(quiet)  # a ctypes callback must outlive every call into C that may use it
    _handler = ctypes.cast(quiet, ctypes.c_void_p)
    x11.XSetErrorHandler.restype = ctypes.c_void_p
    x11.XSetErrorHandler.argtypes = [ctypes.c_void_p]
    _x11 = x11
    return x11


def _property(x11: ctypes.CDLL, display: int, window: int, atom: int) -> bytes | None:
    """The raw bytes of a window property (8-bit formats only; None when missing)."""
    kind, form = Atom(), ctypes.c_int()
    count, after = ctypes.c_ulong(), ctypes.c_ulong()
    data = ctypes.c_void_p()
    status = x11.XGetWindowProperty(
        display, window, atom, 0, 1024, 0, 0,  # AnyPropertyType
        ctypes.byref(kind), ctypes.byref(form), ctypes.byref(count), ctypes.byref(after), ctypes.byref(data),
    )
    if status != 0 or not data.value:
        return None
    try:
        if kind.value == 0:
            return None
        if form.value != 8:
            return b""  # present (WM_STATE is 32-bit): callers only ask whether it exists
        return ctypes.string_at(data.value, count.value)
    finally:
        x11.XFree(data)


def window_at(x: int, y: int, display_name: str | None = None) -> str:
    """The title of the application window at desktop pixel (x, y); "" when there is none or it is unknown."""
    display_name = display_name if display_name is not None else os.environ.get("DISPLAY", "")
    if not display_name:
        return ""
    with _lock:
        x11 = _library()
        if x11 is None:
            return ""
        previous = x11.XSetErrorHandler(_handler)  # process-wide in Xlib: put the other one back after
        try:
            display = x11.XOpenDisplay(display_name.encode())
            if not display:
                return ""
            try:
                return _title_at(x11, display, int(x), int(y))
            finally:
                x11.XCloseDisplay(display)
        finally:
            x11.XSetErrorHandler(previous)


def _title_at(x11: ctypes.CDLL, display: int, x: int, y: int) -> str:
    root = x11.XDefaultRootWindow(display)
    atoms = {name: x11.XInternAtom(display, name.encode(), 0) for name in ("WM_STATE", "_NET_WM_NAME", "WM_NAME")}
    path: list[int] = []
    parent = root
    for _ in range(MAX_DEPTH):
        local_x, local_y, child = ctypes.c_int(), ctypes.c_int(), Window()
        ok = x11.XTranslateCoordinates(
            display, root, parent, x, y, ctypes.byref(local_x), ctypes.byref(local_y), ctypes.byref(child)
        )
        if not ok or not child.value:
            break
        path.append(child.value)
        parent = child.value

    def title(window: int) -> str:
        for name in ("_NET_WM_NAME", "WM_NAME"):
            raw = _property(x11, display, window, atoms[name])
            if raw:
                return raw.decode("utf-8" if name == "_NET_WM_NAME" else "latin-1", "replace").strip()
        return ""

    for window in path:  # a window manager marks the client window with WM_STATE
        if _property(x11, display, window, atoms["WM_STATE"]) is not None:
            return title(window)
    for window in path:  # no window manager: the top-level window carries the title
        name = title(window)
        if name:
            return name
    return ""

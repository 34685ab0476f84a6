"""A coroutine's frames as gdb's own frames, with no register or file writes (gdb only).

While a view is on, a Python unwinder claims the selected thread's innermost non-inline
frame and reports the coroutine's saved registers as its caller's: gdb's DWARF unwinder then
produces the coroutine's frames, so `bt`, `frame N`, `up`, `info locals` and `p` work in
them. The recipe and its pitfalls:
- the claimed frame's id uses an sp not above the coroutine's sp ("previous frame inner");
- that frame's own locals would read wrong: a frame filter hides the thread's frames above
  it and labels it, and `select` puts the user in the frame below;
- gdb.invalidate_cached_frames() on every change; `backtrace past-main/past-entry` on while
  the view is on; frames below coroutine_trampoline are junk: the filter stops there;
- the view goes off before the inferior resumes (hooks on the resuming commands).
`unwind(target, registers)` uses the same view briefly to list frames for any register set.
"""

from dataclasses import dataclass, field

import gdb
import gdb.unwinder
from gdb.FrameDecorator import FrameDecorator

from ..target import TargetError
from ..walkers.coroutine import BOTTOM
from .frames import frames_from

# Commands that resume or end the inferior: a hook turns the view off before each.
RESUMING = ("continue", "next", "step", "stepi", "nexti", "finish", "until", "advance",
            "jump", "signal", "run", "start", "starti", "kill", "detach", "return",
            "reverse-continue", "reverse-next", "reverse-step", "reverse-finish")
SETTINGS = ("backtrace past-main", "backtrace past-entry")


@dataclass
class View:
    thread: int            # gdb thread number
    level: int             # the claimed (innermost non-inline) frame's level
    registers: dict        # the coroutine's registers, by gdb register name
    sp: str                # the architecture's stack and pc register names
    pc: str
    label: str = ""        # what the claimed frame shows as ("": no filter, for unwind())
    settings: dict = field(default_factory=dict)  # the user's SETTINGS, restored on deselect
    user_level: int = 0    # the frame the user had selected, reselected on deselect


_view = None


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class CoroutineUnwinder(gdb.unwinder.Unwinder):
    def __init__(self):
        super().__init__("qemu-coroutine")

    def __call__(self, pending):
        view = _view
        if view is None or pending.level() != view.level:
            return None
        thread = gdb.selected_thread()
        if thread is None or thread.num != view.thread:
            return None
        try:
            sp = pending.read_register(view.sp)
            pc = pending.read_register(view.pc)
            fake_sp = min(int(sp), view.registers[view.sp])
        except gdb.error:   # the thread's own sp or pc is unavailable (a damaged core)
            return None
        info = pending.create_unwind_info(_FrameId(gdb.Value(fake_sp).cast(sp.type), pc))
        for name, value in view.registers.items():
            try:
                rtype = pending.read_register(name).type
            except ValueError:
                continue
            info.add_saved_register(name, gdb.Value(value).cast(rtype))
        return info


class Label(FrameDecorator):
    """The claimed thread frame: its locals would read wrong, so it shows only a label."""

    def __init__(self, base, label):
        super().__init__(base)
        self._label = label

    def function(self):
        return self._label

    def address(self):
        return None

    def filename(self):
        return None

    def line(self):
        return None

    def frame_args(self):
        return None

    def frame_locals(self):
        return None


class ReadArgs(FrameDecorator):
    """A frame below the label: an argument gdb cannot read is given as its error, since
    gdb's frame-filter path would stop the whole backtrace there (its own path marks it)."""

    def frame_args(self):
        args = super().frame_args()
        if args is None:
            return None
        frame = self.inferior_frame()
        return [_UnreadArg(a, frame) for a in args]


class _UnreadArg:
    """An argument as gdb's frame filters want it: value() None lets gdb read and print it
    (entry values included); a string when reading it fails."""

    def __init__(self, arg, frame):
        self._symbol, self._value = arg.symbol(), arg.value()
        if self._value is None and isinstance(self._symbol, gdb.Symbol):
            try:
                self._symbol.value(frame).fetch_lazy()
            except gdb.error as e:   # gdb.MemoryError is one
                self._value = f"<error reading variable: {e}>"

    def symbol(self):
        return self._symbol

    def value(self):
        return self._value


class CoroutineFrameFilter:
    """Hides the thread's frames above the claimed one, labels it, stops at the bottom of
    the coroutine stack."""

    def __init__(self):
        self.name = "qemu-coroutine"
        self.priority = 100
        # Enabled only while a view is on: any enabled filter makes gdb print every
        # backtrace through Python, which looks different for frames without debug info.
        self.enabled = False
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        view = _view
        if view is None:
            return frames
        thread = gdb.selected_thread()
        if thread is None or thread.num != view.thread:
            return frames
        return self._filter(frames, view)

    def _filter(self, frames, view):
        for decorator in frames:
            level = decorator.inferior_frame().level()
            if level < view.level:
                continue
            if level == view.level:
                yield Label(decorator, view.label)
                continue
            yield ReadArgs(decorator)
            if decorator.inferior_frame().name() == BOTTOM:
                return


def _innermost_real_level():
    frame = gdb.newest_frame()
    while frame is not None and frame.type() == gdb.INLINE_FRAME:
        frame = frame.older()
    if frame is None:
        raise TargetError("the thread has no real frame to hang the coroutine on")
    return frame.level()


def _set_view(view):
    global _view
    _view = view
    if _filter is not None:
        _filter.enabled = view is not None and bool(view.label)
    gdb.invalidate_cached_frames()


def _past_main_on():
    """Turn SETTINGS on; returns the user's values."""
    old = {s: gdb.parameter(s) for s in SETTINGS}
    for s in SETTINGS:
        gdb.execute(f"set {s} on", to_string=True)
    return old


def _restore(settings):
    for s, value in settings.items():
        gdb.execute(f"set {s} {'on' if value else 'off'}", to_string=True)


def _new_view(target, registers, label=""):
    thread = gdb.selected_thread()
    if thread is None:
        raise TargetError("no thread: run the program or load a core first")
    facts = target.facts
    return View(thread.num, _innermost_real_level(), dict(registers), facts.SP, facts.PC,
                label)


def _coroutine_frame(view):
    """The gdb.Frame just below the claimed one: the coroutine's innermost."""
    frame = gdb.newest_frame()
    for _ in range(view.level + 1):
        frame = frame.older() if frame is not None else None
    if frame is None:
        raise TargetError("gdb cannot unwind the coroutine's registers")
    return frame


def select(target, registers, label):
    """Turn the view on for the selected thread and select the coroutine's innermost frame
    (the one below the labelled thread frame). Returns gdb's `frame` output for it."""
    deselect()
    view = _new_view(target, registers, label)
    try:
        view.user_level = gdb.selected_frame().level()
    except gdb.error:
        pass
    view.settings = _past_main_on()
    _set_view(view)
    try:
        _coroutine_frame(view).select()
    except (TargetError, gdb.error):
        deselect()
        raise
    return gdb.execute("frame", to_string=True).rstrip("\n")


def _drop(_event=None):
    """Turn the view off without touching frames (the program or its files changed)."""
    view = _view
    if view is None:
        return None
    _set_view(None)
    _restore(view.settings)
    return view


def deselect():
    """Turn the view off, restore the user's settings and reselect the frame the user had
    before the view (frame #0 on another thread); True if one was on."""
    view = _drop()
    if view is None:
        return False
    thread = gdb.selected_thread()
    if thread is not None:
        try:
            frame = gdb.newest_frame()
            for _ in range(view.user_level if thread.num == view.thread else 0):
                frame = frame.older() or frame
            frame.select()
        except gdb.error:
            pass
    return True


def unwind(target, registers):
    """Frame records for a register set, unwound by gdb on the selected thread (down to
    coroutine_trampoline, or main for a leader's stack). Leaves the user's view, thread and
    frame as they were."""
    saved = _view
    try:
        user_frame = gdb.selected_frame()
    except gdb.error:
        user_frame = None
    try:
        _set_view(None)
        view = _new_view(target, registers)
        _set_view(view)
        settings = _past_main_on()
        try:
            return frames_from(_coroutine_frame(view), target.facts,
                                   stop_functions=(BOTTOM, "main"))
        finally:
            _restore(settings)
    except gdb.error as e:
        raise TargetError(f"unwinding failed: {e}") from e
    finally:
        _set_view(saved)
        if user_frame is not None and user_frame.is_valid():
            user_frame.select()


def thread_frames(num, facts):
    """Frame records of thread `num`'s own stack (with any view off), as gdb's `bt` but
    stopping at coroutine_trampoline (gdb's heuristics add junk frames below it)."""
    saved = _view
    try:
        user_frame = gdb.selected_frame()
    except gdb.error:
        user_frame = None
    user_thread = gdb.selected_thread()
    try:
        _set_view(None)
        for th in gdb.selected_inferior().threads():
            if th.num == num:
                th.switch()
                return frames_from(gdb.newest_frame(), facts, stop_functions=(BOTTOM,))
        raise TargetError(f"no thread {num}")
    except gdb.error as e:
        raise TargetError(f"unwinding thread {num} failed: {e}") from e
    finally:
        if user_thread is not None and user_thread.is_valid():
            user_thread.switch()
        _set_view(saved)
        if user_frame is not None and user_frame.is_valid():
            user_frame.select()


def install_hooks(command="qemu coroutine select off"):
    """Before every resuming command, turn the view off (a user's own hook is kept)."""
    for name in RESUMING:
        hook = f"hook-{name}"
        try:
            gdb.execute(f"show user {hook}", to_string=True)
            exists = True
        except gdb.error:
            exists = False
        if not exists:
            gdb.execute(f"define {hook}\n{command}\nend", to_string=True)


_filter = None


def install():
    """Register the unwinder, the frame filter and the hooks once."""
    global _filter
    if _filter is not None:
        return
    gdb.unwinder.register_unwinder(None, CoroutineUnwinder(), replace=True)
    _filter = CoroutineFrameFilter()
    install_hooks()
    # Safety nets: `cont` fires too late for frames but still beats a stale view.
    for event in (gdb.events.cont, gdb.events.exited, gdb.events.new_objfile,
                  gdb.events.clear_objfiles):
        event.connect(_drop)

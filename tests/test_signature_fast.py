"""The signature's normalisation on the messages glibc's assert(), glib's g_assert() and
g_assert_cmpint() print (their formats: glibc assert/assert.c, glib gtestutils.c), and on
the clone suffixes gcc gives functions (.isra.0, .constprop.0, .part.0, .cold)."""

from qemugdb.walkers.signature import function_name, message_reason, signature
from qemugdb.target import Frame, Location


def test_messages_lose_what_varies():
    assert message_reason("qemu-system-x86_64: ../hw/ide/core.c:934: ide_dma_cb: Assertion "
                          "`prep_size >= 0 && prep_size <= n * 512' failed.") == \
        "assertion `prep_size >= 0 && prep_size <= n * 512' failed"
    assert message_reason("ERROR:../system/qtest.c:471:qtest_process_command: assertion "
                          "failed: (words[1] && words[2])") == \
        "assertion failed: (words[1] && words[2])"
    assert message_reason("ERROR:../util/x.c:12:f: assertion failed (a == b): (3 == 4)") == \
        "assertion failed (a == b)"
    assert message_reason("free(): invalid pointer at 0x5566aa00") == "free(): invalid pointer at 0x?"


def test_clone_suffixes_dropped():
    for name in ("bdrv_co_pwritev", "bdrv_co_pwritev.isra.0", "bdrv_co_pwritev.constprop.0.isra.0",
                 "bdrv_co_pwritev.part.0", "bdrv_co_pwritev.cold"):
        assert function_name(name) == "bdrv_co_pwritev"


def frame(function, module):
    return Frame(0, 0, 0, Location(pc=0, function=function, module=module))


def test_only_the_executables_innermost_three():
    frames = [frame("__pthread_kill_implementation", "libc.so.6"), frame("__GI_abort", "libc.so.6"),
              frame("error_handle", "qemu"), frame("f.isra.0", "qemu"), frame("g", "qemu"),
              frame("g_main_context_dispatch", "libglib-2.0.so.0"), frame("h", "qemu"),
              frame("main", "qemu")]
    sig = signature("SIGABRT", None, frames, "qemu")
    assert sig.functions == ["f", "g", "h"] and sig.text == "SIGABRT in f < g < h"
    assert sig.partial == [] and len(sig.hash) == 16
    assert signature("SIGABRT", None, frames[:2] + [frame(None, "qemu")], "qemu").partial

"""gdb is left as the user had it: after every `qemu` command that fails, after the ones
that succeed, and after `qemu coroutine select` + `select off`, the selected thread and
frame, `backtrace past-main` / `past-entry` and the user's own hooks are unchanged.
(test_gdb_live.py checks the selected coroutine view itself and `bt 1` around it.)"""

import json

import pytest

from gdbrun import LOAD, run_gdb
from oracle import fixture_core  # noqa: E402

STATE = ("python f = gdb.selected_frame(); print('STATE', gdb.selected_thread().num, "
         "f.level(), hex(f.pc()), gdb.parameter('backtrace past-main'), "
         "gdb.parameter('backtrace past-entry'))")
HOOKS = """define hook-next
echo user hook-next\\n
end
define hook-stop
echo user hook-stop\\n
end
"""
FAILING = ["qemu coroutine 0", "qemu coroutine 0x10", "qemu coroutine nosuchsymbol",
           "qemu coroutine select 0x10", "qemu coroutine select off", "qemu bdrv nosuchnode",
           "qemu coroutines --format nope", "qemu bt --bogus", "qemu bhs nosuchctx",
           "qemu mtree", "p $qemu_coroutine_sp(0)"]
WORKING = ["qemu bt -a", "qemu coroutines", "qemu jobs --stack", "qemu block-graph",
           "qemu aio", "qemu timers", "qemu report"]


def check_unchanged(target_args, commands, tmp_path, thread, frame):
    """Run commands with the user's hooks, thread `thread`, frame `frame` and non-default
    settings; the state after each equals the state before the first."""
    hooks = tmp_path / "hooks.gdb"
    hooks.write_text(HOOKS)
    setup = [f"source {hooks}", f"source {LOAD}", f"thread {thread}", f"frame {frame}",
             "set backtrace past-main on", "set backtrace past-entry off"]
    probe = [STATE, "show user hook-next", "show user hook-stop"]
    script = setup + probe
    for c in commands:
        script += [c, *probe]
    out, err = run_gdb(target_args, script, load=False)
    assert "Traceback" not in err + "".join(out)
    before = out[len(setup):len(setup) + 3]
    assert before[0].startswith(f"STATE {thread} {frame} ") and "True False" in before[0]
    assert "user hook-next" in before[1] and "user hook-stop" in before[2]
    pos = len(setup) + 3
    for c in commands:
        after = out[pos + 1:pos + 4]
        assert after == before, (c, before, after)
        pos += 4
    return out, err


def test_state_after_errors_on_a_core(synthetic, tmp_path):
    """The synthetic core (no QEMU in it): every command fails, nothing moves; `qemu
    coroutine` says what the program lacks before reading its argument."""
    out, err = check_unchanged([synthetic["exe"], synthetic["kernel_core"]],
                               FAILING + WORKING, tmp_path, thread=1, frame=3)
    assert "qemu coroutine: no type 'CoroutineUContext' in the debug info" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qsd-10.0-kernel", "qsd-7.2-gcore"])
def test_state_after_select_and_errors_on_qemu(name, tmp_path):
    meta = fixture_core(name)
    target = [meta["exe"], meta["core"]]
    (listing,), _ = run_gdb(target, ["qemu coroutines --format json"])
    co = next(c for c in json.loads(listing)["coroutines"] if c["state"] != "running")
    addr = f"{co['address']:#x}"
    check_unchanged(target, FAILING + WORKING + [f"qemu coroutine {addr}"], tmp_path,
                    thread=2, frame=1)
    # select, move around, fail inside the view, select off: back where the user was.
    hooks = tmp_path / "hooks.gdb"
    out, err = run_gdb(target, [
        f"source {hooks}", f"source {LOAD}", "thread 2", "frame 1",
        "set backtrace past-main on", "set backtrace past-entry off", STATE,
        f"qemu coroutine select {addr}", "bt", "frame 2", "qemu coroutine select 0x10",
        "qemu coroutine select off", STATE, "show user hook-next", "show user hook-stop"],
        load=False)
    assert out[6] == out[12], (out[6], out[12])
    assert "user hook-next" in out[13] and "user hook-stop" in out[14]
    assert "coroutine_trampoline" in out[8]

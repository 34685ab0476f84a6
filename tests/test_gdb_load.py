"""Loading qemugdb in gdb: `source gdb_load.py` and the auto-load snippet; gdb's embedded
Python imports nothing outside the standard library and this checkout."""

import os
import shutil
import subprocess

import pytest

from gdbrun import LOAD, ROOT, run_gdb
from builds import qemu_dir


def test_source_registers_every_command_and_function():
    out, err = run_gdb([], ["help qemu", "help qemu coroutine", "show qemu debug",
                            "help function qemu_coroutine_sp", "help function qemu_coroutine_pc",
                            f"source {LOAD}"])
    assert "Traceback" not in err and "Error" not in err, err
    import sys
    sys.path.insert(0, str(ROOT))
    from qemugdb import cmd, commands
    cmd.load()
    listed = out[0] + out[1]
    for name in commands.REGISTRY:
        assert f"qemu {name} -- " in listed, name
    assert "off" in out[2]


def test_gdb_python_imports_no_third_party_module():
    code = ("import sys; before = set(sys.modules); "
            f"gdb.execute('source {LOAD}'); "
            "bad = [m for m in set(sys.modules) - before "
            "if m.split('.')[0] in ('elftools', 'click', 'pygments', 'graphviz')]; "
            "print('BAD', bad)")
    out, err = run_gdb([], [f"python {code}"], load=False)
    assert "BAD []" in out[0], out[0] + err


@pytest.mark.slow
def test_auto_load_snippet(tmp_path):
    exe = tmp_path / "qemu-storage-daemon"
    shutil.copy(os.path.join(qemu_dir("10.0"), "bin", "qemu-storage-daemon"), exe)
    os.symlink(ROOT / "qemugdb" / "autoload-gdb.py", tmp_path / "qemu-storage-daemon-gdb.py")
    proc = subprocess.run(
        ["gdb", "-batch", "-nx", "-iex", f"add-auto-load-safe-path {tmp_path}",
         "-ex", "help qemu coroutines", str(exe)], capture_output=True, text=True, timeout=120)
    assert "List every coroutine" in proc.stdout, proc.stdout + proc.stderr

"""test_gdb_cores' checks (coroutines of the running jobs and throttled requests, every
thread's stack against gdb's own bt, coroutine chains, `qemu coroutine select`, the corefile
backend, qemu-system commands) on the distribution-shaped cores, gdb and corefile pointed at
the distribution's debug directory."""

import functools
import json

import pytest

import corefile
import corelist
import test_gdb_cores
from gdbrun import run_gdb
from test_distro import debug_dir_iex, gdb_reads_debug_dir, meta, names
from test_gdb_cores import (  # noqa: F401 (collected here, on these cores)
    test_every_running_job_and_throttled_request_has_its_coroutine,
    test_running_coroutines_chain_to_the_thread_stack, test_thread_stacks_equal_gdb_bt_oracle)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=corelist.DISTRO_NAMES)
def core(request):
    """test_gdb_cores' core: `qemu coroutines` and `qemu bt -a` in gdb."""
    m = meta(request.param)
    out, err = run_gdb([*debug_dir_iex(m), m["exe"], m["core"]],
                       ["qemu coroutines --format json", "qemu bt -a"])
    m["coroutines"], m["bt"], m["stderr"] = json.loads(out[0]), out[1], err
    return m


def test_select_frame_locals_on_the_core(core):
    with gdb_reads_debug_dir(test_gdb_cores, core):
        test_gdb_cores.test_select_frame_locals_on_the_core(core)


def test_corefile_backend_agrees(core, monkeypatch):
    monkeypatch.setattr(corefile, "open", functools.partial(
        corefile.open, debug_dirs=(core["debug_dir"],)))
    test_gdb_cores.test_corefile_backend_agrees(core)


@pytest.mark.parametrize("name", names("system"))
def test_system_commands_on_system_cores(name):
    with gdb_reads_debug_dir(test_gdb_cores, meta(name)):
        test_gdb_cores.test_system_commands_on_system_cores(name)

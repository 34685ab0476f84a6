"""test_block_slow's comparisons (block graph, nodes, edges, jobs, IOThreads, AioContexts,
handlers, timers, BHs against QMP and the thread list) on the distribution-shaped cores,
through gdb with qemugdb loaded and through qemu-coredump, both pointed at the
distribution's debug directory."""

import json

import pytest

import corelist
import test_block_slow
from test_block_slow import (  # noqa: F401 (collected here, on these cores)
    COMMANDS, test_backends_agree_with_query_block, test_bhs_equal_gdbs_walk_of_each_bh_list,
    test_dot_is_accepted_by_graphviz, test_edges_decode_roles_for_every_child,
    test_every_aio_context_has_its_own_event_notifier_handler,
    test_every_aio_context_is_run_by_a_thread_of_the_process,
    test_handlers_equal_gdbs_walk_of_each_aio_handlers_list,
    test_iothreads_agree_with_qom_and_the_thread_list,
    test_jobs_agree_with_query_block_jobs_and_query_jobs,
    test_nodes_agree_with_query_named_block_nodes,
    test_qmp_block_graph_equals_x_debug_query_block_graph,
    test_sleeping_jobs_have_their_sleep_timer_armed,
    test_timers_equal_gdbs_walk_of_every_clocks_timer_lists)
from test_distro import cli, gdb_reads_debug_dir, meta

pytestmark = pytest.mark.slow


def _cli_outputs(m):
    """test_block_slow's COMMANDS through qemu-coredump."""
    out = {}
    for key, (command, fmt, extra) in COMMANDS.items():
        text = cli(m, command, m["core"], "--format", fmt, *extra).stdout
        out[key] = text if fmt == "dot" else json.loads(text)
    return out


@pytest.fixture(scope="module", params=[(n, b) for n in corelist.DISTRO_NAMES
                                        for b in ("gdb", "cli")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def core(request):
    name, backend = request.param
    m = meta(name)
    if backend == "gdb":
        with gdb_reads_debug_dir(test_block_slow, m):
            m["out"] = test_block_slow._gdb_outputs(m)
    else:
        m["out"] = _cli_outputs(m)
    return m

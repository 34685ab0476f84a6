"""Block layer commands: block-graph, bdrv, jobs, iothreads."""

from ..walkers import block, iothread, job
from ..commands import Arg, command
from ..render import block as render
from ..render.qmp import render_qmp_json


@command("block-graph", "The block graph: nodes, BlockBackends, block jobs and the "
         "BdrvChild edges (perm/shared perm by name). --format qmp-json is exactly QMP "
         "x-debug-query-block-graph; dot is Graphviz input.",
         text=render.render_graph_text, json=render.render_graph_json,
         dot=render.render_graph_dot, **{"qmp-json": render_qmp_json})
def block_graph(target, args):
    return block.block_graph(target)


@command("bdrv", "One block node in detail (node-name, or a BlockDriverState * expression "
         "or address): state, children, parents, tracked requests and the coroutine of each.",
         arguments=[Arg("node", "node-name, or a BlockDriverState * (expression or address)")],
         text=render.render_node_text)
def bdrv(target, args):
    return block.node_detail(target, args.node)  # NotFound when NODE names no node


@command("jobs", "Jobs: id, type, status, progress, speed, AioContext, and where each "
         "job's coroutine is suspended (its stack with --stack).",
         arguments=[Arg("stack", "show each job coroutine's frames", flags=("--stack",),
                        is_flag=True)],
         text=render.render_jobs_text)
def jobs(target, args):
    result = job.jobs(target)
    job.add_coroutines(target, result, frames=bool(getattr(args, "stack", False)))
    return result


@command("iothreads", "IOThreads (from QOM): id, thread number and LWP, AioContext.",
         text=render.render_iothreads_text)
def iothreads(target, args):
    return iothread.iothreads(target)

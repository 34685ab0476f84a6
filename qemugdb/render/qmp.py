"""The block graph as QMP x-debug-query-block-graph returns it.

Reproduces block.c bdrv_get_xdbg_block_graph(): ids count from 1 in the order objects are
first met (backends, then block jobs, then graph_bdrv_states, each node's edges right after
it, an edge's child taking an id if it has none yet); nodes, edges and each permission list
are built with QAPI_LIST_PREPEND, so they come out reversed.
"""

import json


def qmp_block_graph(graph):
    """A BlockGraph as the plain dict QMP returns."""
    ids = {}

    def num(address):
        if address not in ids:
            ids[address] = len(ids) + 1
        return ids[address]

    nodes, edges = [], []

    def add_edge(parent, child):
        if child.error is not None or child.child is None:
            return
        edges.append({"parent": num(parent), "child": num(child.child), "name": child.name,
                      "perm": list(reversed(child.perm or [])),
                      "shared-perm": list(reversed(child.shared_perm or []))})

    for blk in graph.backends:
        nodes.append({"id": num(blk.address), "type": "block-backend",
                      "name": blk.name or blk.device or ""})
        if blk.child is not None:
            add_edge(blk.address, blk.child)
    for job in graph.jobs:
        nodes.append({"id": num(job.address), "type": "block-job", "name": job.id})
        for child in job.children:
            add_edge(job.address, child)
    for bs in graph.nodes:
        if not bs.in_graph:
            continue
        nodes.append({"id": num(bs.address), "type": "block-driver", "name": bs.node_name})
        for child in bs.children:
            add_edge(bs.address, child)
    return {"nodes": nodes[::-1], "edges": edges[::-1]}


def render_qmp_json(graph, args=None):
    return json.dumps(qmp_block_graph(graph), indent=2)

"""The key paths of `qemu-coredump COMMAND --json` output, as docs/json.md lists them:
`a.b[].c` means key c of each element of list b of object a. Maps keyed by data (registers,
callbacks, report sections, address -> name tables) are not descended into."""

import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
OPAQUE = {"registers", "sections", "aio_contexts", "callbacks", "child_classes"}


def paths(value, prefix=""):
    out = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            if key not in OPAQUE:
                out |= paths(item, path)
    elif isinstance(value, list):
        for item in value:
            out |= paths(item, prefix + "[]")
    return out


def documented():
    """{command: set of paths} from the ```paths blocks under each `## command` heading."""
    out = {}
    for m in re.finditer(r"^## `([\w-]+)`\n(.*?)```paths\n(.*?)```", DOC.read_text(), re.M | re.S):
        out[m.group(1)] = set(m.group(3).split())
    return out


def output_paths(stdout):
    return paths(json.loads(stdout))


if __name__ == "__main__":  # print every command's paths on the QEMU fixture cores, for docs/json.md
    import subprocess
    import sys
    sys.path.insert(0, str(DOC.parents[1] / "fixtures"))
    import corelist
    from test_json_schema import CASES, arguments
    found = {}
    for command, name in CASES:
        core = corelist.core(name)
        out = subprocess.run(["qemu-coredump", command, core["core"], *arguments(command, core),
                              "--json"], capture_output=True, text=True).stdout
        found.setdefault(command, set()).update(output_paths(out))
    for command in sorted(found):
        print(f"## `{command}`\n\n```paths\n" + "\n".join(sorted(found[command])) + "\n```\n")

"""The docs stay honest where a machine can tell: every `qemu ...` / `qemu-coredump ...`
command (and option) guide.md shows exists in the registry and the CLI, every repository
path and relative link the docs name exists (anchors included), and docs/block-graph.svg is
an SVG picture of the fixture core's graph."""

import glob
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from qemu_coredump.main import main as cli
from qemugdb.commands import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OURS = ["guide.md", "design.md", "versions.md", "index.md"]
# design.md's worked example of adding a command: shown and verified there, not shipped.
EXAMPLE = {"qemugdb/walkers/throttle.py", "qemugdb/render/throttle.py", "qemugdb/cmd/throttle.py",
           "tests/test_throttle.py"}
# Written by other sessions; links to them are checked once they exist.
ELSEWHERE = {"performance.md", "robustness.md"}
PATH = re.compile(r"^(?:qemugdb|corefile|cli|fixtures|tests|docs)/[\w.*/-]*$|"
                  r"^(?:README\.md|pyproject\.toml)$")
FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def text(name):
    return (DOCS / name).read_text()


def prose(doc):
    """The document without its fenced code blocks."""
    return FENCE.sub("", doc)


def commands(doc):
    """(binding, words) of every command line: `(gdb) qemu ...` and shell lines naming
    qemu-coredump in code blocks, and inline code spans starting with either."""
    out = []
    for block in FENCE.findall(doc):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("(gdb) qemu "):
                out.append(("gdb", line[len("(gdb) "):].split()))
            elif "qemu-coredump " in line and not line.startswith("qemu-coredump:"):
                shell = line.removeprefix("$ ")
                for part in re.split(r"[|;&]", shell):
                    words = part.split()
                    if "qemu-coredump" in words:
                        out.append(("cli", words[words.index("qemu-coredump"):]))
    for span in INLINE.findall(prose(doc)):
        words = span.split()
        if len(words) > 1 and words[0] in ("qemu", "qemu-coredump") and \
                re.fullmatch(r"[a-z][a-z-]*", words[1]):
            out.append(("gdb" if words[0] == "qemu" else "cli", words))
    return out


def gdb_command(words):
    """The registry entry a `qemu ...` line runs (the longest name its words start with)."""
    for n in (2, 1):
        name = " ".join(words[1:1 + n])
        if name in REGISTRY:
            return REGISTRY[name], words[1 + n:]
    return None, words[1:]


def test_guide_names_only_real_commands_and_options():
    seen = commands(text("guide.md"))
    assert len(seen) > 40, seen
    for binding, words in seen:
        if binding == "gdb":
            command, rest = gdb_command(words)
            assert command is not None, f"guide.md: no gdb command {' '.join(words)!r}"
            flags = {f for a in command.arguments for f in a.flags} | {"--format", "-h"}
        else:
            assert len(words) > 1 and words[1] in cli.commands, \
                f"guide.md: no qemu-coredump command {' '.join(words)!r}"
            rest = words[2:]
            flags = {o for p in cli.commands[words[1]].params for o in p.opts}
        for word in rest:
            option = word.split("=")[0]
            if re.fullmatch(r"--?[a-z][a-z-]*", option):
                gdb_form = binding == "gdb" and any(f.startswith("-" + option) for f in flags)
                assert option in flags or gdb_form, \
                    f"guide.md: {' '.join(words)!r}: no option {option}"


def test_guide_shows_every_command():
    names = {gdb_command(w)[0].name for b, w in commands(text("guide.md")) if b == "gdb"}
    assert names == set(REGISTRY), set(REGISTRY) - names


def paths(doc):
    tokens = [t for span in INLINE.findall(doc) for t in span.split()]
    tokens += [t for block in FENCE.findall(doc) for t in block.split()]
    return {t.split("::")[0].rstrip(".,:;)") for t in tokens} - {""}


def test_every_repository_path_named_exists():
    for name in OURS + ["../README.md"]:
        for p in paths(text(name)):
            if not PATH.match(p) or p in EXAMPLE:
                continue
            found = glob.glob(str(ROOT / p)) if "*" in p else (ROOT / p).exists()
            assert found, f"{name} names {p}, which does not exist"


def test_the_worked_example_is_not_shipped():
    for p in EXAMPLE:
        assert not (ROOT / p).exists(), \
            f"{p} exists now: design.md presents it as an example that is not shipped"


def slug(heading):
    """GitHub's anchor for a heading."""
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(name):
    return {slug(m) for m in re.findall(r"^#+ (.*)$", prose(text(name)), re.M)}


def test_every_relative_link_and_anchor_exists():
    for name in OURS + ["../README.md"]:
        base = (DOCS / name).parent
        for target in LINK.findall(prose(text(name))):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (base / file).resolve() if file else (DOCS / name).resolve()
            if Path(file).name in ELSEWHERE and not path.exists():
                continue
            assert path.exists(), f"{name} links to {target}, which does not exist"
            if anchor:
                assert anchor in anchors(path.name if path.parent == DOCS else "../" + path.name), \
                    f"{name} links to {target}: no such heading"


def test_block_graph_svg_is_the_fixture_graph():
    root = ET.parse(DOCS / "block-graph.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    labels = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    for want in ("job mirror-a", "job stream-b", "a-throttle", "b-throttle", "Legend",
                 "main loop (AioContext 0x557c7f1f1780)"):
        assert want in labels, want

"""qemugdb installed as its users install it: `pip install .`, the wheel, the sdist and
`pipx install .`, each into a fresh environment outside the checkout. Each install runs
`qemu-coredump --help` and `bt` on a fixture core (checked against gdb's own backtrace
captured with the core), gdb sources the installed gdb_load.py (`--gdb-script`) and runs
`qemu bt`, taking nothing from the environment but qemugdb and corefile, and gdb auto-loads
the installed autoload-gdb.py as docs/guide.md shows.

The builds run on a copy of the checkout's files (tracked and new): setuptools leaves
build/ and *.egg-info behind, and a stale build/lib leaks deleted modules into later wheels.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from gdbrun import frame_names, run_gdb
from oracle import fixture_core, gdb_bt

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# PYTHONDONTWRITEBYTECODE makes setuptools warn "byte-compiling is disabled".
ENV = {k: v for k, v in os.environ.items()
       if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")}
CORE = "qsd-10.0-kernel"
# A setuptools warning as build prints it ("WARNING message"), as pip -v does
# ("...: SetuptoolsDeprecationWarning: message") or distutils' ("warning: message"); not
# pip's own "WARNING: ..." (about this machine's index configuration).
WARNING = re.compile(r"^WARNING |Warning\b|^\s*warning:", re.M)


def run(argv, cwd, timeout=600, **kw):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=dict(ENV, **kw),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, \
        f"{argv} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def source_files():
    """The checkout's files as the next commit would have them (tracked and new ones)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(f for f in set(out.split("\0")) if f and (ROOT / f).is_file())


def module_files(src):
    """Every .py under SRC the wheel must hold, by installed name: each top-level package's
    directory (cli/ is installed as qemu_coredump/), whatever the packages list says."""
    setuptools = tomllib.loads((src / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {name.split(".")[0] for name in setuptools["packages"]}
    want = set()
    for name in dirs:
        where = src / setuptools.get("package-dir", {}).get(name, name)
        want |= {f"{name}/{p.relative_to(where).as_posix()}" for p in where.rglob("*.py")
                 if "__pycache__" not in p.parts}
    return want


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """{"src" (the copy), "files" (its list), "sdist", "wheel" (built from the sdist),
    "direct" (the wheel built from the tree), "log"}: python -m build as a release does."""
    top = tmp_path_factory.mktemp("install")
    src = top / "src"
    files = source_files()
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    log = ""
    for argv in (["--outdir", top / "dist"], ["--wheel", "--outdir", top / "direct"]):
        proc = run([sys.executable, "-m", "build", *argv, src], cwd=top)
        log += proc.stdout + proc.stderr
    [sdist] = (top / "dist").glob("*.tar.gz")
    [wheel] = (top / "dist").glob("*.whl")
    [direct] = (top / "direct").glob("*.whl")
    return {"top": top, "src": src, "files": files, "sdist": sdist, "wheel": wheel,
            "direct": direct, "log": log}


def test_build_warns_nothing(dists):
    assert not WARNING.search(dists["log"]), \
        "\n".join(line for line in dists["log"].splitlines() if WARNING.search(line))


def test_wheel_holds_every_module_and_nothing_else(dists):
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        top_level = whl.read("qemugdb-0.1.0.dist-info/top_level.txt").decode().split()
    info = {n for n in names if n.startswith("qemugdb-0.1.0.dist-info/")}
    assert names - info == module_files(dists["src"])
    assert sorted(top_level) == ["corefile", "qemu_coredump", "qemugdb"]
    assert "qemugdb-0.1.0.dist-info/licenses/LICENSE" in info


def test_sdist_builds_the_same_wheel_and_holds_the_source(dists):
    with zipfile.ZipFile(dists["wheel"]) as a, zipfile.ZipFile(dists["direct"]) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            assert a.read(name) == b.read(name), name
    with tarfile.open(dists["sdist"]) as sdist:
        held = {m.name.split("/", 1)[1] for m in sdist.getmembers() if m.isfile()}
    # Everything but git's and CI's own files: a packager runs the tests from the sdist.
    assert set(dists["files"]) - held == {".gitignore", ".ci/run"}


def test_metadata_as_pypi_expects(dists, tmp_path):
    """twine's checks (the readme renders as PyPI renders it), the SPDX licence, and
    classifiers from PyPI's list (in a venv of their own: twine's docutils would upset
    other tools)."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    run([venv / "bin" / "pip", "install", "twine", "trove-classifiers"], cwd=tmp_path)
    run([venv / "bin" / "twine", "check", "--strict", dists["sdist"], dists["wheel"]],
        cwd=tmp_path)
    with zipfile.ZipFile(dists["wheel"]) as whl:
        meta = whl.read("qemugdb-0.1.0.dist-info/METADATA").decode().split("\n\n", 1)[0]
    fields = [line.split(": ", 1) for line in meta.splitlines()]
    assert ["License-Expression", "GPL-2.0-or-later"] in fields
    assert ["Description-Content-Type", "text/markdown"] in fields
    classifiers = [value for key, value in fields if key == "Classifier"]
    unknown = run([venv / "bin" / "python", "-c", "import sys, trove_classifiers as t; "
                   "print([c for c in sys.argv[1:] if c not in t.classifiers])", *classifiers],
                  cwd=tmp_path).stdout.strip()
    assert classifiers and unknown == "[]"


def install(how, dists, tmp_path):
    """Install qemugdb `how`; return (bin directory, the environment's root, pip's log)."""
    if how == "pipx":
        home = tmp_path / "pipx"
        run([sys.executable, "-m", "pipx", "install", "--python", "/usr/bin/python3",
             dists["src"]], cwd=tmp_path, PIPX_HOME=home, PIPX_BIN_DIR=tmp_path / "bin",
            PIPX_MAN_DIR=tmp_path / "man")
        return tmp_path / "bin", home / "venvs" / "qemugdb", ""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    target = {"pip install .": dists["src"], "wheel": dists["wheel"], "sdist": dists["sdist"]}[how]
    log = run([venv / "bin" / "python", "-m", "pip", "install", "-v", target], cwd=tmp_path)
    return venv / "bin", venv, log.stdout + log.stderr


@pytest.mark.parametrize("how", ["pip install .", "wheel", "sdist", "pipx"])
def test_installed(how, dists, tmp_path):
    meta = fixture_core(CORE)
    bindir, env_root, log = install(how, dists, tmp_path)
    assert not WARNING.search(log), [line for line in log.splitlines() if WARNING.search(line)]
    cli = bindir / "qemu-coredump"
    assert "block-graph" in run([cli, "--help"], cwd=tmp_path).stdout

    threads = json.loads(run([cli, "bt", meta["core"], "--exe", meta["exe"], "--all", "--json"],
                             cwd=tmp_path, NO_COLOR="1").stdout)
    want = gdb_bt(meta)
    assert [t["num"] for t in threads] == sorted(want)
    for t in threads:
        top = t["frames"][0]["location"]
        name = (top["inlined"] or [top])[0]["function"]
        assert want[t["num"]][0][0] in (name, f"__GI_{name}"), (t["num"], want[t["num"]][:3])

    script = Path(run([cli, "--gdb-script"], cwd=tmp_path).stdout.strip())
    site = next(env_root.glob("lib/python3*/site-packages"))
    assert script == site / "qemugdb" / "gdb_load.py" and script.is_file()
    probe = ("import importlib.util, sys; "
             f"print(sorted({{n.split('.')[0] for n, m in sys.modules.items() "
             f"if (getattr(m, '__file__', None) or '').startswith({str(site)!r})}})); "
             "print(getattr(importlib.util.find_spec('click'), 'origin', None))")
    commands = [f"source {script}", "bt -no-filters", "qemu bt", f"python {probe}"]
    (loaded, bt, qemu_bt, probed), err = run_gdb([meta["exe"], meta["core"]], commands,
                                                 load=False)
    assert loaded.strip() == "" and "Traceback" not in err and "Error" not in err, err
    names = frame_names(bt)
    assert names and frame_names(qemu_bt)[:len(names)] == names, (bt, qemu_bt)
    gdb_modules, click = probed.splitlines()
    assert gdb_modules == "['corefile', 'qemugdb']"
    assert not click.startswith(str(env_root))

    # docs/guide.md's second auto-load recipe: a scripts directory, under the binary's real
    # path, holding a symlink to the installed autoload-gdb.py.
    exe = Path(os.path.realpath(meta["exe"]))
    scripts = tmp_path / "auto-load"
    (scripts / exe.parent.relative_to("/")).mkdir(parents=True)
    os.symlink(script.parent / "autoload-gdb.py",
               scripts / exe.parent.relative_to("/") / f"{exe.name}-gdb.py")
    auto = run(["gdb", "-batch", "-nx", "-iex", f"set auto-load scripts-directory {scripts}",
                "-iex", f"add-auto-load-safe-path {scripts}", "-ex", "help qemu coroutines", exe],
               cwd=tmp_path)
    assert "List every coroutine" in auto.stdout and "Traceback" not in auto.stderr, auto.stderr

"""The import graph stays layered: the library never reaches into the catalogue or the cluster code, the
report reads files only, the GAN losses (and the colorizer that uses them) load without the ten GANs, and
nothing edits sys.path (the package is installed: ``pip install -e .``)."""
import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from helpers import ROOT

SOURCES = sorted(p for folder in ("fashion", "jobs", "slurm", "tests", "benchmarks")
                 for p in (ROOT / folder).rglob("*.py")) + [ROOT / "launch.py"]


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def offenders(folder: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in SOURCES:
        if path.is_relative_to(ROOT / folder):
            bad = sorted(m for m in imported(path) if m.split(".")[0] in forbidden or m.startswith(forbidden))
            if bad:
                found[path.relative_to(ROOT).as_posix()] = bad
    return found


def test_the_report_imports_neither_the_catalogue_nor_the_cluster_code():
    assert offenders("fashion/report", ("jobs", "slurm", "fashion.training")) == {}


def test_the_library_never_imports_the_catalogue_or_the_cluster_code():
    assert offenders("fashion", ("jobs", "slurm")) == {}


def test_no_file_edits_sys_path_or_pythonpath():
    edits = []
    for path in SOURCES:
        if path == Path(__file__).resolve():  # this test names what it looks for
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"):
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno} sys.path")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "PYTHONPATH" in node.value:
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno} PYTHONPATH")
    edits += [f"{p.relative_to(ROOT)} PYTHONPATH" for p in (ROOT / ".ci").iterdir() if "PYTHONPATH" in p.read_text()]
    assert edits == []


def test_the_checker_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import jobs.catalogue\n    from slurm import submit\n")
    assert imported(probe) == {"jobs.catalogue", "slurm"}


def loaded_by(statement: str) -> set[str]:
    """The project's modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint(*(m for m in sys.modules if m.startswith('fashion')))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(run.stdout.split())


def test_the_gan_losses_load_without_any_gan_or_the_training_machinery():
    assert loaded_by("import fashion.gans.losses") == {"fashion", "fashion.gans", "fashion.gans.losses"}


def test_the_colorizer_loads_no_gan():
    from fashion.gans import REGISTRY

    gans = {gan.__module__ for gan in REGISTRY.values()}
    loaded = loaded_by("import fashion.colorize")
    assert "fashion.colorize.task" in loaded and not loaded & gans


def test_requirements_and_the_package_list_the_same_dependencies():
    def parse(lines):
        return {re.split(r"[<>=!~]", line, maxsplit=1)[0].strip().lower(): line.replace(" ", "") for line in lines}

    listed = parse(line for line in (ROOT / "requirements.txt").read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [dep for group in project["optional-dependencies"].values() for dep in group]
    package = parse(project["dependencies"] + extras)
    pinned = {"torch", "torchvision", "pytest"}  # exact builds / test tools: requirements.txt only decides those
    assert {k: v for k, v in listed.items() if k not in pinned} == {k: v for k, v in package.items() if k not in pinned}
    assert pinned - {"pytest"} <= set(package)


PROJECT = {"fashion", "jobs", "slurm", "launch", "tests", "conftest", "helpers", "cluster_helpers", "benchmarks"}
LIBRARY_SOURCES = [p for p in SOURCES if not p.is_relative_to(ROOT / "tests")]


def private_uses(path: Path) -> list[str]:
    """Every place a file reaches a private name of another package: ``from x._y import``, ``from x import _y``,
    or an attribute chain from an imported name through a ``_name`` (``AcceleratorState._reset_state``,
    ``torch._dynamo``)."""
    tree = ast.parse(path.read_text(), str(path))
    foreign, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PROJECT:
                    foreign.add(alias.asname or alias.name.split(".")[0])
                    if any(part.startswith("_") for part in alias.name.split(".")):
                        found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] in PROJECT:
                continue
            for alias in node.names:
                foreign.add(alias.asname or alias.name)
                if any(part.startswith("_") and not part.startswith("__") for part in
                       node.module.split(".") + [alias.name]):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in foreign and any(
                    a.startswith("_") and not a.startswith("__") for a in chain):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return sorted(set(found))


def test_the_code_uses_no_private_name_of_another_package():
    uses = {p.relative_to(ROOT).as_posix(): private_uses(p) for p in LIBRARY_SOURCES}
    assert {path: found for path, found in uses.items() if found} == {}


def test_the_private_name_checker_follows_attribute_chains_and_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import torch\nfrom accelerate.state import AcceleratorState\nfrom torch.nn.modules import _x\n"
                     "from submitit._core import y\nimport fashion\n"
                     "AcceleratorState._reset_state()\ntorch.nn.modules.batchnorm._BatchNorm\nfashion._mine\n"
                     "torch.nn.Module.__init__\n")
    assert private_uses(probe) == ["3: from torch.nn.modules import _x", "4: from submitit._core import y",
                                   "6: AcceleratorState._reset_state", "7: torch.nn.modules.batchnorm._BatchNorm"]


def module_imports(path: Path, modules: set[str]) -> set[str]:
    """The ``modules`` a file imports at module level, type-checking imports included (imports inside
    functions are deferred on purpose); ``from package import submodule`` depends on the submodule."""
    names, body = set(), list(ast.parse(path.read_text(), str(path)).body)
    body += [n for block in body if isinstance(block, ast.If) for n in block.body]  # `if TYPE_CHECKING:` too
    for node in body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            names.update(subs if len(subs) == len(node.names) else subs | {node.module})
    return names & modules


def test_the_library_modules_import_each_other_without_a_cycle():
    import graphlib

    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for p in sorted((ROOT / "fashion").rglob("*.py"))}
    graph = {name: module_imports(path, set(files)) - {name} for name, path in files.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle

"""The import graph stays layered: the library never reaches into the catalogue or the cluster code, the
report reads files only, the GAN losses (and the colorizer that uses them) load without the ten GANs, and
nothing edits sys.path (the package is installed: ``pip install -e .``)."""
import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT

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

"""The package shows the pipeline: a module imports only its own stage or earlier ones."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "sparsescope"
# errors, artifacts -> sources -> storage -> analysis -> pruning -> evaluation -> stages -> report -> run
# (orchestration) -> command line
ORDER = ["errors", "artifacts", "sources", "storage", "analysis", "pruning", "evaluation", "stages", "report",
         "run", "__main__"]
BASE = {"errors": 0, "artifacts": 0}


def stage_of(module: str) -> int:
    top = module.split(".")[0]
    return BASE.get(top, ORDER.index(top) if top in ORDER else -1)


def imported_modules(path: Path) -> set[str]:
    """sparsescope modules a file imports, absolute or relative, as dotted names inside the package."""
    here = path.relative_to(PACKAGE).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[:len(here) - node.level])
                target = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{target}.{a.name}".strip(".") if not node.module else target for a in node.names}
            elif node.module and node.module.startswith("sparsescope."):
                found.add(node.module.removeprefix("sparsescope."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("sparsescope.") for a in node.names if a.name.startswith("sparsescope.")}
    return found


def test_every_module_belongs_to_a_stage():
    for path in PACKAGE.rglob("*.py"):
        top = path.relative_to(PACKAGE).with_suffix("").parts[0]
        assert top == "__init__" or stage_of(top) >= 0, f"{path} is outside the known stages {ORDER}"


def test_no_module_imports_a_later_stage():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue  # the package's front door re-exports from every stage
        mine = stage_of(parts[0])
        for module in imported_modules(path):
            if stage_of(module) > mine:
                offenders.append(f"{'/'.join(parts)} imports {module}")
    assert not offenders, offenders


def test_lines_stay_short():
    long = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 110]
    assert not long, long

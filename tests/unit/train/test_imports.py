"""train/ knows nothing of the inference eval, the on-policy rounds or the report: they are joined to training in
`simpo_live.training_run`, the composition root. Imports inside functions count too."""

import ast
from pathlib import Path

import simpo_live.train

TRAIN_DIR = Path(simpo_live.train.__file__).parent
FORBIDDEN = ("simpo_live.evals", "simpo_live.onpolicy", "simpo_live.report")


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, module) for every `import` and `from ... import` anywhere in the tree, function bodies included;
    relative imports made absolute. `from a import b` names a.b too, since b may be a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def forbidden_imports(source: str, package: str = "simpo_live.train") -> list[str]:
    hits = {(line, name.removeprefix("simpo_live.").split(".")[0])
            for line, name in imported_modules(ast.parse(source), package)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    return [f"line {line}: {hit}" for line, hit in sorted(hits)]


def test_the_scan_sees_imports_inside_functions_and_relative_ones():
    source = ("def register(session):\n"
              "    from simpo_live.evals.register import register_inference_eval\n"
              "    import simpo_live.report.html\n"
              "    from simpo_live import onpolicy\n"
              "    from ..evals import hook\n")
    assert forbidden_imports(source) == ["line 2: evals", "line 3: report", "line 4: onpolicy", "line 5: evals"]
    assert forbidden_imports("from simpo_live.train.loop import train_loop\nimport simpo_live.tracking\n"
                             "from . import hooks\nfrom simpo_live import errors\n") == []


def test_nothing_under_train_imports_evals_onpolicy_or_report():
    files = sorted(TRAIN_DIR.rglob("*.py"))
    assert files, TRAIN_DIR
    found = {}
    for path in files:
        package = ".".join(("simpo_live", *path.relative_to(TRAIN_DIR.parent).parent.parts))
        bad = forbidden_imports(path.read_text(), package)
        if bad:
            found[str(path.relative_to(TRAIN_DIR.parent))] = bad
    assert not found, f"train/ must not import {', '.join(FORBIDDEN)} (register them in training_run.py): {found}"

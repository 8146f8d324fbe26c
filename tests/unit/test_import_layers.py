"""The package's import arrows point down its layers and close no cycle: every `simpo_live` import, at module level,
inside functions or under TYPE_CHECKING, read from the source with `ast`. A new package or top-level module must
be placed in LAYERS."""

import ast
import pathlib

import simpo_live

ROOT = pathlib.Path(simpo_live.__file__).parent

# Lowest first. A module may import its own layer's packages and any lower layer's, never a higher one.
LAYERS = [
    {"errors", "atomic", "intmath", "seeds", "run_dir"},
    {"config"},
    {"model", "data", "tracking", "tasks"},
    {"engine", "distributed"},
    {"rollout"},  # generation, scoring, host files: what every eval and on-policy round runs
    {"plan"},  # the memory plan, the one budget (it reads the rollout's replica dtype and reward model size)
    {"train"},
    {"evals", "onpolicy"},
    {"report"},
    {"cli", "__main__", "export", "training_run"},
]
FORBIDDEN = {("onpolicy", "evals"), ("evals", "onpolicy")}  # siblings: what they share lives in rollout/


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("simpo_live"):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    return {name: imports_of(path, set(paths)) - {name, "simpo_live"} for name, path in paths.items()}


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def layer_of(package: str) -> int:
    for index, layer in enumerate(LAYERS):
        if package in layer:
            return index
    raise AssertionError(f"simpo_live.{package} is in no layer of tests/unit/test_import_layers.py: place it")


def test_no_import_goes_up_a_layer_or_between_siblings():
    upward = []
    for module, targets in import_graph().items():
        source = package_of(module)
        for target in targets:
            destination = package_of(target)
            if layer_of(destination) > layer_of(source) or (source, destination) in FORBIDDEN:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_module_import_cycle():
    graph = import_graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from simpo_live.evals.hook import InferenceEvalHook\n")
    assert imports_of(source, {"simpo_live.evals.hook"}) == {"simpo_live.evals.hook"}
    assert layer_of("evals") > layer_of("rollout") > layer_of("config")

"""Every `torch.cuda.*` / `torch._C._cuda*` call in the package, checked against the installed torch without a GPU:
the function exists and accepts the call's positional count and keyword names. A CUDA-only line that passes an
argument this torch does not take fails here, not at step 1 on a GPU (varlen_attn has its own stand-in tests)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import torch

import simpo_live

PACKAGE = Path(simpo_live.__file__).parent


def dotted_name(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def cuda_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = dotted_name(node.func)
                if name and (name.startswith("torch.cuda.") or name.startswith("torch._C._cuda")):
                    calls.append((f"{path.relative_to(PACKAGE)}:{node.lineno} {name}", node))
    return calls


def resolve(name: str):
    target = torch
    for part in name.split(".")[1:]:
        target = getattr(target, part)
    return target


def test_the_package_makes_cuda_calls_and_each_binds_to_the_installed_torch():
    calls = cuda_calls()
    assert len(calls) >= 15  # decode graphs, memory probes, RNG state, device choice...
    unbound = []
    for where, call in calls:
        name = where.split()[-1]
        if name.startswith("torch._C."):  # private: the package guards each with hasattr
            continue
        fn = resolve(name)  # AttributeError names a call this torch does not have
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            continue  # a builtin without a signature: existence is all that can be checked
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            continue
        try:
            signature.bind(*range(len(call.args)), **{k.arg: None for k in call.keywords})
        except TypeError as error:
            unbound.append(f"{where}: {error}")
    assert not unbound, unbound

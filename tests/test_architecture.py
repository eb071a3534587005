"""The import contract: `ghostnet_keras` <- `ghostnet_keras.hub`, `ghostnet_keras.tflite` <-
`ghostnet_keras.training`.

Read from the source with `ast`, imports inside functions included, so that no layer reaches
up and no cycle hides behind a lazy import. KerasHub is imported by `ghostnet_keras.hub` only:
`import ghostnet_keras` never loads it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_DIR

# Source folder -> package name; the order is the layering (each may import the ones before).
LAYERS = {
    "ghostnet_keras": "ghostnet_keras",
    "ghostnet_keras/hub": "ghostnet_keras.hub",
    "tflite": "ghostnet_keras.tflite",
    "training": "ghostnet_keras.training",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in LAYERS.items():
        for path in sorted((REPO_DIR / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def _layer(module: str) -> int:
    for index, package in reversed(list(enumerate(LAYERS.values()))):
        if module == package or module.startswith(package + "."):
            return index
    raise ValueError(module)


def _imported_names(path: Path) -> set[str]:
    """Every module name `path` imports (any depth in the file), with `from x import y` as
    both `x` and `x.y`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (any depth in the file)."""
    return {name for name in _imported_names(path) if name in modules}


def test_no_layer_imports_a_layer_above_it() -> None:
    modules = _modules()
    upward = [
        f"{name} imports {target}"
        for name, path in modules.items()
        for target in _imports(path, modules)
        if _layer(target) > _layer(name)
    ]
    assert upward == []


def test_module_imports_have_no_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # A package's __init__ may name its own submodules; that is not a dependency cycle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*stack[stack.index(target):], target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_only_the_hub_package_imports_keras_hub() -> None:
    importers = sorted(
        name for name, path in _modules().items()
        if any(n == "keras_hub" or n.startswith("keras_hub.") for n in _imported_names(path))
    )
    assert importers and all(name.startswith("ghostnet_keras.hub.") or name ==
                             "ghostnet_keras.hub" for name in importers), importers


def test_import_ghostnet_keras_does_not_load_keras_hub() -> None:
    script = (
        "import sys\n"
        "import ghostnet_keras, ghostnet_keras.data_format, ghostnet_keras.onnx_export\n"
        "ghostnet_keras.GhostNet(width=0.1, input_shape=(32, 32, 3))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'keras_hub'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"

"""The import contract: `ghostnet_keras` <- `ghostnet_keras.tflite` <- `ghostnet_keras.training`,
and inside the core its folders in `CORE_ORDER` (`hub/` above `export/`, below `cli/`).

Read from the source with `ast`, imports inside functions included, so that no layer reaches
up and no cycle hides behind a lazy import. KerasHub is imported by `ghostnet_keras.hub` only:
`import ghostnet_keras` never loads it.
"""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_DIR

# Source folder -> package name; the order is the layering (each may import the ones before).
LAYERS = {
    "ghostnet_keras": "ghostnet_keras",
    "tflite": "ghostnet_keras.tflite",
    "training": "ghostnet_keras.training",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in LAYERS.items():
        for path in sorted((REPO_DIR / folder).rglob("*.py")):
            parts = path.relative_to(REPO_DIR / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            modules[".".join((package, *parts))] = path
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
        "import ghostnet_keras, ghostnet_keras.data_format, ghostnet_keras.export.onnx\n"
        "ghostnet_keras.GhostNet(width=0.1, input_shape=(32, 32, 3))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'keras_hub'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# Inside the core, by folder; each may import the ones before it (and its own folder). "" is
# the top-level helpers (backends, data_format, preprocessing, imagenet, atomic_write, ...);
# `cli` is a leaf: nothing in the core imports a command line.
CORE_ORDER = ("", "layers", "weights", "models", "analysis", "export", "hub", "cli")


def _core_folder(module: str) -> str | None:
    """The core folder of `module` ("" for a top-level helper), None outside the core."""
    parts = module.split(".")
    if parts[0] != "ghostnet_keras" or len(parts) < 2 or parts[1] in ("tflite", "training"):
        return None
    return parts[1] if len(parts) > 2 or parts[1] in CORE_ORDER else ""


def test_core_subpackages_import_one_way() -> None:
    modules = _modules()
    core = {name: path for name, path in modules.items() if _core_folder(name) is not None}
    folders = {_core_folder(name) for name in core}
    assert folders == set(CORE_ORDER), (
        f"core folders {sorted(folders)} != CORE_ORDER: give a new folder its place in the order"
    )
    upward = [
        f"{name} imports {target}"
        for name, path in core.items()
        for target in _imports(path, modules)
        if _core_folder(target) is not None
        and CORE_ORDER.index(_core_folder(target)) > CORE_ORDER.index(_core_folder(name))
    ]
    assert upward == []


def _console_script_modules() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO_DIR / "setup.cfg")
    targets = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return {line.split("=", 1)[1].strip().split(":")[0] for line in targets}


def test_command_lines_are_leaves() -> None:
    """No module imports the module of a console script in a `cli/` folder (a leaf)."""
    modules = _modules()
    commands = {name for name in _console_script_modules() if ".cli." in name}
    assert commands, "setup.cfg names no cli/ module"
    into_cli = [
        f"{name} imports {target}"
        for name, path in modules.items()
        for target in _imports(path, modules) if target in commands and target != name
    ]
    assert into_cli == []


def test_architecture_doc_names_every_folder_and_module() -> None:
    """docs/architecture.md (the map for newcomers) names every folder and module file."""
    text = (REPO_DIR / "docs" / "architecture.md").read_text()
    missing = sorted(
        str(path.relative_to(REPO_DIR)) for path in _modules().values()
        if (f"`{path.name}`" not in text if path.name != "__init__.py"
            else f"`{path.parent.name}/`" not in text)
    )
    assert missing == [], "add them to docs/architecture.md"

"""The layers contract of ARCHITECTURE.md, checked on the source (no import is executed).

Every ``import`` and ``from ... import`` statement of a package counts — at the top of a module, inside
functions (lazy imports), under ``if TYPE_CHECKING:`` — and so does ``importlib.import_module`` with a
literal name. A name that is not a literal is itself a violation: by-name loading is invisible to this check
(and to a reader). Three rules:

1. **Rooms only import downwards**: a module may import modules of its own room or of rooms in lower rows;
   rooms in the same row are independent of each other.
2. **No circles** between modules, lazy imports included (a package's ``__init__`` counts as a module).
3. **Forbidden third-party imports**: Lightning only inside ``training`` (and the rooms above it that are
   allowed it), argparse only in ``cli``.

``python tests/layers.py [PACKAGE_DIR]`` prints the violations; ``tests/test_layers.py`` runs it in ``make test``.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

# Bottom to top. A room is a top-level module or sub-package of lorevit; one row's rooms are independent.
ROWS: list[tuple[str, ...]] = [
    ("version", "errors"),
    ("white_box", "losses", "recipes"),
    ("utils",),
    ("config",),
    ("weights", "knowledge", "data"),
    ("backbone",),
    ("heads",),
    ("methods",),
    ("adapters",),
    ("model",),
    ("factory",),
    ("training",),
    ("run",),  # one release's alias of lorevit.training.run
    ("tools", "tasks"),
    ("bench", "app"),
    ("cli",),
    ("__main__",),
]
FACE = ""  # the package's own __init__: the public face, imported by no module of the package
# third-party module → rooms that may import it (anything else may not)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "lightning": ("training", "run", "bench", "cli", "__main__"),
    "pytorch_lightning": (),
    "argparse": ("cli", "__main__"),
    "gradio": ("app",),  # the optional app extra: lorevit works without it
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.text}"


def module_name(path: Path, root: Path) -> str:
    """``root/a/b.py`` → ``a.b``; ``root/a/__init__.py`` → ``a``; the root's own ``__init__`` → ``""``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def room_of(module: str) -> str:
    return module.split(".")[0]


def _imports(tree: ast.AST, module: str, is_package: bool, package: str):
    """(line, dotted target inside the package or None, third-party top name or None, problem or None)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == package:
                    yield node.lineno, alias.name[len(package) + 1:], None, None
                else:
                    yield node.lineno, None, top, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if module else []
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
                yield from ((node.lineno, f"{target}.{a.name}".strip("."), None, None) for a in node.names)
            elif node.module and node.module.split(".")[0] == package:
                target = node.module[len(package) + 1:]
                for alias in node.names:  # a submodule, or a name of the module (resolves to the module)
                    yield node.lineno, f"{target}.{alias.name}".strip("."), None, None
            elif node.module:
                yield node.lineno, None, node.module.split(".")[0], None
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
                if name.split(".")[0] == package:
                    yield node.lineno, name[len(package) + 1:], None, None
                elif not name.startswith("."):
                    yield node.lineno, None, name.split(".")[0], None
                else:
                    yield node.lineno, None, None, f"relative import_module({name!r})"
            else:
                yield node.lineno, None, None, "import_module() of a computed name: load modules by explicit import"


def check(root: Path, rows: list[tuple[str, ...]] = ROWS, forbidden: dict = FORBIDDEN) -> list[Violation]:
    """Every violation of the three rules in the package at ``root`` (its folder)."""
    root = Path(root)
    package = root.name
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root): p for p in files}
    level = {room: i for i, row in enumerate(rows) for room in row}
    violations: list[Violation] = []
    edges: dict[str, dict[str, int]] = {m: {} for m in modules}

    def resolve(target: str) -> str | None:
        """The module a dotted target names (an attribute of a module resolves to that module)."""
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target if target in modules else (None if target else "")

    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target, third_party, problem in _imports(tree, module, path.name == "__init__.py", package):
            if problem:
                violations.append(Violation(module, line, problem))
                continue
            if third_party is not None:
                allowed = forbidden.get(third_party)
                if allowed is not None and room_of(module) not in allowed:
                    violations.append(Violation(module, line, f"imports {third_party} (allowed only in "
                                                              f"{', '.join(allowed) or 'no room'})"))
                continue
            found = resolve(target)
            if found is None or found == module:
                continue
            if found == FACE:
                violations.append(Violation(module, line, f"imports the package face {package}/__init__.py "
                                                          "(import the module that defines the name)"))
                continue
            edges[module].setdefault(found, line)

    for module, targets in edges.items():
        if module == FACE:
            continue
        here = room_of(module)
        for target, line in targets.items():
            there = room_of(target)
            if here == there:
                continue
            if here not in level or there not in level:
                missing = here if here not in level else there
                violations.append(Violation(module, line, f"room {missing!r} is in no row of the layers contract"))
            elif level[there] > level[here]:
                violations.append(Violation(module, line, f"upward import: {here} (row {level[here]}) imports "
                                                          f"{target} (room {there}, row {level[there]})"))
            elif level[there] == level[here]:
                violations.append(Violation(module, line, f"rooms {here} and {there} share a row and must be "
                                                          f"independent, but {module} imports {target}"))
    for cycle in cycles(edges):
        first = cycle[0]
        violations.append(Violation(first, edges[first][cycle[1]], "import circle: " + " → ".join(cycle)))
    return violations


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    found = []
    for component in components:  # a shortest way back to the start, for a readable message
        members = set(component)
        start = min(component)
        paths = {start: [start]}
        queue = [start]
        cycle = None
        while queue and cycle is None:
            v = queue.pop(0)
            for w in edges[v]:
                if w == start:
                    cycle = paths[v] + [start]
                    break
                if w in members and w not in paths:
                    paths[w] = paths[v] + [w]
                    queue.append(w)
        found.append(cycle or sorted(component))
    return found


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "lorevit"
    problems = check(target)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} violation(s)")
    sys.exit(1 if problems else 0)

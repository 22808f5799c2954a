"""The code behind a step: which of weightspace's source files can run when it computes, and
their fingerprint, which a step's key includes (so a changed algorithm is recomputed, not reused).

The files are the compute function's own module and every weightspace module the function
reaches: what it imports or names (and what the helpers of its module that it calls import or
name), then everything those modules import, transitively. Every ``import`` in such a module
counts, at module level or inside a function (a lazy import is still code the step may run), and
so do the C sources beside a module (the fused LSTM kernel). Of the compute function's own module
only the source of what it uses counts (the function, and the helpers and constants beside it that
it names), so editing a family's report code beside its steps recomputes nothing. What a step
picks by name at run time (its task family from the task registry, its encoder from the encoder
registry) is not an import; the step names those modules itself
(:attr:`~weightspace.experiments.steps.Step.code`). Registries are not followed, so a change to
one encoder does not recompute the other encoders' steps, and a change to the predictor does not
recompute a zoo.

The fingerprint hashes the source text, so any edit of a file in a step's closure (a constant, a
line of an algorithm, a comment too) gives the step a new key. Going back to the earlier code
reuses the result it computed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = __name__.split(".")[0]
#: non-Python sources compiled or read at run time by the module beside them
OTHER_SOURCES = ("*.c",)
#: the step runner and this module: they schedule steps, key them and store their results, and
#: compute none of them, so their edits recompute nothing (what they store is versioned by the
#: run's ``run.json``)
RUNNER = (f"{PACKAGE}.experiments.steps", __name__)


@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None) if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _is_package(name: str) -> bool:
    file = _module_file(name)
    return file is not None and file.name == "__init__.py"


@lru_cache(maxsize=None)
def imports_of(name: str) -> tuple[str, ...]:
    """The weightspace modules module ``name`` imports anywhere in its file."""
    file = _module_file(name)
    if file is None:
        return ()
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(_parsed(file)[1]):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found |= _resolve(node, package)  # "from a import b": a, and a.b where b is a submodule
    return tuple(sorted(m for m in found if m.split(".")[0] == PACKAGE and _module_file(m) is not None))


def closure(roots) -> list[str]:
    """``roots`` and every weightspace module they import, transitively, with the packages that
    contain them (an ``__init__`` runs on import: its file counts, but what it imports only where
    a module imports that by name)."""
    seen, parents, todo = set(), set(), [r for r in roots if r.split(".")[0] == PACKAGE]
    while todo:
        name = todo.pop()
        if name in seen or name in RUNNER or _module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        parents.update(".".join(parts[:i]) for i in range(1, len(parts)))
        todo += imports_of(name)
    return sorted(seen | {p for p in parents if _module_file(p) is not None})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    return _sha(path.read_bytes())


@lru_cache(maxsize=None)
def _top() -> Path:
    """The package's folder."""
    return _module_file(PACKAGE).parent


def fingerprint(roots) -> dict[str, str]:
    """{file relative to the package: sha256 of its text} of the code behind ``roots``."""
    files = set()
    for name in closure(roots):
        file = _module_file(name)
        files.add(file)
        for pattern in OTHER_SOURCES:
            files.update(file.parent.glob(pattern))
    return {str(f.relative_to(_top())): _file_digest(f) for f in sorted(files)}


def _resolve(node, package: str) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parent = ".".join(parts[: len(parts) - node.level + 1])
        base = f"{parent}.{base}" if base else parent
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


@lru_cache(maxsize=None)
def _parsed(file: Path) -> tuple[str, ast.Module, dict[str, ast.AST]]:
    """(source, syntax tree, top-level definitions) of a source file, read and parsed once."""
    source = file.read_text()
    tree = ast.parse(source, str(file))
    return source, tree, _top_level(tree)


def _top_level(tree) -> dict[str, ast.AST]:
    """A module's top-level functions, classes and assigned names."""
    top = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            top[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        top[name.id] = node
    return top


def _walk_code(node):
    """``ast.walk`` without annotations (types named only there do not run)."""
    todo = [node]
    while todo:
        node = todo.pop()
        yield node
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    todo.append(child)


def function_code(function) -> tuple[set[str], str]:
    """(the weightspace modules a module-level ``function`` reaches directly, the source text of
    the function and of the same module's functions, classes and constants it names, followed
    likewise). Reached: what it imports, and the modules of what it names."""
    function = getattr(function, "func", function)  # a functools.partial
    name = getattr(function, "__module__", None) or type(function).__module__
    module = sys.modules[name]
    if not getattr(module, "__file__", None):  # defined interactively: no source to read
        return set(), ""
    source, _, top = _parsed(Path(module.__file__))
    if getattr(function, "__name__", None) not in top:  # a lambda, a nested function, a callable object
        return {name}, ""  # its whole module, and what that imports
    package = name if _is_package(name) else name.rpartition(".")[0]
    roots, seen, texts, todo = set(), set(), {}, [top[function.__name__]]
    while todo:
        node = todo.pop()
        if id(node) in texts:
            continue
        parts = [*getattr(node, "decorator_list", []), node]
        texts[id(node)] = (parts[0].lineno, "\n".join(ast.get_source_segment(source, n, padded=True) for n in parts))
        for inner in _walk_code(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                roots |= _resolve(inner, package)
            elif isinstance(inner, ast.Name) and inner.id not in seen:
                seen.add(inner.id)
                if inner.id in top:
                    todo.append(top[inner.id])
                value = module.__dict__.get(inner.id)
                if inspect.ismodule(value):
                    roots.add(value.__name__)
                elif getattr(value, "__module__", None) not in (None, name):
                    roots.add(value.__module__)
    text = "\n".join(segment for _, segment in sorted(texts.values()))
    return {r for r in roots if r.split(".")[0] == PACKAGE and _module_file(r) is not None}, text


def step_fingerprint(functions, modules=()) -> dict[str, str]:
    """{file, or file::function: sha256} of the code behind a step: the source of its
    ``functions`` (and of the helpers beside them they use) and the files of every module they
    and the step's own ``modules`` reach (:func:`closure`). Modules outside weightspace (a user's
    task family) count by their own file."""
    roots, texts = set(modules), {}
    for function in functions:
        reached, text = function_code(function)
        roots |= reached
        if text:
            texts[f"{_label(getattr(function, '__module__', ''))}::{function.__name__}"] = _sha(text.encode())
    for name in modules:
        file = None if name.split(".")[0] == PACKAGE else _module_file(name)
        if file is not None:
            texts[_label(name)] = _file_digest(file)
    return dict(sorted({**fingerprint(roots), **texts}.items()))


def _label(module: str) -> str:
    """A module's file relative to the package, or its name outside it."""
    file = _module_file(module) if module else None
    return str(file.relative_to(_top())) if file is not None and file.is_relative_to(_top()) else module


def digest(files: dict[str, str]) -> str:
    """One digest of a fingerprint (what a step's key hashes)."""
    return _sha("\n".join(f"{name} {sha}" for name, sha in sorted(files.items())).encode())


def module_of(obj) -> str:
    """The module that defines ``obj`` (a class or an instance): for a step's ``code``."""
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__module__

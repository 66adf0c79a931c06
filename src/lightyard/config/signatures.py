"""Signatures of `_target_`s read from source with `ast`, never by importing: validation must
finish before torch or Lightning load (importing lightning alone takes seconds)."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class Param:
    name: str
    required: bool
    annotation: ast.expr | None


@dataclass
class Signature:
    """The keyword-passable parameters of a callable; `open` when it takes **kwargs."""

    target: str
    params: dict[str, Param] = field(default_factory=dict)
    open: bool = False
    body: ast.ClassDef | None = None  # the class, for class attributes such as logged_metrics


def module_file(dotted: str) -> Path | None:
    """The source file of a module, found without importing it or its parent packages."""
    parts = dotted.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    file = Path(spec.origin)
    paths = list(spec.submodule_search_locations or [])
    for part in parts[1:]:
        for base in paths:
            package, module = Path(base) / part, Path(base) / f"{part}.py"
            if (package / "__init__.py").is_file():
                file, paths = package / "__init__.py", [str(package)]
                break
            if module.is_file():
                file, paths = module, []
                break
        else:
            return None
    return file if file.suffix == ".py" else None


@lru_cache(maxsize=256)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_tree(dotted: str) -> ast.Module | None:
    """The parsed source of a module (cached with the signatures' own), or None when it has no
    readable Python source."""
    file = module_file(dotted)
    if file is None or file.suffix != ".py":
        return None
    try:
        return _parse(file)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def find_definition(dotted_module: str, name: str, depth: int = 0):
    """(module, ast node) defining `name` in a module, following `from x import name` chains."""
    file = module_file(dotted_module)
    if file is None or depth > 8:
        return None
    tree = _parse(file)
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return dotted_module, node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _absolute(dotted_module, file.name == "__init__.py", node)
                    found = find_definition(source, alias.name, depth + 1)
                    if found is None:  # `from pkg import submodule`
                        return None
                    return found
    return None


def _params(fn: ast.FunctionDef, skip_first: bool) -> tuple[dict[str, Param], bool]:
    args = fn.args
    positional = args.posonlyargs + args.args
    if skip_first:
        positional = positional[1:]
    n_required = len(positional) - len(args.defaults)
    params = {
        a.arg: Param(a.arg, i < n_required, a.annotation)
        for i, a in enumerate(positional)
        if a not in args.posonlyargs
    }
    for a, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params[a.arg] = Param(a.arg, default is None, a.annotation)
    return params, args.kwarg is not None


def signature_of(target: str) -> Signature | None:
    """The signature of `module.Name` (a class's __init__, searched up its bases), or None when it
    cannot be read from source (then the target is only checked when it is built)."""
    module, _, name = target.rpartition(".")
    if not module:
        return None
    found = find_definition(module, name)
    if found is None:
        return None
    where, node = found
    if isinstance(node, ast.FunctionDef):
        params, open_ = _params(node, skip_first=False)
        return Signature(target, params, open_)
    return _class_signature(target, where, node, depth=0)


def _class_signature(target: str, module: str, node: ast.ClassDef, depth: int):
    if any(
        isinstance(d, (ast.Name, ast.Attribute)) and ast.unparse(d).endswith("dataclass")
        for d in node.decorator_list
    ):
        return None
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            params, open_ = _params(item, skip_first=True)
            if open_ and _passes_kwargs_up(item) and depth <= 8:
                # **kwargs handed to the base: its keyword arguments are this class's too
                base = _base_signature(target, module, node, depth)
                if base is not None:
                    for name, param in base.params.items():
                        params.setdefault(name, Param(name, False, param.annotation))
                    open_ = base.open
            return Signature(target, params, open_, node)
    if depth > 8:
        return None
    for base in node.bases:  # no __init__ of its own: the first base that has one
        base_name = ast.unparse(base)
        if base_name in ("object", "Generic") or base_name.startswith("Generic["):
            continue
        base_module, _, short = base_name.rpartition(".")
        found = find_definition(module if not base_module else base_module, short)
        if found is None:
            return None
        base_sig = _class_signature(target, found[0], found[1], depth + 1)
        if base_sig is not None:
            base_sig.body = node
        return base_sig
    return Signature(target, {}, False, node)


def _passes_kwargs_up(init: ast.FunctionDef) -> bool:
    """`super().__init__(..., **kwargs)` in the body of an __init__."""
    name = init.args.kwarg.arg if init.args.kwarg else None
    for call in ast.walk(init):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "__init__"
            and any(k.arg is None and ast.unparse(k.value) == name for k in call.keywords)
        ):
            return True
    return False


def _base_signature(target: str, module: str, node: ast.ClassDef, depth: int):
    for base in node.bases:
        base_name = ast.unparse(base)
        base_module, _, short = base_name.rpartition(".")
        found = find_definition(module if not base_module else base_module, short)
        if found is not None and isinstance(found[1], ast.ClassDef):
            return _class_signature(target, found[0], found[1], depth + 1)
    return None


def inherited_constant(target: str, name: str, depth: int = 0):
    """A literal class attribute of `module.Name`, looked up through its bases as Python would
    (first in the class, then each base in order), or None."""
    module, _, short = target.rpartition(".")
    found = find_definition(module, short) if module else None
    if found is None or not isinstance(found[1], ast.ClassDef) or depth > 8:
        return None
    where, node = found
    value = _constant_in(node, name)
    if value is not None:
        return value
    for base in node.bases:
        base_name = ast.unparse(base)
        base_module, _, base_short = base_name.rpartition(".")
        value = inherited_constant(f"{base_module or where}.{base_short}", name, depth + 1)
        if value is not None:
            return value
    return None


def class_constant(signature: Signature, name: str):
    """A literal class attribute (e.g. `logged_metrics = (...)`), or None."""
    if signature.body is None:
        return None
    return _constant_in(signature.body, name)


def _constant_in(body: ast.ClassDef, name: str):
    for item in body.body:
        targets = (
            item.targets
            if isinstance(item, ast.Assign)
            else [item.target]
            if isinstance(item, ast.AnnAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and item.value:
            try:
                return ast.literal_eval(item.value)
            except ValueError:
                return None
    return None


# --- annotations as value checks --------------------------------------------------------------

_SIMPLE = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "None": "null",
}
_SEQUENCES = {"list", "List", "tuple", "Tuple", "Sequence", "Iterable", "ListConfig"}
_MAPPINGS = {"dict", "Dict", "Mapping", "DictConfig"}


def describe_and_check(annotation: ast.expr | None, value) -> tuple[bool, str] | None:
    """(value fits, what is allowed) for annotations built of simple types; None when the
    annotation names anything else (Tensor, Callable, ...), which is then not checked."""
    if annotation is None:
        return None
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    options = _union_members(annotation)
    verdicts = []
    for member in options:
        verdict = _check_member(member, value)
        if verdict is None:
            return None
        verdicts.append(verdict)
    return any(ok for ok, _ in verdicts), " or ".join(text for _, text in verdicts)


def _union_members(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_members(node.left) + _union_members(node.right)
    if isinstance(node, ast.Subscript):
        head = ast.unparse(node.value).rpartition(".")[2]
        if head == "Optional":
            return [*_union_members(node.slice), ast.Constant(None)]
        if head == "Union":
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            return [m for item in items for m in _union_members(item)]
    return [node]


def _check_member(node: ast.expr, value) -> tuple[bool, str] | None:
    if isinstance(node, ast.Constant) and node.value is None:
        return value is None, "null"
    head = ast.unparse(node.value if isinstance(node, ast.Subscript) else node).rpartition(".")[2]
    if head == "Literal" and isinstance(node, ast.Subscript):
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        try:
            allowed = [ast.literal_eval(i) for i in items]
        except ValueError:
            return None
        return value in allowed, " or ".join(repr(a) for a in allowed)
    if head in _SIMPLE and not isinstance(node, ast.Subscript):
        return _fits_simple(head, value), _SIMPLE[head]
    if head in _SEQUENCES:
        return isinstance(value, (list, tuple)), "a list"
    if head in _MAPPINGS:
        return isinstance(value, dict), "a mapping"
    return None


def _fits_simple(kind: str, value) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)

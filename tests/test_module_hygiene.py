"""Review rules that hold across modules: each read from the source, so a new violation fails here.

- a name is imported from the module that defines it, not through one that merely re-imports it;
- `runner/demo.py` drives the CLI through the `run_command` it is handed, so neither `runner/cli.py`
  nor `runner/demo.py` imports the other inside a function to dodge an import cycle;
- trust policies (`sts:AssumeRole` for a `Principal`) are built only by `components/shared/iam.py`;
- every `kms:ViaService` value comes from `iam.kms_via_service`.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

import pytest

PROJECT = Path(__file__).resolve().parent.parent
AREAS = ("components", "runner", "offline", "policy", "acceptance", "bench", "cost")
IAM_HELPERS = PROJECT / "components" / "shared" / "iam.py"


def _sources() -> list[Path]:
    found = [PROJECT / "__main__.py", PROJECT / "program.py"]
    for area in AREAS:
        found += sorted((PROJECT / area).rglob("*.py"))
    return [path for path in found if path.exists()]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _module_file(importer: Path, node: ast.ImportFrom) -> Optional[Path]:
    """The project file an import names (None for third-party and standard-library modules)."""
    if node.level:
        base = importer.parent
        for _ in range(node.level - 1):
            base = base.parent
    else:
        base = PROJECT
    target = base.joinpath(*(node.module or "").split(".")) if node.module else base
    if target.with_suffix(".py").is_file():
        return target.with_suffix(".py")
    if (target / "__init__.py").is_file():
        return target / "__init__.py"
    return None


def _top_level_names(path: Path) -> tuple[set[str], set[str]]:
    """(names the module defines, names it only imports), at module level."""
    defined: set[str] = set()
    imported: set[str] = set()
    for node in _tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
    return defined, imported - defined


def test_names_are_imported_from_the_module_that_defines_them():
    relayed = []
    for path in _sources():
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _module_file(path, node)
            if source is None:
                continue
            _, only_imported = _top_level_names(source)
            for alias in node.names:
                submodule = source.name == "__init__.py" and (
                    (source.parent / f"{alias.name}.py").exists() or (source.parent / alias.name).is_dir()
                )
                if alias.name in only_imported and not submodule:
                    relayed.append(f"{path.relative_to(PROJECT)}:{node.lineno} imports {alias.name} through {node.module}")
    assert not relayed, "import these from the module that defines them:\n" + "\n".join(relayed)


def _imports_of(path: Path, module: str) -> list[int]:
    """Lines where `path` imports `runner.<module>` (as `.module` or `runner.module`), at any depth."""
    lines = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            names = {f"{node.module}"} if node.module else {alias.name for alias in node.names}
            if node.level == 1 and module in names or node.level == 0 and f"runner.{module}" in names:
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(alias.name == f"runner.{module}" for alias in node.names):
            lines.append(node.lineno)
    return lines


def _function_level_imports(path: Path, module: str) -> list[int]:
    tree = _tree(path)
    top = {node.lineno for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))}
    return [line for line in _imports_of(path, module) if line not in top]


def test_the_demo_and_the_cli_need_no_lazy_import_of_each_other():
    runner = PROJECT / "runner"
    assert _imports_of(runner / "demo.py", "cli") == [], "runner/demo.py must not import runner/cli.py (it is handed run_command)"
    assert _function_level_imports(runner / "cli.py", "demo") == [], "runner/cli.py imports runner/demo.py at module level"


def _constant(node: ast.AST) -> Optional[str]:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _assumes_role(node: ast.AST) -> bool:
    if _constant(node) == "sts:AssumeRole":
        return True
    return isinstance(node, (ast.List, ast.Tuple)) and any(_constant(item) == "sts:AssumeRole" for item in node.elts)


@pytest.mark.parametrize("path", [p for p in _sources() if p != IAM_HELPERS], ids=lambda p: str(p.relative_to(PROJECT)))
def test_trust_policies_and_kms_via_service_come_from_the_iam_helpers(path):
    hand_written = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Dict):
            entries = {_constant(key): value for key, value in zip(node.keys, node.values) if key is not None}
            if "Principal" in entries and "Action" in entries and _assumes_role(entries["Action"]):
                hand_written.append(f"line {node.lineno}: a trust statement (use iam.trust_statement or a trust-policy helper)")
            via = entries.get("kms:ViaService")
            if via is not None and not (
                isinstance(via, ast.Call) and getattr(via.func, "id", getattr(via.func, "attr", None)) == "kms_via_service"
            ):
                hand_written.append(f"line {node.lineno}: a kms:ViaService value (use iam.kms_via_service)")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "statement" and node.args[1:2] and _assumes_role(node.args[1]):
            if any(keyword.arg == "principal" for keyword in node.keywords):
                hand_written.append(f"line {node.lineno}: statement(..., principal=...) for sts:AssumeRole (use iam.trust_statement)")
    assert not hand_written, f"{path.relative_to(PROJECT)}:\n" + "\n".join(hand_written)

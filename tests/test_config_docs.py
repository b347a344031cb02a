"""The docs' configuration tables and YAML examples agree with the config models.

Every documented key must exist in the model of its section, and a table's default must be the
model's; a section's table or "defaults shown" example must list every key of its model. So adding
a setting to a model without documenting it, or changing a default in one place only, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, get_args

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.master.config import MasterConfig
from components.silo.config import SiloConfig

PROJECT_DIR = Path(__file__).resolve().parent.parent
DOCS = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
# Top-level keys documented in no table, with the reason.
UNDOCUMENTED = {"adopt": "written by the runner from its ledger (docs/runner.md), never set by hand"}


def _model_of(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {field.alias or name: field for name, field in model.model_fields.items()}


def field_at(path: str) -> Optional[FieldInfo]:
    """The field of `path` (`runner.maxConcurrency`) in either stack's model, or None."""
    for root in (MasterConfig, SiloConfig):
        model: Optional[type[BaseModel]] = root
        field = None
        for part in path.split("."):
            field = _fields(model).get(part) if model else None
            if field is None:
                break
            model = _model_of(field.annotation)
        if field is not None:
            return field
    return None


def section_model(section: str) -> type[BaseModel]:
    field = field_at(section)
    assert field is not None and _model_of(field.annotation), f"no config section {section!r}"
    return _model_of(field.annotation)


def default_of(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def documented_default_matches(text: str, field: FieldInfo) -> bool:
    """Whether a table's default cell (`8`, `` `PriceClass_100` ``, `required`, `none (...)`) is the model's."""
    default = default_of(field)
    text = text.strip()
    if default is PydanticUndefined:
        return text == "required"
    if default is None and not text.startswith("none") and ("<" in text or text.startswith("the ")):
        return True  # derived where it is used, e.g. `<prefix>-master-pulumi-state-<account-id>`
    if text.startswith("none") or text in ("`{}`", "`[]`", "empty"):
        return default in (None, {}, []) or (isinstance(default, BaseModel) and default == type(default)())
    value = text.strip("`")
    if isinstance(default, bool):
        return value == str(default).lower()
    if isinstance(default, (int, float)):
        try:
            return float(value.replace(",", "")) == float(default)
        except ValueError:
            return False
    return value == str(default)


# -- the tables --------------------------------------------------------------------------------------

TABLE_SECTION = re.compile(r"^\| key \(`datalake:(\w+)\.`\)")
HEADING_SECTION = re.compile(r"^#+ .*\(`datalake:(\w+)`\)")


def config_tables() -> list[tuple[str, Optional[str], list[list[str]]]]:
    """Every table whose header starts with `key`: (file, section or None for top-level, rows)."""
    tables = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        section: Optional[str] = None
        for index, line in enumerate(lines):
            heading = HEADING_SECTION.match(line)
            if line.startswith("#"):
                section = heading.group(1) if heading else None
            if not line.startswith("| key"):
                continue
            header = TABLE_SECTION.match(line)
            rows = []
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip("|").split("|")])
            columns = [cell.strip() for cell in line.strip("|").split("|")]
            tables.append((f"{path.name}:{index + 1}", header.group(1) if header else section, columns, rows))
    return tables


TABLES = config_tables()


def test_the_docs_have_config_tables():
    assert {(where.split(":")[0], section) for where, section, _, _ in TABLES} >= {
        ("README.md", None),
        ("console.md", "console"),
        ("runner.md", "runner"),
    }


@pytest.mark.parametrize("where,section,columns,rows", TABLES, ids=[t[0] for t in TABLES])
def test_every_documented_key_exists_with_its_default(where, section, columns, rows):
    default_column = columns.index("default")
    problems = []
    for row in rows:
        keys = re.findall(r"`([^`]+)`", row[0])
        separator = " / " if " / " in row[0] else ","
        defaults = [d.strip() for d in row[default_column].split(separator)] if len(keys) > 1 else [row[default_column]]
        for key, default in zip(keys, defaults if len(defaults) == len(keys) else [row[default_column]] * len(keys)):
            if key == "kind" and section is None and default == "required":
                continue  # `parse_stack_config` needs it to pick the model, which then fixes it
            if key == "aws:region":
                field = field_at("region")
            else:
                field = field_at(f"{section}.{key}" if section else key)
            if field is None:
                problems.append(f"{where}: `{key}` is no config key")
            elif not documented_default_matches(default, field):
                problems.append(f"{where}: `{key}` documented default {default!r}, the model's is {default_of(field)!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("where,section,columns,rows", TABLES, ids=[t[0] for t in TABLES])
def test_every_key_of_a_documented_section_is_in_its_table(where, section, columns, rows):
    documented = {key for row in rows for key in re.findall(r"`([^`]+)`", row[0])}
    if section is None:
        # The README's table: the keys of both stack kinds that are not capability sections
        # (each documented on its own page), plus the small `artifacts` and `storage` sections.
        expected = set()
        for model in (MasterConfig, SiloConfig):
            for key, field in _fields(model).items():
                sub = _model_of(field.annotation)
                if key in ("artifacts", "storage"):
                    expected |= {f"{key}.{k}" for k in _fields(sub)}
                elif sub is None and key not in UNDOCUMENTED:
                    expected.add("aws:region" if key == "region" else key)
    else:
        expected = set(_fields(section_model(section)))
    assert expected - documented == set(), f"{where}: keys missing from the table"


# -- the YAML examples -------------------------------------------------------------------------------

def yaml_examples() -> list[tuple[str, bool, dict[str, Any]]]:
    """Every ```yaml block with `datalake:<section>:` keys: (file:line, whether it says "defaults shown", sections)."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"```yaml\n(.*?)```", text, flags=re.S):
            # Optional keys shown commented out (`# vpcId: vpc-...`) count as documented.
            block = re.sub(r"^(\s*)# (\w+: )", r"\1\2", match.group(1), flags=re.M)
            if not re.search(r"^\s*datalake:\w+:", block, flags=re.M):
                continue
            try:
                loaded = yaml.safe_load(block.replace("\t", "  "))
            except yaml.YAMLError:
                loaded = yaml.safe_load("\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines()))
            if isinstance(loaded, dict) and "config" in loaded:
                loaded = loaded["config"]
            line = text[: match.start()].count("\n") + 1
            before = text[max(0, match.start() - 200) : match.start()]
            found.append((f"{path.name}:{line}", "defaults shown" in before, loaded or {}))
    return found


EXAMPLES = yaml_examples()


def _check(model: type[BaseModel], values: Any, where: str, compare_defaults: bool, problems: list[str]) -> None:
    if not isinstance(values, dict):
        return
    fields = _fields(model)
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            problems.append(f"{where}: `{key}` is no key of {model.__name__}; known: {', '.join(sorted(fields))}")
            continue
        sub = _model_of(field.annotation) or _model_of(next(iter(get_args(field.annotation)), None))
        if sub is not None and isinstance(value, dict):
            _check(sub, value, f"{where}.{key}", compare_defaults, problems)
        elif sub is not None and isinstance(value, list):
            for index, item in enumerate(value):
                _check(sub, item, f"{where}.{key}[{index}]", False, problems)
        elif compare_defaults and value != default_of(field):
            problems.append(f"{where}.{key}: shown as default {value!r}, the model's is {default_of(field)!r}")


@pytest.mark.parametrize("where,defaults_shown,sections", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_yaml_examples_use_known_keys(where, defaults_shown, sections):
    problems: list[str] = []
    for full_key, values in sections.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace != "datalake":
            continue
        field = field_at(key)
        if field is None:
            problems.append(f"{where}: `datalake:{key}` is no config key")
        elif isinstance(values, list) and _model_of(next(iter(get_args(field.annotation)), None)):
            for index, item in enumerate(values):
                _check(_model_of(get_args(field.annotation)[0]), item, f"{where}: datalake:{key}[{index}]", False, problems)
        elif _model_of(field.annotation) is not None and isinstance(values, dict):
            _check(_model_of(field.annotation), values, f"{where}: datalake:{key}", defaults_shown, problems)
            if defaults_shown:
                missing = set(_fields(_model_of(field.annotation))) - set(values)
                if missing:
                    problems.append(f"{where}: datalake:{key} says defaults shown but omits {sorted(missing)}")
    assert not problems, "\n".join(problems)


# Sections documented by a YAML example on their page rather than by a table.
BY_EXAMPLE = ("ingestion", "etl", "warehouse", "dropzone", "sftp", "analytics", "delivery", "sharing")


@pytest.mark.parametrize("section", BY_EXAMPLE)
def test_the_examples_show_every_key_of_the_sections_documented_by_example(section):
    shown: set[str] = set()
    for _, _, sections in EXAMPLES:
        values = sections.get(f"datalake:{section}")
        if isinstance(values, dict):
            shown |= set(values)
    missing = set(_fields(section_model(section))) - shown
    assert not missing, f"datalake:{section}: keys in no docs example: {sorted(missing)}"

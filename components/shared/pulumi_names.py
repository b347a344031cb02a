"""Pulumi's own rules for stack, project and organization names, for both kinds of backend.

The program and the runner build fully qualified stack names (`<org>/<project>/<stack>`) that the
Pulumi CLI parses; a name it refuses fails every `up`. These checks mirror the CLI, read in
pulumi/pulumi at v3.259.0 (commit 1b59498; the DIY rule has been the same since at least v3.99),
and raise the CLI's own messages so a refusal reads the same offline as against the backend:

- stack names, `tokens.ParseStackName` (sdk/go/common/tokens/stack_name.go): not empty, at most 100
  characters of `A-Za-z0-9_.-`;
- project names, `tokens.ValidateProjectName` (sdk/go/common/tokens/project.go): the same alphabet,
  1-100 characters;
- self-managed (DIY) backends, `projectReferenceStore.ParseReference` (pkg/backend/diy/store.go):
  `<stack>`, `<org>/<stack>` or `<org>/<project>/<stack>`, where the org must be the literal
  `organization`;
- Pulumi Cloud, `cloudBackend.parseStackName` / `ValidateStackName`
  (pkg/backend/httpstate/backend.go): the same three forms; an owner matches
  `^[a-zA-Z0-9][a-zA-Z0-9-_]{1,38}[a-zA-Z0-9]$`.

Which kind of backend holds a stack: a program asks `pulumi.get_organization()`, which the engine
sets to `organization` for every DIY backend (pkg/backend/diy/state.go) and to the stack's owner on
Pulumi Cloud; the runner looks at its backend URL (the DIY schemes are those the CLI registers:
file, s3, gs, azblob, postgres).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional
from urllib.parse import urlparse

BackendKind = Literal["diy", "service"]
DIY: BackendKind = "diy"
SERVICE: BackendKind = "service"
DIY_ORGANIZATION = "organization"
DIY_SCHEMES = frozenset({"file", "s3", "gs", "azblob", "postgres"})
BACKEND_NAMES = {DIY: "a self-managed (DIY: S3, file) backend", SERVICE: "the Pulumi Cloud backend"}

_NAME_BYTES = re.compile(rb"^[A-Za-z0-9_.-]*")
_SERVICE_OWNER = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]{1,38}[a-zA-Z0-9]$")
MAX_NAME = 100


class PulumiNameError(ValueError):
    """A name the Pulumi backend would refuse; the message is the CLI's own."""


@dataclass(frozen=True)
class StackReference:
    """A parsed stack reference; `organization` and `project` are None when the name left them out."""

    organization: Optional[str]
    project: Optional[str]
    stack: str

    def qualified(self, current_project: str, default_organization: str = DIY_ORGANIZATION) -> str:
        """`<org>/<project>/<stack>`, filling parts the name left out as the CLI would."""
        return f"{self.organization or default_organization}/{self.project or current_project}/{self.stack}"


def check_stack_name(name: str) -> str:
    """`tokens.ParseStackName`: the stack part of a reference (lengths and positions in UTF-8 bytes, as Go counts)."""
    data = name.encode()
    if not data:
        raise PulumiNameError("a stack name may not be empty")
    if len(data) > MAX_NAME:
        raise PulumiNameError("a stack name cannot exceed 100 characters")
    end = _NAME_BYTES.match(data).end()  # type: ignore[union-attr]  # `*` always matches
    if end != len(data):
        raise PulumiNameError(
            "a stack name may only contain alphanumeric, hyphens, underscores, or periods: "
            f"invalid character {_go_quote(chr(data[end]))} at position {end}"
        )
    return name


def check_project_name(name: str) -> str:
    """`tokens.ValidateProjectName`."""
    if name == "":
        raise PulumiNameError("project names may not be empty")
    data = name.encode()
    if len(data) > MAX_NAME:
        raise PulumiNameError("project names are limited to 100 characters")
    if _NAME_BYTES.match(data).end() != len(data):  # type: ignore[union-attr]
        raise PulumiNameError("project names may only contain alphanumerics, hyphens, underscores, and periods")
    return name


def check_organization(organization: str, backend: BackendKind) -> str:
    """The org part of a fully qualified stack name, as `backend` accepts it."""
    if backend == DIY:
        if organization != DIY_ORGANIZATION:
            raise PulumiNameError("organization name must be 'organization'")
    elif not _SERVICE_OWNER.match(organization):
        raise PulumiNameError("invalid stack owner")
    return organization


def parse_stack_reference(reference: str, backend: BackendKind) -> StackReference:
    """Parses `<stack>`, `<org>/<stack>` or `<org>/<project>/<stack>` as `backend` does, or raises."""
    if backend == DIY and reference == "":
        raise PulumiNameError("stack name must not be empty")
    parts = reference.split("/")
    if len(parts) > 3:
        if backend == SERVICE:
            raise PulumiNameError(f"could not parse stack name '{reference}'")
        # The DIY store leaves every part empty for more than three, so the stack name check fails.
        parts = [""]
    organization = project = None
    if len(parts) == 3:
        organization, project, stack = parts
    elif len(parts) == 2:
        organization, stack = parts
    else:
        (stack,) = parts
    if organization:  # an empty org part is filled in (DIY: `organization`; Cloud: the default org)
        check_organization(organization, backend)
    if project:
        check_project_name(project)
    check_stack_name(stack)
    return StackReference(organization or None, project or None, stack)


def backend_kind_of_organization(organization: Optional[str]) -> BackendKind:
    """The backend of the running stack, from `pulumi.get_organization()`.

    DIY backends always report `organization`; an unset value (mocks, an old CLI) is taken as DIY,
    the backend the docs recommend. A Pulumi Cloud org literally named `organization` is read as DIY
    too: its same-org references pass either way.
    """
    return DIY if organization in (None, "", DIY_ORGANIZATION) else SERVICE


def backend_kind_of_url(url: Optional[str]) -> BackendKind:
    """The backend a `pulumi login` URL selects: DIY for file/s3/gs/azblob/postgres, else Pulumi Cloud.

    No URL (the runner's default of `s3://<runner.stateBucket>`) is DIY.
    """
    if not url:
        return DIY
    return DIY if urlparse(url).scheme.lower() in DIY_SCHEMES else SERVICE


def _go_quote(char: str) -> str:
    """Go's `%q` of one byte (a rune below 256), as the CLI prints it."""
    escapes = {"\\": "\\\\", "'": "\\'", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if char in escapes:
        return f"'{escapes[char]}'"
    if char.isprintable():
        return f"'{char}'"
    return f"'\\x{ord(char):02x}'" if ord(char) < 0x80 else f"'\\u{ord(char):04x}'"

"""How the runner drives the `pulumi` CLI so that parallel operations share nothing.

- `IsolatedWorkspace` never selects a stack: every command names its stack (`--stack`, or the
  positional name of `stack init`/`stack rm`) and `stack init` gets `--no-select`.
- `private_pulumi_home` gives each operation its own `PULUMI_HOME` whose entries, except
  `workspaces/`, link to the shared one: `stack rm` rewrites the project's current-stack file
  (`workspaces/<project>-<hash>-workspace.json`) whatever flags it gets (pkg/cmd/pulumi/stack/stack_rm.go
  calls `state.SetCurrentStack(ws, "")`), and that file is read by every CLI process; the plugin
  cache (`plugins/`) and credentials stay shared, so providers are downloaded once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Optional

from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

WORKSPACES_DIR = "workspaces"
PLUGINS_DIR = "plugins"


def shared_pulumi_home(env: Mapping[str, str]) -> Path:
    """The PULUMI_HOME every operation would otherwise share: `$PULUMI_HOME`, else `~/.pulumi`."""
    return Path(env.get("PULUMI_HOME") or os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


@contextlib.contextmanager
def private_pulumi_home(shared: Path, parent: Optional[Path] = None) -> Iterator[Path]:
    """A fresh PULUMI_HOME linking every entry of `shared` except `workspaces/`; removed afterwards."""
    shared.mkdir(parents=True, exist_ok=True)
    # Created up front so that the first operation's plugin downloads land in the shared cache.
    (shared / PLUGINS_DIR).mkdir(exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="pulumi-home-", dir=parent))
    try:
        for entry in shared.iterdir():
            if entry.name != WORKSPACES_DIR:
                (private / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        yield private
    finally:
        shutil.rmtree(private, ignore_errors=True)  # unlinks the links, never what they point to


class IsolatedWorkspace(auto.LocalWorkspace):
    """A `LocalWorkspace` that never changes or relies on the project's current stack."""

    def _cli(self, args: list[str]) -> CommandResult:
        env = {**({"PULUMI_HOME": self.pulumi_home} if self.pulumi_home else {}), **self.env_vars}
        return self.pulumi_command.run(args, self.work_dir, env)

    def select_stack(self, stack_name: str) -> None:
        # `Stack.select` calls this; `pulumi stack select` would write the shared current-stack file.
        # Every later command passes `--stack`, and one naming a missing stack fails with
        # "no stack named ... found" (StackNotFoundError) by itself.
        return None

    def create_stack(self, stack_name: str) -> None:
        args = ["stack", "init", stack_name, "--no-select"]
        if self.secrets_provider:
            args.extend(["--secrets-provider", self.secrets_provider])
        self._cli(args)

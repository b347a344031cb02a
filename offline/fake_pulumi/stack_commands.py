"""The fake CLI's stack, config and information commands (`stack ...`, `config`, `cancel`, `version`,
`whoami`, `plugin ls`): they read or edit the state, and run no program."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Imported by plain name: cli.py runs as a script, so its directory is first on sys.path.
from store import (
    Backend,
    Context,
    Fail,
    dump_yaml,
    fake_lock,
    load_yaml,
    now_iso,
    plain,
    pulumi_home,
    read_json,
    reveal,
    set_current_stack,
    short_name,
    user_name,
    workspace_file,
)


def cmd_version(ctx: Context) -> None:
    print(f"v{ctx.behaviour.version}")


def cmd_plugin_ls(ctx: Context) -> None:
    """The plugins under `$PULUMI_HOME/plugins` (`<kind>-<name>-v<version>` directories), as `pulumi plugin ls --json` lists them."""
    plugins = []
    root = pulumi_home() / "plugins"
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        kind, _, rest = path.name.partition("-")
        name, _, version = rest.rpartition("-v")
        if path.is_dir() and kind in ("resource", "language", "analyzer") and name and version:
            plugins.append({"name": name, "kind": kind, "version": version, "size": 0, "installTime": now_iso(), "lastUsedTime": now_iso()})
    if ctx.flag("--json", "-j"):
        print(json.dumps(plugins, indent=4))
    else:
        for plugin in plugins:
            print(f"{plugin['name']:<10} {plugin['kind']:<10} {plugin['version']}")


def cmd_whoami(ctx: Context) -> None:
    user = user_name()
    print(json.dumps({"user": user, "url": ctx.backend.url, "organizations": []}) if ctx.flag("--json") else user)


def cmd_stack_ls(ctx: Context) -> None:
    current = (read_json(workspace_file(ctx.project), {}) or {}).get("stack")
    rows = []
    for stack in ctx.backend.stacks(ctx.flag("--all", "-a")):
        history = ctx.backend.meta(stack)["history"]
        row: dict[str, Any] = {"name": ctx.backend.display(stack), "current": current in (stack, short_name(stack)),
                               "updateInProgress": any(ctx.backend.lock_dir(stack).glob("*.json"))}
        if history:
            row["lastUpdate"] = history[-1]["endTime"]
            row["resourceCount"] = len(ctx.backend.resources(stack))
        rows.append(row)
    print(json.dumps(rows, indent=4))


def cmd_stack_init(ctx: Context) -> None:
    stack = ctx.stack_argument(positional=True)
    if stack is None:
        raise Fail("missing stack name")
    ctx.call.record["stack"] = stack
    provider = ctx.flags.get("--secrets-provider") or "default"
    with fake_lock():
        if ctx.backend.exists(stack):
            raise Fail(f"stack '{stack}' already exists")
        ctx.backend.save_resources(stack, [], {"type": "cloud" if provider.startswith("aws") else provider, "state": {"url": provider}})
    ctx.backend.save_meta(stack, {"tags": {}, "history": []})
    if provider not in ("default", "passphrase"):
        # A cloud secrets provider is recorded in the stack's config file (`secretsprovider`, `encryptedkey`).
        path = ctx.project.stack_file(stack)
        settings = load_yaml(path) if path.exists() else {}
        settings.update(secretsprovider=provider, encryptedkey="ZmFrZS1lbmNyeXB0ZWQta2V5")
        dump_yaml(path, settings)
    if not ctx.flag("--no-select"):
        set_current_stack(ctx.call, ctx.project, stack)
    print(f"Created stack '{ctx.backend.display(stack)}'")


def cmd_stack_select(ctx: Context) -> None:
    stack = ctx.stack(positional=True)
    ctx.backend.require(stack)
    set_current_stack(ctx.call, ctx.project, stack)


def cmd_stack(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    print(f"Current stack is {ctx.backend.display(stack)}:\n    Managed by {os.uname().nodename}")
    print(f"    {len(ctx.backend.resources(stack))} resources")


def cmd_stack_rm(ctx: Context) -> None:
    stack = ctx.stack(positional=True)
    ctx.backend.require(stack)
    if not ctx.flag("--yes", "-y"):
        raise Fail("non-interactive mode requires --yes flag")
    with ctx.backend.locked(stack, ctx.call):
        if ctx.backend.resources(stack) and not ctx.flag("--force", "-f"):
            raise Fail(f"'{stack}' still has resources; removal rejected. Possible actions:\n"
                       f"- Make sure that '{stack}' is the stack that you want to destroy\n"
                       "- Run `pulumi destroy` to delete the resources, then run `pulumi stack rm`\n"
                       "- Run `pulumi stack rm --force` to override this error")
        ctx.backend.checkpoint_path(stack).unlink()
        ctx.backend.meta_path(stack).unlink(missing_ok=True)
    if not ctx.flag("--preserve-config"):
        ctx.project.stack_file(stack).unlink(missing_ok=True)
    print(f"Stack '{stack}' has been removed!")
    set_current_stack(ctx.call, ctx.project, "")


def cmd_stack_tag(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    with fake_lock():
        meta = ctx.backend.meta(stack)
        tags = {"pulumi:project": ctx.project.name, **meta["tags"]}
        sub = ctx.command.split()[-1]
        if sub == "ls":
            print(json.dumps(tags, indent=4) if ctx.flag("--json", "-j") else "\n".join(f"{k}  {v}" for k, v in tags.items()))
        elif sub == "get":
            if ctx.positionals[0] not in tags:
                raise Fail(f"stack tag '{ctx.positionals[0]}' not found for stack '{ctx.backend.display(stack)}'")
            print(tags[ctx.positionals[0]])
        elif sub == "set":
            if len(ctx.positionals) != 2:
                raise Fail("accepts 2 arg(s), received %d" % len(ctx.positionals))
            meta["tags"][ctx.positionals[0]] = ctx.positionals[1]
            ctx.backend.save_meta(stack, meta)
        else:
            meta["tags"].pop(ctx.positionals[0], None)
            ctx.backend.save_meta(stack, meta)


def stack_outputs(backend: Backend, stack: str) -> dict[str, Any]:
    for resource in backend.resources(stack):
        if resource.get("type") == "pulumi:pulumi:Stack":
            return dict(resource.get("outputs") or {})
    return {}


def cmd_stack_output(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    show = ctx.flag("--show-secrets")
    outputs = {k: plain(v, show) for k, v in stack_outputs(ctx.backend, stack).items()}
    if ctx.positionals:
        if ctx.positionals[0] not in outputs:
            raise Fail(f"current stack does not have output property '{ctx.positionals[0]}'")
        print(json.dumps(outputs[ctx.positionals[0]]) if ctx.flag("--json", "-j") else outputs[ctx.positionals[0]])
    else:
        print(json.dumps(outputs, indent=2))


def cmd_stack_history(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    history = list(reversed(ctx.backend.meta(stack)["history"]))
    size = int(ctx.flags.get("--page-size") or 0)
    if size:
        page = int(ctx.flags.get("--page") or 1)
        history = history[(page - 1) * size: page * size]
    print(json.dumps(history, indent=4))


def cmd_stack_export(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    deployment = {
        "manifest": {"time": now_iso(), "magic": "fake", "version": "v" + ctx.behaviour.version},
        "secrets_providers": ctx.backend.secrets_providers(stack),
        "resources": ctx.backend.resources(stack),
    }
    pending = ctx.backend.pending_operations(stack)
    if pending:
        deployment["pending_operations"] = pending
    document = {"version": 3, "deployment": reveal(deployment) if ctx.flag("--show-secrets") else deployment}
    text = json.dumps(document, indent=4)
    if ctx.flags.get("--file"):
        Path(ctx.flags["--file"]).write_text(text)
    else:
        print(text)


def cmd_stack_import(ctx: Context) -> None:
    """Replaces the stack's state with an export file's deployment (refusing another stack's URNs, as the CLI does)."""
    stack = ctx.stack()
    ctx.backend.require(stack)
    if not ctx.flags.get("--file"):
        raise Fail("--file is required by the fake (the real CLI would read stdin)")
    deployment = (json.loads(Path(ctx.flags["--file"]).read_text()).get("deployment") or {})
    resources = list(deployment.get("resources") or [])
    foreign = [r["urn"] for r in resources if r.get("urn", "").split("::")[0] != f"urn:pulumi:{short_name(stack)}"]
    if foreign and not ctx.flag("--force", "-f"):
        other = foreign[0].split("::")[0][len("urn:pulumi:"):]
        raise Fail(f"resource '{foreign[0]}' is from a different stack ({other} != {short_name(stack)})")
    # pkg/cmd/pulumi/stack/io.go SaveSnapshot: "Explicitly clear-out any pending operations", each with a warning.
    for op in deployment.get("pending_operations") or []:
        print(f"warning: removing pending operation '{op.get('type')}' on '{(op.get('resource') or {}).get('urn')}' from snapshot",
              file=sys.stderr)
    with ctx.backend.locked(stack, ctx.call):
        ctx.backend.save_resources(stack, resources, deployment.get("secrets_providers"), pending=[])
    print("Import complete.")


def cmd_config(ctx: Context) -> None:
    stack = ctx.stack()
    ctx.backend.require(stack)
    config = ctx.project.stack_config(stack)
    print(json.dumps({k: {"value": v if isinstance(v, str) else json.dumps(v), "secret": False, "objectValue": v}
                      for k, v in config.items()}, indent=4))


def cmd_cancel(ctx: Context) -> None:
    """The DIY backend's `cancel`: deletes the stack's lock files (inferred from its lock message)."""
    stack = ctx.stack()
    ctx.backend.require(stack)
    if not ctx.flag("--yes", "-y"):
        raise Fail("non-interactive mode requires --yes flag")
    for lock in ctx.backend.lock_dir(stack).glob("*.json"):
        lock.unlink()
    print(f"The currently running update for '{ctx.backend.display(stack)}' has been canceled!")

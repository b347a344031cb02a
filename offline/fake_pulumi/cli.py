"""A fake `pulumi` CLI: answers the subcommands the Automation API uses and records every call.

Run through the `pulumi` wrapper that `FakePulumi` writes (`offline/fake_pulumi/__init__.py`); the
wrapper sets `FAKE_PULUMI_ROOT`. Behaviour, state layout and how to script failures are described
in `offline/fake_pulumi/README.md`. Standard library only, except `yaml` (stack config files) and,
for `--event-log tcp://...`, the SDK's generated gRPC stubs, both imported only when needed: every
call starts a process, and the suite makes hundreds.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable

# Imported by plain name: cli.py runs as a script, so its directory is first on sys.path.
from operations import apply_rule, cmd_seed, run_operation
from stack_commands import (
    cmd_cancel,
    cmd_config,
    cmd_plugin_ls,
    cmd_stack,
    cmd_stack_export,
    cmd_stack_history,
    cmd_stack_import,
    cmd_stack_init,
    cmd_stack_ls,
    cmd_stack_output,
    cmd_stack_rm,
    cmd_stack_select,
    cmd_stack_tag,
    cmd_version,
    cmd_whoami,
)
from store import Behaviour, Call, Context, Fail

# Flags that take a value; every other flag is boolean. `--flag=value` is accepted for both.
VALUE_FLAGS = {
    "--stack", "-s", "--secrets-provider", "--color", "--exec-kind", "--event-log", "--page-size", "--page",
    "--parallel", "-p", "--message", "-m", "--client", "--config-file", "--target", "--replace", "--exclude",
    "--policy-pack", "--policy-pack-config", "--tracing", "--verbose", "-v", "--plan", "--save-plan",
    "--import-file", "--file", "--copy-config-from", "--teams", "--run-program", "--cwd", "-C",
}
GLOBAL_FLAGS = {"--non-interactive", "--color", "--logtostderr", "--logflow", "--verbose", "-v", "--tracing", "--cwd", "-C"}
OPERATION_FLAGS = {
    "--stack", "-s", "--yes", "-y", "--skip-preview", "-f", "--exec-kind", "--event-log", "--client", "--parallel", "-p",
    "--message", "-m", "--target", "--replace", "--exclude", "--diff", "--expect-no-changes", "--refresh", "-r",
    "--policy-pack", "--policy-pack-config", "--suppress-outputs", "--suppress-progress", "--config-file",
    "--run-program", "--show-secrets", "--debug", "-d", "--continue-on-error", "--target-dependents",
    "--exclude-dependents", "--plan", "--attach-debugger",
}
# command → the flags it accepts besides GLOBAL_FLAGS (the real CLI's, for the parts the SDK uses).
COMMANDS: dict[str, set[str]] = {
    "version": set(),
    "whoami": {"--json"},
    "stack": {"--stack", "-s", "--show-ids", "--show-urns", "--show-secrets", "--show-name", "-i", "-u"},
    "stack ls": {"--json", "-j", "--all", "-a", "--project", "--organization", "--tag"},
    "stack init": {"--stack", "-s", "--secrets-provider", "--copy-config-from", "--no-select", "--teams"},
    "stack select": {"--stack", "-s", "--create", "-c", "--secrets-provider"},
    "stack rm": {"--stack", "-s", "--yes", "-y", "--force", "-f", "--preserve-config", "--remove-backups"},
    "stack tag set": {"--stack", "-s"},
    "stack tag get": {"--stack", "-s"},
    "stack tag rm": {"--stack", "-s"},
    "stack tag ls": {"--stack", "-s", "--json", "-j"},
    "stack output": {"--stack", "-s", "--json", "-j", "--show-secrets", "--shell"},
    "stack history": {"--stack", "-s", "--json", "-j", "--show-secrets", "--page-size", "--page", "--full-dates"},
    "stack export": {"--stack", "-s", "--file", "--show-secrets", "--version"},
    "stack import": {"--stack", "-s", "--file", "--force", "-f"},
    "config": {"--stack", "-s", "--json", "-j", "--show-secrets", "--config-file"},
    "cancel": {"--stack", "-s", "--yes", "-y"},
    "plugin ls": {"--json", "-j", "--project", "-p"},
    "__seed": set(),
    "up": OPERATION_FLAGS,
    "preview": (OPERATION_FLAGS - {"--yes", "-y", "--skip-preview", "-f", "--continue-on-error"}) | {"--json", "-j", "--save-plan", "--import-file"},
    "destroy": OPERATION_FLAGS | {"--remove", "--preview-only", "--exclude-protected"},
    # pkg/cmd/pulumi/operations/refresh.go; `--import-pending-creates` (a string array) is not answered.
    "refresh": (OPERATION_FLAGS - {"--refresh", "-r", "--replace", "--plan", "--policy-pack", "--policy-pack-config"})
    | {"--preview-only", "--clear-pending-creates", "--skip-pending-creates", "--skip-plugin-pre-install"},
}


def parse(argv: list[str]) -> tuple[str, dict[str, Any], list[str]]:
    """`[--non-interactive, stack, tag, ls, --json, --stack, x]` → ("stack tag ls", {"--json": True, "--stack": "x"}, [])."""
    flags: dict[str, Any] = {}
    words: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            words.extend(args)
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if not eq and name in VALUE_FLAGS:
                if not args:
                    raise Fail(f"flag needs an argument: {name}")
                value, eq = args.pop(0), "="
            flags[name] = value if eq else True
        else:
            words.append(arg)
    command = ""
    for size in (3, 2, 1):
        candidate = " ".join(words[:size])
        if candidate in COMMANDS:
            command = candidate
            break
    if not command:
        raise Fail(f"unknown command {' '.join(words)!r} for \"pulumi\"")
    positionals = words[len(command.split()):]
    unknown = sorted(set(flags) - COMMANDS[command] - GLOBAL_FLAGS)
    if unknown:
        raise Fail(f"unknown flag: {unknown[0]}")
    return command, flags, positionals


HANDLERS: dict[str, Callable[[Context], None]] = {
    "version": cmd_version,
    "whoami": cmd_whoami,
    "plugin ls": cmd_plugin_ls,
    "stack": cmd_stack,
    "stack ls": cmd_stack_ls,
    "stack init": cmd_stack_init,
    "stack select": cmd_stack_select,
    "stack rm": cmd_stack_rm,
    "stack tag set": cmd_stack_tag,
    "stack tag get": cmd_stack_tag,
    "stack tag rm": cmd_stack_tag,
    "stack tag ls": cmd_stack_tag,
    "stack output": cmd_stack_output,
    "stack history": cmd_stack_history,
    "stack export": cmd_stack_export,
    "stack import": cmd_stack_import,
    "config": cmd_config,
    "cancel": cmd_cancel,
    "__seed": cmd_seed,
    "up": lambda ctx: run_operation(ctx, "up"),
    "destroy": lambda ctx: run_operation(ctx, "destroy"),
    "preview": lambda ctx: run_operation(ctx, "preview"),
    "refresh": lambda ctx: run_operation(ctx, "refresh"),
}


def main(argv: list[str]) -> int:
    call = Call(argv)
    code = 0
    try:
        behaviour = Behaviour()
        command, flags, positionals = parse(argv)
        call.record["command"] = command
        call.save()
        ctx = Context(call, behaviour, command, flags, positionals)
        named = None
        if command not in ("version", "whoami", "stack ls", "plugin ls", "__seed"):
            with contextlib.suppress(Fail):
                named = ctx.stack_argument(positional=command in ("stack init", "stack select", "stack rm"))
        apply_rule(ctx, named)
        HANDLERS[command](ctx)
    except Fail as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 255
    finally:
        sys.stdout.flush()
        call.finish(code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

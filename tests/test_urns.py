"""The URN guard: the programs' URNs match tests/urns/, and the guard resolves aliases as the engine does.

The guard's own tests run tiny programs through the same mocks harness, so the aliases arrive as
the SDK really sends them (alias specs with the parent as a URN), and compare them with a snapshot
taken from the program's previous version.
"""

from __future__ import annotations

import shutil

import pulumi
import pytest

from offline import urns
from offline.harness import run_program

STACK = "test"
PREFIX = f"urn:pulumi:{STACK}::datalake::"


# -- the contract -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(urns.CONFIGURATIONS_BY_NAME))
def test_urns_match_the_snapshot_or_are_aliased(name):
    configuration = urns.CONFIGURATIONS_BY_NAME[name]
    assert urns.snapshot_path(configuration).exists(), f"no snapshot for {name}: run `{urns.UPDATE_COMMAND}`"
    change = urns.compare(name, urns.read_snapshot(configuration), urns.current_registrations(name))
    assert change.ok, "\n" + urns.guidance([change])


def test_snapshot_files_are_exactly_what_update_writes():
    """Catches hand edits and stale files; the committed text is also the determinism check in CI."""
    assert urns.stale_snapshots() == [], f"snapshots of no configuration: run `{urns.UPDATE_COMMAND}`"
    for configuration in urns.CONFIGURATIONS:
        current = urns.current_registrations(configuration.name)
        found = urns.compare(configuration.name, urns.read_snapshot(configuration), current)
        if found.ok and not found.aliased:  # other cases are the test above's (aliased renames pass there)
            written = urns.snapshot_text(configuration, current)
            assert urns.snapshot_path(configuration).read_text() == written, (
                f"{configuration.name}: the file differs from what `{urns.UPDATE_COMMAND}` writes (hand edit?)"
            )


def test_snapshots_hold_the_retained_data_resources():
    """The flag the guard is strict about comes from the engine request, per URN."""
    silo = urns.read_snapshot(urns.CONFIGURATIONS_BY_NAME["silo"])
    buckets = {urn: retained for urn, retained in silo.items() if urn.split("::")[2].endswith("aws:s3/bucket:Bucket")}
    assert buckets and all(buckets.values()), buckets
    assert any("$datalake:storage:SiloStorage$datalake:storage:SecureBucket$aws:s3/bucket:Bucket::" in u for u in buckets)
    assert not silo["urn:pulumi:silo-222222222222::datalake::pulumi:providers:aws::silo-222222222222"]


# -- tiny programs, version by version ----------------------------------------------------------


class Thing(pulumi.CustomResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("test:index:Thing", name, {}, opts)


class Component(pulumi.ComponentResource):
    def __init__(self, type_: str, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_, name, None, opts)
        self.register_outputs({})


def retained(parent=None, **options) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **{"retain_on_delete": True, **options})


def evaluate(program) -> tuple[urns.Registration, ...]:
    return tuple(urns.registrations(run_program({}, stack=STACK, program=program)))


def snapshot(program) -> dict[str, bool]:
    return {r.urn: r.retained for r in evaluate(program)}


def change(before, after) -> urns.UrnChange:
    return urns.compare("tiny", snapshot(before), evaluate(after))


def app_with(child: str, *, deletable: str = "", **child_options):
    """A program of one component `app` with the retained `child` and, when named, a `deletable` one."""

    def program():
        app = Component("test:app:App", "app")
        Thing(child, retained(app, **child_options))
        if deletable:
            Thing(deletable, pulumi.ResourceOptions(parent=app))

    return program


APP_DATA = f"{PREFIX}test:app:App$test:index:Thing::app-data"


def test_urns_carry_the_whole_parent_type_chain_and_no_root_stack():
    def program():
        outer = Component("test:outer:Outer", "outer")
        inner = Component("test:inner:Inner", "inner", pulumi.ResourceOptions(parent=outer))
        Thing("leaf", pulumi.ResourceOptions(parent=inner))

    assert sorted(snapshot(program)) == [
        f"{PREFIX}test:outer:Outer$test:inner:Inner$test:index:Thing::leaf",
        f"{PREFIX}test:outer:Outer$test:inner:Inner::inner",
        f"{PREFIX}test:outer:Outer::outer",
    ]


def test_a_rename_without_alias_fails_naming_both_urns_and_the_fix():
    found = change(app_with("app-data"), app_with("app-store"))
    assert not found.ok
    assert found.removed == [(APP_DATA, True)]
    assert found.added == [(f"{PREFIX}test:app:App$test:index:Thing::app-store", True)]
    message = urns.guidance([found])
    assert APP_DATA in message and "test:index:Thing::app-store" in message
    assert "RETAINED" in message
    assert "aliases=[pulumi.Alias(name=" in message and "./dev urns --update" in message
    assert "--allow-removing-retained" in message


def test_a_rename_with_an_alias_to_the_old_name_passes():
    found = change(app_with("app-data"), app_with("app-store", aliases=[pulumi.Alias(name="app-data")]))
    assert found.ok, urns.guidance([found])
    assert found.aliased == [(APP_DATA, f"{PREFIX}test:app:App$test:index:Thing::app-store")]


def test_an_alias_to_a_name_that_never_existed_does_not_cover_the_rename():
    found = change(app_with("app-data"), app_with("app-store", aliases=[pulumi.Alias(name="app-dat")]))
    assert found.removed == [(APP_DATA, True)] and not found.ok


def two_parents(child_parent: str, **child_options):
    def program():
        parents = {
            "app": Component("test:app:App", "app"),
            "shop": Component("test:shop:Shop", "shop"),
        }
        Thing("app-data", retained(parents[child_parent], **{
            key: [pulumi.Alias(parent=parents[p]) for p in value] if key == "aliases" else value
            for key, value in child_options.items()
        }))

    return program


def test_reparenting_fails_without_an_alias_and_passes_with_one_to_the_old_parent():
    before = two_parents("app")
    moved = f"{PREFIX}test:shop:Shop$test:index:Thing::app-data"
    unaliased = change(before, two_parents("shop"))
    assert unaliased.removed == [(APP_DATA, True)] and unaliased.added == [(moved, True)]
    aliased = change(before, two_parents("shop", aliases=["app"]))
    assert aliased.ok, urns.guidance([aliased])
    assert aliased.aliased == [(APP_DATA, moved)]


def test_moving_a_top_level_resource_into_a_component_passes_with_an_alias_to_the_root_stack():
    def before():
        Component("test:app:App", "app")
        Thing("data", retained())

    def after():
        app = Component("test:app:App", "app")
        Thing("data", retained(app, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]))

    found = change(before, after)
    assert found.ok, urns.guidance([found])
    assert found.aliased == [(f"{PREFIX}test:index:Thing::data", f"{PREFIX}test:app:App$test:index:Thing::data")]


def test_children_inherit_the_alias_of_a_renamed_and_retyped_parent_as_the_engine_does():
    """Only the component carries an alias; its children (named after it) follow, as in the engine."""

    def after():
        shop = Component("test:shop:Shop", "shop", pulumi.ResourceOptions(
            aliases=[pulumi.Alias(name="app", type_="test:app:App")]
        ))
        Thing("shop-data", retained(shop))  # prefix follows the parent's old name
        Thing("settings", pulumi.ResourceOptions(parent=shop))  # name kept, parent chain follows

    found = change(app_with("app-data", deletable="settings"), after)
    assert found.ok, urns.guidance([found])
    assert [old for old, _ in found.aliased] == [
        f"{PREFIX}test:app:App$test:index:Thing::app-data",
        f"{PREFIX}test:app:App$test:index:Thing::settings",
        f"{PREFIX}test:app:App::app",
    ]


def test_a_child_renamed_under_a_renamed_parent_combines_both_aliases():
    def after():
        shop = Component("test:app:App", "shop", pulumi.ResourceOptions(aliases=[pulumi.Alias(name="app")]))
        Thing("shop-store", retained(shop, aliases=[pulumi.Alias(name="shop-data")]))

    found = change(app_with("app-data"), after)
    assert found.ok, urns.guidance([found])


def test_a_removed_retained_resource_without_alias_fails_and_so_does_a_deletable_one():
    def after():
        Component("test:app:App", "app")

    found = change(app_with("app-data", deletable="app-cache"), after)
    assert not found.ok
    assert found.removed_retained == [APP_DATA]
    assert dict(found.removed) == {APP_DATA: True, f"{PREFIX}test:app:App$test:index:Thing::app-cache": False}
    assert "RETAINED" in found.describe() and "`pulumi up` deletes it" in found.describe()


def test_an_added_resource_is_reported_and_needs_an_update():
    found = change(app_with("app-data"), app_with("app-data", deletable="app-new"))
    assert found.added == [(f"{PREFIX}test:app:App$test:index:Thing::app-new", False)]
    assert found.removed == [] and not found.ok
    assert "./dev urns --update" in urns.guidance([found])


def test_dropping_retain_on_delete_is_a_change():
    found = change(app_with("app-data"), app_with("app-data", retain_on_delete=False))
    assert found.retention == [(APP_DATA, False)] and not found.ok
    assert "NO LONGER retain_on_delete" in found.describe()


def test_an_alias_to_a_urn_the_program_still_registers_is_a_conflict():
    def after():
        app = Component("test:app:App", "app")
        Thing("app-data", retained(app))
        Thing("app-copy", retained(app, aliases=[pulumi.Alias(name="app-data")]))

    found = change(app_with("app-data"), after)
    assert not found.ok
    assert found.conflicts == [f"{PREFIX}test:app:App$test:index:Thing::app-copy has an alias to {APP_DATA}, "
                               "which the program still registers"]


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def snapshot_copy(tmp_path, monkeypatch):
    """tests/urns copied to a scratch directory the command then reads and writes."""
    directory = tmp_path / "urns"
    shutil.copytree(urns.SNAPSHOT_DIR, directory)
    monkeypatch.setattr(urns, "SNAPSHOT_DIR", directory)
    return directory


def test_the_command_refuses_to_drop_a_retained_urn_unless_told(snapshot_copy, capsys):
    path = snapshot_copy / "silo.txt"
    gone = f"{urns.create_urn('silo-sales-old', 'aws:s3/bucket:Bucket', None, 'datalake', 'silo-222222222222')}"
    path.write_text(path.read_text() + f"retain {gone}\n")
    edited = path.read_text()

    assert urns.main(["--config", "silo"]) == 1
    assert f"removed {gone}" in capsys.readouterr().out
    assert urns.main(["--config", "silo", "--update"]) == 1
    assert "refusing to update" in capsys.readouterr().out
    assert path.read_text() == edited

    assert urns.main(["--config", "silo", "--update", "--allow-removing-retained"]) == 0
    assert gone not in path.read_text()
    assert urns.main(["--config", "silo"]) == 0


def test_the_command_updates_added_urns_and_deletes_stale_snapshots(snapshot_copy, capsys):
    path = snapshot_copy / "master.txt"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if "master-runner-logs" not in line))
    (snapshot_copy / "retired-config.txt").write_text("# nothing\n")
    assert urns.main([]) == 1
    out = capsys.readouterr().out
    assert "+ added   urn:pulumi:master::datalake::datalake:master:MasterAccount$datalake:runner:RunnerTriggers" in out
    assert "stale snapshot" in out and "retired-config.txt" in out
    assert urns.main(["--update"]) == 0
    assert "master-runner-logs" in path.read_text() and not (snapshot_copy / "retired-config.txt").exists()
    assert urns.main([]) == 0


def test_a_malformed_snapshot_line_names_the_file_the_line_and_the_fix(snapshot_copy, capsys):
    path = snapshot_copy / "silo.txt"
    path.write_text(path.read_text() + "retained urn:pulumi:typo\n")
    assert urns.main(["--config", "silo"]) == 2
    error = capsys.readouterr().err
    assert f"silo.txt:{len(path.read_text().splitlines())}: expected 'retain <urn>'" in error
    assert "./dev urns --update" in error

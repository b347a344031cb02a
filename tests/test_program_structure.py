"""Contracts every program obeys: component shape, parenting, outputs, and IAM that lints clean."""

from __future__ import annotations

import json

import pytest

from offline.harness import Recording


def _unscopable_actions() -> frozenset[str]:
    """Actions whose IAM definition lists no resource type (e.g. redshift-data:DescribeStatement)."""
    import os

    import parliament

    with open(os.path.join(os.path.dirname(parliament.__file__), "iam_definition.json")) as handle:
        definition = json.load(handle)
    return frozenset(
        f"{service['prefix']}:{privilege['privilege']}"
        for service in definition
        for privilege in service["privileges"]
        if all(not resource["resource_type"] for resource in privilege["resource_types"])
    )


UNSCOPABLE_ACTIONS = _unscopable_actions()


@pytest.fixture(scope="module", params=["master", "silo"])
def program(request, evaluations) -> Recording:
    return evaluations.master() if request.param == "master" else evaluations.silo()


def components(recording: Recording):
    return [r for r in recording.resources if not r.custom and r.type.startswith("datalake:")]


def test_one_top_level_component_and_everything_else_beneath_it(program):
    roots = [r for r in program.resources if r.type.startswith("datalake:") and not program.ancestors(r)]
    assert [r.type for r in roots] in (["datalake:master:MasterAccount"], ["datalake:silo:SiloAccount"])
    for resource in program.resources:
        if resource.type.startswith("aws:") or resource.type == "pulumi:pulumi:StackReference":
            assert roots[0] in program.ancestors(resource), f"{resource.urn} is not under {roots[0].urn}"


def test_children_are_named_after_their_parent(program):
    for resource in program.resources:
        parent = next((r for r in program.resources if r.urn == resource.parent), None)
        if parent is not None:
            assert resource.name.startswith(f"{parent.name}-"), f"{resource.urn} under {parent.name}"


def test_every_component_registers_its_outputs_exactly_once(program):
    for component in components(program):
        assert program.registered_outputs.count(component.urn) == 1, component.urn


def test_component_type_tokens_follow_the_project_scheme(program):
    for component in components(program):
        package, module, name = component.type.split(":")
        assert package == "datalake" and module.islower() and name[0].isupper(), component.type


def test_every_policy_statement_has_a_sid_and_a_full_arn_resource(program):
    for resource, key, document in program.policies():
        for statement in document["Statement"]:
            assert statement.get("Sid"), f"{resource.urn}.{key}: statement without Sid"
            for arn in statement.get("Resource", []):
                assert arn == "*" or arn.startswith("arn:aws:"), f"{resource.urn}: {arn}"


def test_no_statement_allows_every_action_on_every_resource(program):
    for resource, key, document in program.policies():
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = statement.get("Resource", [])
            assert not ("*" in actions and "*" in resources), f"{resource.urn}: {statement['Sid']}"
            if "*" in resources and not statement.get("Principal"):
                # Only actions IAM cannot scope to a resource (no resource type) may use "*".
                if not all(action in UNSCOPABLE_ACTIONS for action in actions):
                    pytest.fail(f"{resource.urn}: identity policy statement {statement['Sid']} on Resource *")


# IAM linting (parliament, every document kind, several configurations): tests/test_iam_lint.py

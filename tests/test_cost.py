"""The idle cost estimate: quantities per type, region-aware prices, totals, drivers, unpriced types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cost.__main__ import main
from cost.estimate import PriceTableError, estimate, load_price_table, render
from offline.harness import RecordedResource, Recording

TABLE = load_price_table()


def res(type_: str, name: str, custom: bool = True, **inputs) -> RecordedResource:
    urn = f"urn:pulumi:test::datalake::{type_}::{name}"
    return RecordedResource(type_, name, urn, inputs, "", "", custom, None, [], dict(inputs))


def price(type_: str, region: str) -> float:
    (row,) = [r for r in TABLE.rows if r.key == type_]
    return row.price(region)[0]


def known_program() -> Recording:
    return Recording(
        [
            res("pulumi:providers:aws", "default"),
            res("datalake:silo:SiloAccount", "silo", custom=False),
            res("aws:kms/key:Key", "k1"),
            res("aws:kms/key:Key", "k2"),
            res("aws:kms/alias:Alias", "a1"),
            res("aws:s3/bucket:Bucket", "b1"),
            res("aws:transfer/server:Server", "sftp", protocols=["SFTP", "FTPS"]),
            res("aws:ec2/natGateway:NatGateway", "nat"),
            res("aws:ec2/vpcEndpoint:VpcEndpoint", "glue", vpcEndpointType="Interface", subnetIds=["s1", "s2"]),
            res("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", vpcEndpointType="Gateway"),
            res("aws:secretsmanager/secret:Secret", "secret"),
            res("aws:codepipeline/pipeline:Pipeline", "v2", pipelineType="V2"),
            res("aws:madeup/thing:Thing", "new"),
        ],
        {},
    )


def test_known_program_is_priced_per_type_with_quantities_from_inputs():
    result = estimate(known_program(), "test", "eu-west-1")
    lines = {line.row.key: line for line in result.lines}
    hours = TABLE.hours_per_month
    assert lines["aws:kms/key:Key"].units == 2
    assert lines["aws:transfer/server:Server"].units == 2 * hours  # two protocols
    assert lines["aws:ec2/natGateway:NatGateway"].units == hours
    assert lines["aws:ec2/vpcEndpoint:VpcEndpoint"].units == 2 * hours  # interface in 2 AZs; gateway free
    assert lines["aws:codepipeline/pipeline:Pipeline"].units == 0  # V2 has no monthly fee
    expected = (
        2 * price("aws:kms/key:Key", "eu-west-1")
        + 2 * hours * price("aws:transfer/server:Server", "eu-west-1")
        + hours * price("aws:ec2/natGateway:NatGateway", "eu-west-1")
        + 2 * hours * price("aws:ec2/vpcEndpoint:VpcEndpoint", "eu-west-1")
        + price("aws:secretsmanager/secret:Secret", "eu-west-1")
    )
    assert result.total == pytest.approx(expected)
    assert result.unpriced == {"aws:madeup/thing:Thing": 1}
    assert result.free == {"aws:kms/alias:Alias": 1, "aws:s3/bucket:Bucket": 1}


def test_exact_arithmetic_on_a_small_table(tmp_path: Path):
    table_file = tmp_path / "prices.yaml"
    table_file.write_text(
        "source: test\nas_of: '2000-01'\nhours_per_month: 100\n"
        "prices:\n"
        "  aws:ec2/natGateway:NatGateway: {usd: {default: 0.5, eu-west-1: 1.0}, unit: h, quantity: hours, turn_off: no NAT}\n"
        "  aws:kms/key:Key: {usd: {default: 2.0}, unit: key, quantity: count, turn_off: fewer keys}\n"
        "free_when_idle: []\n"
    )
    table = load_price_table(table_file)
    program = Recording([res("aws:ec2/natGateway:NatGateway", "n"), res("aws:kms/key:Key", "k")], {})
    assert estimate(program, "t", "eu-west-1", table).total == 102.0
    assert estimate(program, "t", "us-east-1", table).total == 52.0
    # A region without its own price falls back to default, and the report says so.
    other = estimate(program, "t", "ap-south-1", table)
    assert other.total == 52.0
    assert "no ap-south-1 price in the table" in render(other)


def test_top_three_drivers_are_the_most_expensive_with_how_to_turn_them_off():
    result = estimate(known_program(), "test", "us-east-1")
    drivers = [line.row.key for line in result.drivers()]
    assert drivers == ["aws:transfer/server:Server", "aws:ec2/natGateway:NatGateway", "aws:ec2/vpcEndpoint:VpcEndpoint"]
    report = render(result)
    assert "turn off: turn the dropzone's SFTP endpoint off" in report
    assert "NOT IN THE PRICE TABLE" in report and "aws:madeup/thing:Thing x1" in report


def test_awsx_vpc_nat_gateways_follow_the_strategy():
    hours = TABLE.hours_per_month

    def nat_units(**inputs):
        result = estimate(Recording([res("awsx:ec2:Vpc", "vpc", custom=False, **inputs)], {}), "t", "eu-west-1")
        return {line.row.key: line.units for line in result.lines}

    assert nat_units()["awsx:ec2:Vpc"] == 3 * hours
    assert nat_units()["awsx:ec2:Vpc#eip"] == 3 * hours
    assert nat_units(natGateways={"strategy": "Single"})["awsx:ec2:Vpc"] == hours
    assert nat_units(natGateways={"strategy": "None"})["awsx:ec2:Vpc"] == 0
    assert nat_units(numberOfAvailabilityZones=2)["awsx:ec2:Vpc"] == 2 * hours
    assert nat_units(subnetSpecs=[{"type": "Isolated"}])["awsx:ec2:Vpc"] == 0


def test_malformed_price_rows_are_named(tmp_path: Path):
    bad = tmp_path / "prices.yaml"
    bad.write_text(
        "source: s\nas_of: x\nhours_per_month: 730\nprices:\n"
        "  aws:kms/key:Key: {usd: {default: 1}, unit: key, quantity: per_moon, turn_off: x}\n"
    )
    with pytest.raises(PriceTableError, match=r"prices.aws:kms/key:Key.quantity 'per_moon' is unknown"):
        load_price_table(bad)


def test_every_type_the_shipped_programs_register_is_priced_or_known_free(master, silo):
    for recording, stack in ((master, "master"), (silo, "silo")):
        assert estimate(recording, stack, "eu-west-1").unpriced == {}, stack


def test_command_prints_both_stacks_and_the_silo_goal(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "Idle monthly cost of stack 'master' in eu-west-1" in out
    assert "Idle monthly cost of stack 'silo-222222222222' in eu-west-1" in out
    assert "Goal for an idle silo: at most 3.00 USD/month" in out


def test_command_json_gives_the_default_silo_s_idle_cost(capsys):
    assert main(["--stack", "silo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (stack,) = data["stacks"]
    # By hand from cost/prices.yaml: the silo's one KMS key at 1.00 USD/key-month; its VPC has no
    # NAT gateway and no public IPv4 (0 units), everything else bills per use.
    assert stack["totalUsdPerMonth"] == 1.0
    charged = [(line["type"], line["count"], line["usdPerMonth"]) for line in stack["lines"] if line["usdPerMonth"]]
    assert charged == [("aws:kms/key:Key", 1, 1.0)]
    assert stack["region"] == "eu-west-1" and stack["stack"] == "silo-222222222222"


def test_command_rejects_a_missing_stack_file(capsys):
    assert main(["--config", "Pulumi.nope.yaml"]) == 2
    assert "no such stack file" in capsys.readouterr().err


def test_the_default_silo_meets_the_idle_goal_and_sftp_is_what_would_break_it(silo):
    """Issue 6's goal: an idle default silo costs at most $3/month. SFTP is opt-in because it alone is ~$219."""
    assert estimate(silo, "silo", "eu-west-1").total <= 3.00
    from offline.stacks import run_silo, silo_config

    with_sftp = run_silo(silo_config(**{"datalake:sftp": {"enabled": True}}))
    assert estimate(with_sftp, "silo", "eu-west-1").total - estimate(silo, "silo", "eu-west-1").total == pytest.approx(
        price("aws:transfer/server:Server", "eu-west-1") * 730
    )

"""Security-group rules on one TCP port each (the port is given once: `from_port` is `to_port`)."""

from __future__ import annotations

from typing import Any

import pulumi_aws as aws


def tcp_ingress(description: str, port: int, **peers: Any) -> aws.ec2.SecurityGroupIngressArgs:
    """Ingress on TCP `port` from `peers` (`cidr_blocks`, `ipv6_cidr_blocks`, `prefix_list_ids`, ...)."""
    return aws.ec2.SecurityGroupIngressArgs(description=description, protocol="tcp", from_port=port, to_port=port, **peers)


def tcp_egress(description: str, port: int, **peers: Any) -> aws.ec2.SecurityGroupEgressArgs:
    """Egress on TCP `port` to `peers` (`cidr_blocks`, `prefix_list_ids`, ...)."""
    return aws.ec2.SecurityGroupEgressArgs(description=description, protocol="tcp", from_port=port, to_port=port, **peers)

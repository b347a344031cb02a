"""`AlertTopic`: an encrypted SNS topic that named AWS services of this account may publish to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_aws as aws

from .iam import AccountContext, Statement, policy_json, statement


def service_publish_key_statement(account: AccountContext, services: Sequence[str]) -> Statement:
    """Key policy grant: the services may use the key to publish to encrypted topics of this account.

    SNS encrypts with the topic's key on the publisher's behalf; a publishing service without this
    grant has its messages dropped silently.
    """
    return statement(
        "AllowServicesPublishEncryptedMessages",
        ["kms:GenerateDataKey*", "kms:Decrypt"],
        "*",
        principal={"Service": list(services)},
        conditions={"StringEquals": {"aws:SourceAccount": account.account_id}},
    )


@dataclass(frozen=True)
class AlertTopicArgs:
    """Arguments of `AlertTopic`."""

    account: AccountContext
    """Account of the topic; only its own resources may publish."""
    topic_name: str
    """Physical topic name."""
    kms_key_arn: pulumi.Input[str]
    """Key that encrypts messages at rest; its policy needs `service_publish_key_statement`."""
    publisher_services: Sequence[str] = ("events.amazonaws.com",)
    """Service principals allowed to publish (default EventBridge)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of the topic (default none)."""


class AlertTopic(pulumi.ComponentResource):
    """An SNS topic for failure notifications, encrypted with a customer key, TLS-only."""

    topic: aws.sns.Topic
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: AlertTopicArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("datalake:notifications:AlertTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            f"{name}-topic",
            name=args.topic_name,
            kms_master_key_id=args.kms_key_arn,
            tags=args.tags,
            opts=child,
        )
        arn = self.topic.arn
        aws.sns.TopicPolicy(
            f"{name}-policy",
            arn=arn,
            policy=policy_json(
                [
                    statement(
                        "AllowServicesOfThisAccountPublish",
                        "sns:Publish",
                        arn,
                        principal={"Service": list(args.publisher_services)},
                        conditions={"StringEquals": {"aws:SourceAccount": args.account.account_id}},
                    ),
                    statement(
                        "DenyInsecureTransport",
                        "sns:Publish",
                        arn,
                        effect="Deny",
                        principal={"AWS": "*"},
                        conditions={"Bool": {"aws:SecureTransport": "false"}},
                    ),
                ]
            ),
            opts=child,
        )
        self.arn = arn
        self.register_outputs({"arn": arn})

"""The stack configuration: read once, validated eagerly, typed everywhere after.

`parse_stack_config` picks the model of the stack's kind (`datalake:kind`: `MasterConfig` or
`SiloConfig`, each made of its area's sections) and raises one `ConfigError` that lists every
problem at once, each naming the key, what was wrong and an example of a right value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

from pydantic import ValidationError

from .master.config import MasterConfig
from .shared.config import NAMESPACE, CommonConfig, decode_structured, describe_error
from .shared.errors import ConfigError
from .shared.pulumi_names import DIY, BackendKind
from .silo.config import SiloConfig


StackConfig = Union[MasterConfig, SiloConfig]
_MODELS: dict[str, type[CommonConfig]] = {"master": MasterConfig, "silo": SiloConfig}


def parse_stack_config(
    stack: str,
    raw: Mapping[str, Any],
    *,
    organization: Optional[str] = None,
    runner_backend: BackendKind = DIY,
) -> StackConfig:
    """Validates a stack's raw config (`{"datalake:kind": "silo", "aws:region": ..., ...}`).

    Keys of other namespaces except `aws:region` are ignored (providers read their own).
    `organization` is the running stack's (`pulumi.get_organization()`: `organization` on DIY
    backends, the owner on Pulumi Cloud; None is read as DIY): `masterStack` must be a name its
    backend accepts. `runner_backend` is the kind of backend the runner's stacks live in, which
    `runner.pulumiOrg` must suit (default DIY: the runner's build uses the S3 state backend).
    Raises `ConfigError` listing every problem at once.
    """
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE:
            values[key] = decode_structured(value)
        elif full_key == "aws:region":
            values["region"] = value

    kind = values.pop("kind", None)
    if kind not in _MODELS:
        got = "is not set" if kind is None else f"got {kind!r}"
        raise ConfigError(
            stack,
            [f"{NAMESPACE}:kind: {got}; it must be 'master' or 'silo', for example: pulumi config set {NAMESPACE}:kind silo"],
        )
    model = _MODELS[kind]
    try:
        return model.model_validate(values, context={"organization": organization, "runner_backend": runner_backend})
    except ValidationError as exc:
        raise ConfigError(stack, [describe_error(model, error) for error in exc.errors()]) from None


def load_stack_config() -> StackConfig:
    """Reads and validates the running Pulumi stack's configuration (call once, from the program)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return parse_stack_config(pulumi.get_stack(), raw, organization=pulumi.get_organization())

"""Read template.yaml into the resources the local runtime creates and the functions it runs.

Only the intrinsic functions the template uses are resolved (Ref, GetAtt, Sub, and the
pseudo parameters); the runtime refuses anything else with a message naming it, rather
than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"  # the account moto, LocalStack and MinIO all assume


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@dataclass
class Queue:
    logical_id: str
    name: str
    attributes: dict[str, Any]
    dead_letter: str | None = None
    max_receive_count: int | None = None


@dataclass
class Bucket:
    logical_id: str
    name: str
    queue_notifications: list[dict[str, Any]] = field(default_factory=list)
    versioned: bool = False


@dataclass
class Table:
    logical_id: str
    name: str
    properties: dict[str, Any]


@dataclass
class SqsSource:
    queue_logical_id: str
    batch_size: int
    report_batch_item_failures: bool


@dataclass
class HttpRoute:
    method: str
    path: str

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    sqs_sources: list[SqsSource] = field(default_factory=list)
    routes: list[HttpRoute] = field(default_factory=list)


@dataclass
class LocalStackModel:
    """Everything in template.yaml, resolved to local names."""

    stack_name: str
    region: str
    buckets: dict[str, Bucket]
    queues: dict[str, Queue]
    tables: dict[str, Table]
    functions: dict[str, Function]

    def queue_url(self, endpoint: str, logical_id: str) -> str:
        return f"{endpoint.rstrip('/')}/{ACCOUNT_ID}/{self.queues[logical_id].name}"


class _Resolver:
    def __init__(
        self, document: dict[str, Any], stack_name: str, region: str, parameters: dict[str, str]
    ):
        self.resources: dict[str, Any] = document.get("Resources", {})
        self.stack_name = stack_name
        self.region = region
        self.parameters = {
            name: parameters.get(name, str(spec.get("Default", "")))
            for name, spec in document.get("Parameters", {}).items()
        }
        self.names: dict[str, str] = {}
        self.endpoint = "http://127.0.0.1:4566"

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def physical_name(self, logical_id: str) -> str:
        if logical_id not in self.names:
            properties = self.resources[logical_id].get("Properties", {})
            explicit = (
                properties.get("BucketName")
                or properties.get("QueueName")
                or properties.get("TableName")
            )
            if explicit:
                self.names[logical_id] = str(self.resolve(explicit))
            else:
                kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()
                self.names[logical_id] = f"{self.stack_name}-{kebab}"
        return self.names[logical_id]

    def ref(self, name: str) -> str:
        if (pseudo := self.pseudo(name)) is not None:
            return pseudo
        if name in self.parameters:
            return self.parameters[name]
        resource_type = self.resources.get(name, {}).get("Type", "")
        if resource_type == "AWS::SQS::Queue":
            return f"{self.endpoint}/{ACCOUNT_ID}/{self.physical_name(name)}"
        if name in self.resources:
            return self.physical_name(name)
        raise ValueError(f"template refers to {name!r}, which it does not declare")

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource_type = self.resources.get(logical_id, {}).get("Type", "")
        name = self.physical_name(logical_id)
        if resource_type == "AWS::SQS::Queue":
            return {"Arn": f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{name}", "QueueName": name}[
                attribute
            ]
        if resource_type == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{name}"
        if resource_type == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"
        raise ValueError(f"the local runtime cannot resolve GetAtt {logical_id}.{attribute}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                return self.get_att(*argument)
            if key == "Fn::Sub":
                return self.sub(argument)
            if key.startswith("Fn::"):
                raise ValueError(f"the local runtime does not resolve {key}")
        return {key: self.resolve(item) for key, item in value.items()}

    def sub(self, template: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if "." in name and self.pseudo(name) is None:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, template)


def load_template(
    path: Path,
    *,
    stack_name: str = "stek",
    region: str = "us-east-1",
    parameters: dict[str, str] | None = None,
    queue_endpoint: str = "http://127.0.0.1:4566",
) -> LocalStackModel:
    """Resolve `path` into a LocalStackModel."""
    document = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    resolver = _Resolver(document, stack_name, region, parameters or {})
    resolver.endpoint = queue_endpoint
    root = path.parent
    model = LocalStackModel(stack_name, region, {}, {}, {}, {})
    global_env = document.get("Globals", {}).get("Function", {})
    for logical_id, resource in resolver.resources.items():
        kind = resource.get("Type")
        properties = resource.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            model.buckets[logical_id] = _bucket(resolver, logical_id, properties)
        elif kind == "AWS::SQS::Queue":
            model.queues[logical_id] = _queue(resolver, logical_id, properties)
        elif kind == "AWS::DynamoDB::Table":
            model.tables[logical_id] = Table(
                logical_id, resolver.physical_name(logical_id), properties
            )
        elif kind == "AWS::Serverless::Function":
            model.functions[logical_id] = _function(
                resolver, logical_id, properties, global_env, root
            )
    return model


def _bucket(resolver: _Resolver, logical_id: str, properties: dict[str, Any]) -> Bucket:
    notifications = properties.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    versioning = properties.get("VersioningConfiguration", {}).get("Status") == "Enabled"
    return Bucket(
        logical_id,
        resolver.physical_name(logical_id),
        [resolver.resolve(item) for item in notifications],
        versioning,
    )


def _queue(resolver: _Resolver, logical_id: str, properties: dict[str, Any]) -> Queue:
    attributes: dict[str, Any] = {}
    for name in (
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
    ):
        if name in properties:
            attributes[name] = str(properties[name])
    queue = Queue(logical_id, resolver.physical_name(logical_id), attributes)
    if redrive := properties.get("RedrivePolicy"):
        target = redrive["deadLetterTargetArn"]
        queue.dead_letter = target["Fn::GetAtt"][0]
        queue.max_receive_count = int(redrive["maxReceiveCount"])
    return queue


def _function(
    resolver: _Resolver,
    logical_id: str,
    properties: dict[str, Any],
    global_env: dict[str, Any],
    root: Path,
) -> Function:
    environment = dict(global_env.get("Environment", {}).get("Variables", {}))
    environment.update(properties.get("Environment", {}).get("Variables", {}))
    function = Function(
        logical_id=logical_id,
        code_uri=root / properties["CodeUri"],
        handler=properties["Handler"],
        timeout=int(properties.get("Timeout", global_env.get("Timeout", 3))),
        memory=int(properties.get("MemorySize", global_env.get("MemorySize", 128))),
        environment={name: str(resolver.resolve(value)) for name, value in environment.items()},
    )
    for event in properties.get("Events", {}).values():
        event_properties = event.get("Properties", {})
        if event["Type"] == "SQS":
            function.sqs_sources.append(
                SqsSource(
                    queue_logical_id=event_properties["Queue"]["Fn::GetAtt"][0],
                    batch_size=int(event_properties.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in event_properties.get("FunctionResponseTypes", []),
                )
            )
        elif event["Type"] == "HttpApi":
            function.routes.append(
                HttpRoute(event_properties["Method"].upper(), event_properties["Path"])
            )
    return function

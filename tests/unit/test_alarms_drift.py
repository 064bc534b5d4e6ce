"""terraform/alarms.tf against the code and the rest of terraform/, read with python-hcl2.

- every alarm notifies the alarm topic, which is encrypted with the project's key; the key
  and the topic's policy let exactly the alarm sources publish, and every alarm's name is
  one the topic policy admits;
- each way the deployment fails has its alarm or rule: failed updater runs, passes that
  stop happening, the read model's age, gateway 5xx, DynamoDB throttles and errors on the
  operations the code calls, and Aurora (capacity, CPU, memory, RDS events);
- the metric filters read the line the updater logs (the message and field constants in
  services/updater/main.py) from the log group the updater task writes to.
"""

import re
from typing import Any

import pytest

from services.platform.settings import PROJECT_ROOT
from services.updater.main import (
    EXIT_CHECKPOINT_LOST,
    PASS_COMPLETED_MESSAGE,
    READ_MODEL_AGE_FIELD,
)
from tests.unit.test_infrastructure_drift import (
    NOT_RUN,
    PROCESSES,
    TERRAFORM,
    _client_calls,
    _container,
    _data,
    _default,
    _local,
    _parse,
    _process_code,
    _ref,
    _resource,
    _terraform,
)

TOPIC = _ref("aws_sns_topic.alarms.arn")
UPDATER_LOG_GROUP = _ref('aws_cloudwatch_log_group.task["updater"].name')
LOAD_BALANCER = _ref("aws_lb.gateway.arn_suffix")
TABLE = _ref("aws_dynamodb_table.ledger.name")
INSTANCE = _ref("aws_rds_cluster_instance.read_model[count.index].identifier")
# DynamoDB's table operations (the ones its per-operation metrics name).
TABLE_OPERATIONS = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ExecuteTransaction",
}


def _alarms() -> dict[str, dict[str, Any]]:
    alarms: dict[str, dict[str, Any]] = _terraform()["resource"]["aws_cloudwatch_metric_alarm"]
    return alarms


def _alarm(name: str) -> dict[str, Any]:
    return _alarms()[name]


def _unescaped(value: str) -> str:
    """A string as Terraform reads it (python-hcl2 keeps the \\" escapes)."""
    return value.replace('\\"', '"')


def _queried_metrics(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A metric-math alarm's metrics by query id."""
    return {query["id"]: query["metric"][0] for query in alarm["metric_query"] if "metric" in query}


def _returned_expression(alarm: dict[str, Any]) -> str:
    [returned] = [query for query in alarm["metric_query"] if query.get("return_data")]
    expression: str = returned["expression"]
    return expression


def _schedule_minutes() -> int:
    match = re.fullmatch(r"rate\((\d+) minutes?\)", _default("updater_schedule"))
    assert match, "the default updater_schedule is a rate in minutes"
    return int(match[1])


# --- the topic, its key and its policy ------------------------------------------------------


def test_topic_is_encrypted_with_the_project_key_under_the_name_the_key_policy_uses() -> None:
    topic = _resource("aws_sns_topic", "alarms")
    assert topic["kms_master_key_id"] == _ref("aws_kms_key.wallet.arn")
    assert topic["name"] == _ref("local.alarm_topic_name")
    assert _local("alarm_topic_name") == "${var.name}-alarms"
    assert _local("alarm_topic_arn") == (
        "arn:${local.partition}:sns:${var.region}:${local.account_id}:${local.alarm_topic_name}"
    )


def test_key_lets_the_alarm_sources_use_it_for_the_alarm_topic_only() -> None:
    policy = _resource("aws_kms_key", "wallet")["policy"]
    [statement] = re.findall(r'\{Sid = "AlarmSourcesPublishToTheAlarmTopic".*?\}\}\}', policy)
    services = '["cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com"]'
    assert f"Principal = {{Service = {services}}}" in statement
    assert 'Action = ["kms:Decrypt", "kms:GenerateDataKey*"]' in statement
    assert 'Effect = "Allow"' in statement
    topic = '"kms:EncryptionContext:aws:sns:topicArn" = local.alarm_topic_arn'
    assert f"Condition = {{StringEquals = {{{topic}}}}}" in statement


def _topic_statements() -> dict[str, dict[str, Any]]:
    statements = _data("aws_iam_policy_document", "alarm_topic")["statement"]
    return {statement["sid"]: statement for statement in statements}


def test_topic_policy_lets_each_alarm_source_publish_and_nothing_else() -> None:
    policy = _resource("aws_sns_topic_policy", "alarms")
    assert policy["arn"] == TOPIC
    assert policy["policy"] == _ref("data.aws_iam_policy_document.alarm_topic.json")
    allowed = {
        sid: statement
        for sid, statement in _topic_statements().items()
        if statement.get("effect", "Allow") == "Allow"
    }
    publishers = set()
    for statement in allowed.values():
        assert statement["actions"] == ["sns:Publish"]
        assert statement["resources"] == [TOPIC]
        assert statement["condition"], "each publisher is narrowed to this deployment"
        [principal] = statement["principals"]
        assert principal["type"] == "Service"
        publishers |= set(principal["identifiers"])
    assert publishers == {
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "events.rds.amazonaws.com",
    }
    [rule_condition] = allowed["FailedUpdaterRuns"]["condition"]
    assert rule_condition["values"] == [_ref("aws_cloudwatch_event_rule.updater_run_failed.arn")]


def _alarm_name_as_deployed(name: str) -> str:
    """An alarm name with the database instances' identifiers written out."""
    instance = _resource("aws_rds_cluster_instance", "read_model")["identifier"]
    name = name.replace(INSTANCE, instance)
    return name.replace(_ref("local.db_cluster_identifier"), _local("db_cluster_identifier"))


@pytest.mark.parametrize("alarm", sorted(_alarms()))
def test_alarm_notifies_the_topic_and_has_a_name_its_policy_admits(alarm: str) -> None:
    """The topic policy admits alarms named "${var.name}-*"; an alarm named otherwise, or
    without actions, would fire unheard."""
    body = _alarm(alarm)
    assert body["alarm_actions"] == body["ok_actions"] == _ref("local.alarm_actions")
    assert _local("alarm_actions") == [TOPIC]
    assert body.get("actions_enabled", True) is True
    assert _alarm_name_as_deployed(body["alarm_name"]).startswith("${var.name}-")
    [cloudwatch] = [
        condition
        for condition in _topic_statements()["CloudWatchAlarmsOfThisDeployment"]["condition"]
        if condition["variable"] == "aws:SourceArn"
    ]
    assert cloudwatch["values"] == [
        "arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${var.name}-*"
    ]


def test_email_addresses_subscribe_to_the_topic() -> None:
    subscription = _resource("aws_sns_topic_subscription", "alarm_email")
    assert subscription["for_each"] == _ref("toset(var.alarm_email_addresses)")
    assert subscription["topic_arn"] == TOPIC
    assert subscription["protocol"] == "email"
    assert _default("alarm_email_addresses") == []


def test_the_topic_arn_is_an_output() -> None:
    outputs = {
        name: body
        for block in _parse(TERRAFORM / "outputs.tf").get("output", [])
        for name, body in block.items()
    }
    assert outputs["alarm_topic_arn"]["value"] == TOPIC


# --- 1. failed updater runs -----------------------------------------------------------------


def test_failed_updater_runs_notify_the_topic_naming_task_and_exit_code() -> None:
    rule = _resource("aws_cloudwatch_event_rule", "updater_run_failed")
    assert rule["event_pattern"] == _ref("jsonencode(local.updater_run_failed_pattern)")
    pattern = _local("updater_run_failed_pattern")
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    detail = pattern["detail"]
    assert detail["clusterArn"] == [_ref("aws_ecs_cluster.wallet.arn")]
    updater = "aws_ecs_task_definition.updater"
    revisions = _ref(f"{updater}.arn_without_revision") + ":"
    assert detail["taskDefinitionArn"] == [{"prefix": revisions}]
    assert detail["lastStatus"] == ["STOPPED"]
    assert detail["containers"] == {"exitCode": [{"anything-but": 0}]}
    # The rule watches the task definition the schedule runs.
    [target] = _resource("aws_scheduler_schedule", "updater")["target"]
    assert target["ecs_parameters"][0]["task_definition_arn"] == _ref(f"{updater}.arn")

    event_target = _resource("aws_cloudwatch_event_target", "updater_run_failed")
    assert event_target["rule"] == _ref("aws_cloudwatch_event_rule.updater_run_failed.name")
    assert event_target["arn"] == TOPIC
    # SNS targets publish under the topic policy; a role would bypass it and the key grant.
    assert "role_arn" not in event_target
    [transformer] = event_target["input_transformer"]
    paths = transformer["input_paths"]
    assert paths["task"] == "$.detail.taskArn"
    assert paths["exit_code"] == "$.detail.containers[0].exitCode"
    template = _unescaped(transformer["input_template"])
    assert all(f"<{name}>" in template for name in paths)
    assert f"Code {EXIT_CHECKPOINT_LOST}:" in template
    assert "updater_rebuild_command" in template
    assert UPDATER_LOG_GROUP in template


def test_failed_updater_runs_also_raise_an_alarm() -> None:
    alarm = _alarm("updater_runs_failing")
    assert alarm["namespace"] == "AWS/Events"
    assert alarm["metric_name"] == "TriggeredRules"
    assert alarm["dimensions"] == {
        "RuleName": _ref("aws_cloudwatch_event_rule.updater_run_failed.name")
    }
    assert alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["threshold"] == 1


# --- 2. passes that stop happening, and the read model's age --------------------------------


def test_the_metric_filters_read_the_line_the_updater_logs() -> None:
    assert _local("updater_pass_message") == PASS_COMPLETED_MESSAGE
    assert _local("read_model_age_field") == READ_MODEL_AGE_FIELD
    pattern = _unescaped(_local("updater_pass_pattern"))
    assert pattern == '{ $.message = "${local.updater_pass_message}" }'
    passes = _resource("aws_cloudwatch_log_metric_filter", "updater_passes")
    age = _resource("aws_cloudwatch_log_metric_filter", "read_model_age")
    for metric_filter in (passes, age):
        assert metric_filter["log_group_name"] == UPDATER_LOG_GROUP
        assert metric_filter["pattern"] == _ref("local.updater_pass_pattern")
    assert passes["metric_transformation"][0]["value"] == "1"
    assert age["metric_transformation"][0]["value"] == "$.${local.read_model_age_field}"
    # ...from the log group the updater task writes to.
    options = _container("updater")["logConfiguration"]["options"]
    assert options["awslogs-group"] == UPDATER_LOG_GROUP


def test_the_pass_line_is_logged_at_the_default_log_level() -> None:
    passes = _resource("aws_cloudwatch_log_metric_filter", "updater_passes")
    [precondition] = passes["lifecycle"][0]["precondition"]
    assert precondition["condition"] == _ref('contains(["DEBUG", "INFO"], upper(var.log_level))')
    assert _default("log_level").upper() in ("DEBUG", "INFO")


def _assert_reads_filter(alarm: dict[str, Any], metric_filter: str) -> None:
    assert alarm["namespace"] == _ref("local.metrics_namespace")
    resource = f"aws_cloudwatch_log_metric_filter.{metric_filter}"
    assert alarm["metric_name"] == _ref(f"{resource}.metric_transformation[0].name")
    transformation = _resource("aws_cloudwatch_log_metric_filter", metric_filter)
    assert transformation["metric_transformation"][0]["namespace"] == alarm["namespace"]


def test_no_pass_for_a_window_raises_an_alarm_whatever_stopped_them() -> None:
    """Missing minutes breach: a run that fails, hangs or never starts logs no line."""
    alarm = _alarm("updater_passes_missing")
    _assert_reads_filter(alarm, "updater_passes")
    assert alarm["statistic"] == "Sum"
    assert alarm["period"] == 60
    window = _ref("var.updater_max_minutes_without_pass")
    assert alarm["evaluation_periods"] == alarm["datapoints_to_alarm"] == window
    assert alarm["comparison_operator"] == "LessThanThreshold"
    assert alarm["threshold"] == 1
    assert alarm["treat_missing_data"] == "breaching"
    # One failed run of the default schedule alone does not raise it.
    assert _default("updater_max_minutes_without_pass") >= 2 * _schedule_minutes()


def test_a_read_model_older_than_the_threshold_raises_an_alarm() -> None:
    alarm = _alarm("read_model_age")
    _assert_reads_filter(alarm, "read_model_age")
    assert alarm["statistic"] == "Maximum"
    assert alarm["threshold"] == _ref("var.read_model_max_age_seconds")
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["treat_missing_data"] == "breaching"
    assert alarm["period"] == 60
    window = _ref("ceil(var.read_model_max_age_seconds / 60)")
    assert alarm["evaluation_periods"] == alarm["datapoints_to_alarm"] == window
    assert _default("read_model_max_age_seconds") == 900
    assert _default("read_model_max_age_seconds") >= 2 * 60 * _schedule_minutes()


# --- 3. gateway 5xx -------------------------------------------------------------------------


def test_gateway_5xx_answers_raise_alarms() -> None:
    target = _alarm("gateway_target_5xx")
    metrics = _queried_metrics(target)
    assert {name: metric["metric_name"] for name, metric in metrics.items()} == {
        "errors": "HTTPCode_Target_5XX_Count",
        "requests": "RequestCount",
    }
    assert _returned_expression(target) == "100 * FILL(errors, 0) / requests"
    assert target["threshold"] == _ref("var.gateway_target_5xx_percent")

    balancer = _alarm("gateway_elb_5xx")
    assert balancer["metric_name"] == "HTTPCode_ELB_5XX_Count"
    assert balancer["threshold"] == _ref("var.gateway_elb_5xx_per_minute")
    for metric in [*metrics.values(), balancer]:
        assert metric["namespace"] == "AWS/ApplicationELB"
        assert metric["dimensions"] == {"LoadBalancer": LOAD_BALANCER}


# --- 4. DynamoDB ----------------------------------------------------------------------------


def _table_operations_in_code() -> set[str]:
    """The table operations the deployed processes call, as DynamoDB's metrics name them."""
    operations = set()
    for process in PROCESSES:
        not_run: dict[str, set[str]] = {}
        for module, name in NOT_RUN[process]:
            not_run.setdefault(module, set()).add(name)
        for path in _process_code(process):
            module = str(path.relative_to(PROJECT_ROOT))
            for call in _client_calls(path, not_run.get(module, set())):
                operations.add("".join(part.title() for part in call.split("_")))
    return operations & TABLE_OPERATIONS


def test_ledger_throttles_raise_an_alarm() -> None:
    alarm = _alarm("ledger_throttles")
    metrics = _queried_metrics(alarm)
    assert sorted(metric["metric_name"] for metric in metrics.values()) == [
        "ReadThrottleEvents",
        "WriteThrottleEvents",
    ]
    for metric in metrics.values():
        assert metric["namespace"] == "AWS/DynamoDB"
        assert metric["dimensions"] == {"TableName": TABLE}
    assert _returned_expression(alarm) == "FILL(reads, 0) + FILL(writes, 0)"
    assert alarm["threshold"] == _ref("var.dynamodb_throttle_events_per_minute")


def test_system_errors_raise_an_alarm_for_every_operation_the_code_calls() -> None:
    alarm = _alarm("ledger_system_errors")
    assert alarm["for_each"] == _ref("toset(local.ledger_table_operations)")
    assert alarm["namespace"] == "AWS/DynamoDB"
    assert alarm["metric_name"] == "SystemErrors"
    assert alarm["dimensions"] == {"TableName": TABLE, "Operation": _ref("each.key")}
    assert set(_local("ledger_table_operations")) == _table_operations_in_code()


# --- 5. Aurora ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alarm", "metric", "threshold"),
    [
        ("database_capacity", "ServerlessDatabaseCapacity", _ref("var.db_max_capacity")),
        ("database_cpu", "CPUUtilization", _ref("var.db_cpu_percent")),
        ("database_memory", "FreeableMemory", _ref("local.db_freeable_memory_threshold_bytes")),
    ],
)
def test_every_database_instance_has_its_alarm(alarm: str, metric: str, threshold: str) -> None:
    body = _alarm(alarm)
    assert body["count"] == _resource("aws_rds_cluster_instance", "read_model")["count"]
    assert body["namespace"] == "AWS/RDS"
    assert body["metric_name"] == metric
    assert body["dimensions"] == {"DBInstanceIdentifier": INSTANCE}
    assert body["threshold"] == threshold


def test_database_capacity_alarm_fires_at_the_configured_maximum() -> None:
    alarm = _alarm("database_capacity")
    assert alarm["statistic"] == "Minimum"
    assert alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"
    cluster = _resource("aws_rds_cluster", "read_model")
    scaling = cluster["serverlessv2_scaling_configuration"][0]
    assert scaling["max_capacity"] == alarm["threshold"]


@pytest.mark.parametrize(
    ("subscription", "source_type", "sources"),
    [
        ("database_cluster", "db-cluster", [_ref("aws_rds_cluster.read_model.id")]),
        (
            "database_instances",
            "db-instance",
            _ref("aws_rds_cluster_instance.read_model[*].identifier"),
        ),
    ],
)
def test_rds_failover_and_failure_events_reach_the_topic(
    subscription: str, source_type: str, sources: Any
) -> None:
    body = _resource("aws_db_event_subscription", subscription)
    assert body["sns_topic"] == TOPIC
    assert body["source_type"] == source_type
    assert body["source_ids"] == sources
    assert {"failover", "failure"} <= set(body["event_categories"])
    if source_type == "db-instance":
        assert "low storage" in body["event_categories"]

# Alarms. Every alarm and event notification goes to one SNS topic, encrypted with the
# project's key (kms.tf lets the three publishing services use it for this topic only);
# var.alarm_email_addresses subscribe to it. What each one watches and what to do when it
# fires: docs/deploy.md, "Alarms".

locals {
  alarm_topic_name = "${var.name}-alarms"
  # Spelled out rather than taken from the topic: the key's policy names it, and the topic
  # needs the key first.
  alarm_topic_arn = "arn:${local.partition}:sns:${var.region}:${local.account_id}:${local.alarm_topic_name}"
  alarm_actions   = [aws_sns_topic.alarms.arn]

  # The JSON line `wallet update` logs once a pass has committed: PASS_COMPLETED_MESSAGE
  # and READ_MODEL_AGE_FIELD in services/updater/main.py (tests/unit/test_alarms_drift.py).
  updater_pass_message = "updater pass completed"
  updater_pass_pattern = "{ $.message = \"${local.updater_pass_message}\" }"
  read_model_age_field = "read_model_age_seconds"
  metrics_namespace    = var.name

  # ECS reports every stopped updater run (scheduled, or the rebuild command); a non-zero
  # exit code is a failed run. Tasks that never start have no exit code: the missed-pass
  # alarm below catches those.
  updater_run_failed_pattern = {
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn        = [aws_ecs_cluster.wallet.arn]
      taskDefinitionArn = [{ prefix = "${aws_ecs_task_definition.updater.arn_without_revision}:" }]
      lastStatus        = ["STOPPED"]
      containers        = { exitCode = [{ "anything-but" = 0 }] }
    }
  }

  # The table operations the processes call, by the name DynamoDB's metrics give them: the
  # command service's deposits and the updater's rebuild scan.
  ledger_table_operations = ["TransactWriteItems", "Scan"]

  # Aurora Serverless v2 reports FreeableMemory against the instance at its maximum
  # capacity; an ACU is about 2 GiB.
  db_freeable_memory_threshold_bytes = var.db_max_capacity * 2 * 1024 * 1024 * 1024 * var.db_freeable_memory_percent / 100
}

# --- the topic ------------------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  name              = local.alarm_topic_name
  kms_master_key_id = aws_kms_key.wallet.arn
}

data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid       = "CloudWatchAlarmsOfThisDeployment"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    # Every alarm here is named "${var.name}-...".
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${var.name}-*"]
    }
  }

  statement {
    sid       = "FailedUpdaterRuns"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.updater_run_failed.arn]
    }
  }

  statement {
    sid       = "DatabaseEvents"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["events.rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "TLSOnly"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

# Each address gets a confirmation email; nothing is delivered to it until it confirms.
resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_email_addresses)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- updater: failed runs -------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "updater_run_failed" {
  name          = "${var.name}-updater-run-failed"
  description   = "An updater task stopped with a non-zero exit code"
  event_pattern = jsonencode(local.updater_run_failed_pattern)
}

resource "aws_cloudwatch_event_target" "updater_run_failed" {
  rule = aws_cloudwatch_event_rule.updater_run_failed.name
  arn  = aws_sns_topic.alarms.arn

  input_transformer {
    input_paths = {
      task      = "$.detail.taskArn"
      revision  = "$.detail.taskDefinitionArn"
      exit_code = "$.detail.containers[0].exitCode"
      stopped   = "$.detail.stoppedAt"
    }
    input_template = "\"Updater run failed: task <task> (<revision>) exited with code <exit_code> at <stopped>. Code 3: its checkpoint fell out of the stream's 24 hours, run the updater_rebuild_command output. Other codes: the next run retries; read the run's lines in ${aws_cloudwatch_log_group.task["updater"].name}. See docs/deploy.md, Alarms.\""
  }

  depends_on = [aws_sns_topic_policy.alarms]
}

# The same failures as an alarm state: in ALARM while runs keep failing, OK once a 5-minute
# period passes without one.
resource "aws_cloudwatch_metric_alarm" "updater_runs_failing" {
  alarm_name          = "${var.name}-updater-runs-failing"
  alarm_description   = "Updater runs exit non-zero (the rule's notifications name each task and exit code). docs/deploy.md, Alarms."
  namespace           = "AWS/Events"
  metric_name         = "TriggeredRules"
  dimensions          = { RuleName = aws_cloudwatch_event_rule.updater_run_failed.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- updater: passes that stop happening, and the read model's age --------------------------

resource "aws_cloudwatch_log_metric_filter" "updater_passes" {
  name           = "${var.name}-updater-passes"
  log_group_name = aws_cloudwatch_log_group.task["updater"].name
  pattern        = local.updater_pass_pattern

  metric_transformation {
    name      = "UpdaterSuccessfulPasses"
    namespace = local.metrics_namespace
    value     = "1"
    unit      = "Count"
  }

  lifecycle {
    precondition {
      condition     = contains(["DEBUG", "INFO"], upper(var.log_level))
      error_message = "The updater alarms read the updater's INFO line of each pass: log_level must be DEBUG or INFO."
    }
  }
}

resource "aws_cloudwatch_log_metric_filter" "read_model_age" {
  name           = "${var.name}-read-model-age"
  log_group_name = aws_cloudwatch_log_group.task["updater"].name
  pattern        = local.updater_pass_pattern

  metric_transformation {
    name      = "ReadModelAgeSeconds"
    namespace = local.metrics_namespace
    value     = "$.${local.read_model_age_field}"
    unit      = "Seconds"
  }
}

# One-minute periods, each breaching unless a pass ended in it: ALARM once a whole window
# has gone by without one, whether the runs fail, hang (holding the lock, so later runs
# find it taken and do nothing), never start, or the schedule stopped.
resource "aws_cloudwatch_metric_alarm" "updater_passes_missing" {
  alarm_name          = "${var.name}-updater-passes-missing"
  alarm_description   = "No updater pass has completed for ${var.updater_max_minutes_without_pass} minutes. The stream keeps 24 hours. docs/deploy.md, Alarms."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.updater_passes.metric_transformation[0].name
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = var.updater_max_minutes_without_pass
  datapoints_to_alarm = var.updater_max_minutes_without_pass
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Each pass reports the read model's age as it left it; a window with no pass, or with
# passes that leave it older than the threshold, raises the alarm.
resource "aws_cloudwatch_metric_alarm" "read_model_age" {
  alarm_name          = "${var.name}-read-model-age"
  alarm_description   = "The read model has been more than ${var.read_model_max_age_seconds} s behind the table. The stream keeps 24 hours. docs/deploy.md, Alarms."
  namespace           = local.metrics_namespace
  metric_name         = aws_cloudwatch_log_metric_filter.read_model_age.metric_transformation[0].name
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = ceil(var.read_model_max_age_seconds / 60)
  datapoints_to_alarm = ceil(var.read_model_max_age_seconds / 60)
  threshold           = var.read_model_max_age_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- gateway: 5xx answers -------------------------------------------------------------------

# Answers the gateway itself gave (a 503 when a backend is out, a 500): a share of the
# requests, so the threshold holds at any traffic.
resource "aws_cloudwatch_metric_alarm" "gateway_target_5xx" {
  alarm_name          = "${var.name}-gateway-target-5xx"
  alarm_description   = "More than ${var.gateway_target_5xx_percent}% of the gateway's answers are 5xx. docs/deploy.md, Alarms."
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.gateway_target_5xx_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "percent"
    expression  = "100 * FILL(errors, 0) / requests"
    label       = "Gateway 5xx answers, % of requests"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = { LoadBalancer = aws_lb.gateway.arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = { LoadBalancer = aws_lb.gateway.arn_suffix }
      period      = 60
      stat        = "Sum"
    }
  }
}

# Answers the load balancer gave for want of a gateway answer (no healthy gateway task,
# a connection reset, a timeout). RequestCount leaves out requests that found no target, so
# this counts.
resource "aws_cloudwatch_metric_alarm" "gateway_elb_5xx" {
  alarm_name          = "${var.name}-gateway-elb-5xx"
  alarm_description   = "The load balancer answers 5xx itself (${var.gateway_elb_5xx_per_minute} or more a minute). docs/deploy.md, Alarms."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  dimensions          = { LoadBalancer = aws_lb.gateway.arn_suffix }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.gateway_elb_5xx_per_minute
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- DynamoDB -------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "ledger_throttles" {
  alarm_name          = "${var.name}-ledger-throttles"
  alarm_description   = "Requests to the ledger table are throttled (${var.dynamodb_throttle_events_per_minute} or more events a minute). docs/deploy.md, Alarms."
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = var.dynamodb_throttle_events_per_minute
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "throttles"
    expression  = "FILL(reads, 0) + FILL(writes, 0)"
    label       = "Ledger table throttle events"
    return_data = true
  }

  metric_query {
    id = "reads"

    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "ReadThrottleEvents"
      dimensions  = { TableName = aws_dynamodb_table.ledger.name }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "writes"

    metric {
      namespace   = "AWS/DynamoDB"
      metric_name = "WriteThrottleEvents"
      dimensions  = { TableName = aws_dynamodb_table.ledger.name }
      period      = 60
      stat        = "Sum"
    }
  }
}

# DynamoDB's own 500s, per operation (the only way it reports them).
resource "aws_cloudwatch_metric_alarm" "ledger_system_errors" {
  for_each = toset(local.ledger_table_operations)

  alarm_name          = "${var.name}-ledger-system-errors-${each.key}"
  alarm_description   = "DynamoDB fails ${each.key} on the ledger table with internal errors. docs/deploy.md, Alarms."
  namespace           = "AWS/DynamoDB"
  metric_name         = "SystemErrors"
  dimensions          = { TableName = aws_dynamodb_table.ledger.name, Operation = each.key }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- Aurora ---------------------------------------------------------------------------------

# Pinned at db_max_capacity for 15 minutes: the instance cannot grow any further.
resource "aws_cloudwatch_metric_alarm" "database_capacity" {
  count = var.db_instance_count

  alarm_name          = "${aws_rds_cluster_instance.read_model[count.index].identifier}-capacity-at-max"
  alarm_description   = "The instance has run at db_max_capacity (${var.db_max_capacity} ACUs) for 15 minutes. docs/deploy.md, Alarms."
  namespace           = "AWS/RDS"
  metric_name         = "ServerlessDatabaseCapacity"
  dimensions          = { DBInstanceIdentifier = aws_rds_cluster_instance.read_model[count.index].identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.db_max_capacity
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "database_cpu" {
  count = var.db_instance_count

  alarm_name          = "${aws_rds_cluster_instance.read_model[count.index].identifier}-cpu"
  alarm_description   = "The instance's CPU has averaged above ${var.db_cpu_percent}% for 15 minutes. docs/deploy.md, Alarms."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = aws_rds_cluster_instance.read_model[count.index].identifier }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  threshold           = var.db_cpu_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "database_memory" {
  count = var.db_instance_count

  alarm_name          = "${aws_rds_cluster_instance.read_model[count.index].identifier}-freeable-memory"
  alarm_description   = "The instance has had less than ${var.db_freeable_memory_percent}% of its maximum capacity's memory free for 15 minutes. docs/deploy.md, Alarms."
  namespace           = "AWS/RDS"
  metric_name         = "FreeableMemory"
  dimensions          = { DBInstanceIdentifier = aws_rds_cluster_instance.read_model[count.index].identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 3
  threshold           = local.db_freeable_memory_threshold_bytes
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# RDS's own notices of failovers, failures and low storage, as it sends them.
resource "aws_db_event_subscription" "database_cluster" {
  name             = "${local.db_cluster_identifier}-cluster"
  sns_topic        = aws_sns_topic.alarms.arn
  source_type      = "db-cluster"
  source_ids       = [aws_rds_cluster.read_model.id]
  event_categories = ["failover", "failure"]

  depends_on = [aws_sns_topic_policy.alarms]
}

resource "aws_db_event_subscription" "database_instances" {
  name             = "${local.db_cluster_identifier}-instances"
  sns_topic        = aws_sns_topic.alarms.arn
  source_type      = "db-instance"
  source_ids       = aws_rds_cluster_instance.read_model[*].identifier
  event_categories = ["availability", "failover", "failure", "low storage"]

  depends_on = [aws_sns_topic_policy.alarms]
}

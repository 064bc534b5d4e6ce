# One task role and one execution role per process.
#
# Task roles (what the process itself calls): exactly the DynamoDB actions in the code's
# DYNAMODB_ACTIONS tuples, on exactly its resources (tests/unit/test_infrastructure_drift.py):
#   command  services/ledger/adapters/write_store.py  on the table
#   updater  services/updater/stream_reader.py       on the table and its stream
# and, for query and updater, rds-db:connect as their own database role (IAM database
# authentication; tests/unit/test_database_roles_drift.py).
#   gateway, migrate: no AWS calls, so no policy at all.
# Execution roles (what ECS does to start the task): pull the image, write the task's log
# group, and read the database secret for the task that gets it (migrate).

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "task" {
  for_each = local.processes

  name               = "${var.name}-${each.key}-task"
  description        = "What the ${each.key} process may call"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role" "execution" {
  for_each = local.processes

  name               = "${var.name}-${each.key}-execution"
  description        = "What ECS may do to start the ${each.key} task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# --- task roles -----------------------------------------------------------------------------

data "aws_iam_policy_document" "command_task" {
  statement {
    sid = "RecordDepositsInTransactions"
    # write_store.DYNAMODB_ACTIONS: TransactWriteItems is authorised as its Put and Update.
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.ledger.arn]

    condition {
      test     = "ForAnyValue:StringEquals"
      variable = "dynamodb:EnclosingOperation"
      values   = ["TransactWriteItems"]
    }
  }
}

resource "aws_iam_role_policy" "command_task" {
  name   = "dynamodb"
  role   = aws_iam_role.task["command"].id
  policy = data.aws_iam_policy_document.command_task.json
}

data "aws_iam_policy_document" "updater_task" {
  statement {
    sid = "ReadTheTableAndItsStream"
    # stream_reader.DYNAMODB_ACTIONS
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:Scan",
      "dynamodb:DescribeStream",
      "dynamodb:GetShardIterator",
      "dynamodb:GetRecords",
    ]
    resources = [aws_dynamodb_table.ledger.arn, "${aws_dynamodb_table.ledger.arn}/stream/*"]
  }
}

resource "aws_iam_role_policy" "updater_task" {
  name   = "dynamodb"
  role   = aws_iam_role.task["updater"].id
  policy = data.aws_iam_policy_document.updater_task.json
}

# Signing in to the read model with IAM tokens, each process as the role `wallet migrate`
# made for it (ecs.tf, local.database_users). Aurora's IAM resource is the cluster's
# resource id, not its name.
data "aws_iam_policy_document" "database_connect" {
  for_each = local.database_users

  statement {
    sid     = "ConnectAsItsDatabaseRole"
    actions = ["rds-db:connect"]
    resources = [
      "arn:${local.partition}:rds-db:${var.region}:${local.account_id}:dbuser:${aws_rds_cluster.read_model.cluster_resource_id}/${each.value}",
    ]
  }
}

resource "aws_iam_role_policy" "database_connect" {
  for_each = local.database_users

  name   = "rds-db-connect"
  role   = aws_iam_role.task[each.key].id
  policy = data.aws_iam_policy_document.database_connect[each.key].json
}

# --- execution roles ------------------------------------------------------------------------

data "aws_iam_policy_document" "execution" {
  for_each = local.processes

  statement {
    sid = "AuthenticateToECR"
    #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken has no resource-level permissions; "*" is the only valid resource.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullTheImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.wallet.arn]
  }

  statement {
    sid       = "WriteTheTaskLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.task[each.key].arn}:*"]
  }

  dynamic "statement" {
    for_each = length(local.containers[each.key].secrets) > 0 ? [local.db_secret_arn] : []

    content {
      sid       = "ReadTheDatabaseSecret"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = length(local.containers[each.key].secrets) > 0 ? [aws_kms_key.wallet.arn] : []

    content {
      sid       = "DecryptTheDatabaseSecret"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  for_each = local.processes

  name   = "start-task"
  role   = aws_iam_role.execution[each.key].id
  policy = data.aws_iam_policy_document.execution[each.key].json
}

# --- the updater's scheduler ----------------------------------------------------------------

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-updater-scheduler"
  description        = "EventBridge Scheduler runs the updater task"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunTheUpdaterTask"
    actions   = ["ecs:RunTask"]
    resources = ["${aws_ecs_task_definition.updater.arn_without_revision}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.wallet.arn]
    }
  }

  statement {
    sid       = "HandTheUpdaterItsRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task["updater"].arn, aws_iam_role.execution["updater"].arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-updater"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

# --- Aurora enhanced monitoring -------------------------------------------------------------

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name}-rds-monitoring"
  description        = "Aurora enhanced monitoring publishes OS metrics"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

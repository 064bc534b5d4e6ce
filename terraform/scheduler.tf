# The updater: one `wallet update` pass per run, started by EventBridge Scheduler. Runs
# that overlap are harmless: the second one finds the updater's advisory lock taken and
# exits 0.
resource "aws_scheduler_schedule" "updater" {
  #checkov:skip=CKV_AWS_297:The schedule holds no data worth a customer managed key: a task definition ARN, subnet and security group ids.
  name                = "${var.name}-updater"
  description         = "One updater pass: DynamoDB stream -> PostgreSQL read model"
  schedule_expression = var.updater_schedule

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.wallet.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.updater.arn
      launch_type         = "FARGATE"
      task_count          = 1

      network_configuration {
        subnets          = var.private_subnet_ids
        security_groups  = [aws_security_group.updater.id]
        assign_public_ip = false
      }
    }

    # A run that cannot start is retried briefly; the next scheduled run catches up anyway.
    retry_policy {
      maximum_event_age_in_seconds = 120
      maximum_retry_attempts       = 3
    }
  }

  depends_on = [
    aws_iam_role_policy.scheduler,
    aws_iam_role_policy.execution,
    aws_iam_role_policy.updater_task,
  ]
}

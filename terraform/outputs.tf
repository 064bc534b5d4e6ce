locals {
  # deploy/release.py evaluates this with `terraform console` right after a targeted apply,
  # whose outputs still hold the previous release's values.
  migrate_task = {
    region              = var.region
    cluster             = aws_ecs_cluster.wallet.name
    task_definition_arn = aws_ecs_task_definition.migrate.arn
    container           = "migrate"
    subnets             = var.private_subnet_ids
    security_groups     = [local.task_security_groups.migrate]
  }
  run_task_networks = {
    for name in ["updater", "migrate"] : name => format(
      "awsvpcConfiguration={subnets=[%s],securityGroups=[%s],assignPublicIp=DISABLED}",
      join(",", var.private_subnet_ids),
      local.task_security_groups[name],
    )
  }
}

output "gateway_url" {
  description = "Base URL of the REST gateway."
  value       = "https://${var.gateway_domain_name != "" ? var.gateway_domain_name : aws_lb.gateway.dns_name}"
}

output "load_balancer_dns_name" {
  description = "Point gateway_domain_name at this (alias record)."
  value       = aws_lb.gateway.dns_name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer, for an alias record."
  value       = aws_lb.gateway.zone_id
}

output "table_name" {
  description = "The DynamoDB table."
  value       = aws_dynamodb_table.ledger.name
}

output "cluster_name" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.wallet.name
}

output "ecr_repository_url" {
  description = "Push the image here, tagged with var.image_tag."
  value       = aws_ecr_repository.wallet.repository_url
}

output "database_endpoint" {
  description = "Writer endpoint of the read model."
  value       = aws_rds_cluster.read_model.endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret of the database's master user (managed by RDS)."
  value       = local.db_secret_arn
}

output "migrate_command" {
  description = "Runs `wallet migrate` once, with the task definition of this apply; prints the task ARN."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${var.region}",
    "--cluster ${aws_ecs_cluster.wallet.name}",
    "--launch-type FARGATE",
    "--task-definition ${aws_ecs_task_definition.migrate.family}:${aws_ecs_task_definition.migrate.revision}",
    "--network-configuration '${local.run_task_networks.migrate}'",
    "--query 'tasks[0].taskArn' --output text",
  ])
}

output "migrate_task" {
  description = "What deploy/release.py needs to run `wallet migrate` with this apply's task definition."
  value       = local.migrate_task
}

output "updater_rebuild_command" {
  description = "Runs `wallet update --rebuild` once (after a restore, or when an updater run exits 3: checkpoint expired)."
  value = join(" ", [
    "aws ecs run-task",
    "--region ${var.region}",
    "--cluster ${aws_ecs_cluster.wallet.name}",
    "--launch-type FARGATE",
    "--task-definition ${aws_ecs_task_definition.updater.family}:${aws_ecs_task_definition.updater.revision}",
    "--network-configuration '${local.run_task_networks.updater}'",
    "--overrides '{\"containerOverrides\":[{\"name\":\"updater\",\"command\":[\"update\",\"--rebuild\"]}]}'",
    "--query 'tasks[0].taskArn' --output text",
  ])
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm (alarms.tf): subscribe pagers or chat here."
  value       = aws_sns_topic.alarms.arn
}

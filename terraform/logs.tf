# One log group per process (JSON lines on stderr), plus the WAF's and the database's.
resource "aws_cloudwatch_log_group" "task" {
  for_each = local.processes

  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.wallet.arn
}

# WAF requires the aws-waf-logs- prefix.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name}-gateway"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.wallet.arn
}

# Created before the cluster so Aurora's exported logs get a retention and the key.
resource "aws_cloudwatch_log_group" "database" {
  name              = "/aws/rds/cluster/${local.db_cluster_identifier}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.wallet.arn
}

# One customer managed key for the data at rest: the table, the database (storage,
# Performance Insights, the master user's secret), the image repository, the logs and the
# alarm topic.
# AWS services use it through grants made by the principal that creates each resource;
# CloudWatch Logs needs its own statement, and so do the services that publish to the
# encrypted alarm topic (alarms.tf). Task roles need no KMS permission: DynamoDB
# decrypts through its grant. Execution roles that read the database secret get
# kms:Decrypt through Secrets Manager only (iam.tf).
resource "aws_kms_key" "wallet" {
  description             = "${var.name}: table, database, secrets, images, logs, alarms"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheKeyThroughIAM"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action = [
          "kms:Encrypt*",
          "kms:Decrypt*",
          "kms:ReEncrypt*",
          "kms:GenerateDataKey*",
          "kms:Describe*",
        ]
        Resource = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"
          }
        }
      },
      {
        # A publisher to an encrypted topic needs the key too. Only for the alarm topic's
        # messages: its policy (alarms.tf) says which alarms, rule and account may publish.
        # EventBridge sends no aws:SourceArn or aws:SourceAccount to KMS, so the topic is
        # the one condition all three can meet.
        Sid    = "AlarmSourcesPublishToTheAlarmTopic"
        Effect = "Allow"
        Principal = {
          Service = ["cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com"]
        }
        Action   = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource = "*"
        Condition = {
          StringEquals = { "kms:EncryptionContext:aws:sns:topicArn" = local.alarm_topic_arn }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "wallet" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.wallet.key_id
}

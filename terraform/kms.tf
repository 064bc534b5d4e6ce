# One customer managed key for the data at rest: the table, the database (storage,
# Performance Insights, the master user's secret), the image repository and the logs.
# AWS services use it through grants made by the principal that creates each resource;
# CloudWatch Logs needs its own statement. Task roles need no KMS permission: DynamoDB
# decrypts through its grant. Execution roles that read the database secret get
# kms:Decrypt through Secrets Manager only (iam.tf).
resource "aws_kms_key" "wallet" {
  description             = "${var.name}: table, database, secrets, images, logs"
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
    ]
  })
}

resource "aws_kms_alias" "wallet" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.wallet.key_id
}

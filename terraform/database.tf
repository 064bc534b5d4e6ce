# The read model: Aurora PostgreSQL 16, Serverless v2, in the isolated subnets. The master
# password is generated and kept by RDS in Secrets Manager (manage_master_user_password);
# it never appears in a variable, the state's inputs or a task's environment. Tasks get
# the user name and password from that secret's JSON keys as ECS `secrets` (ecs.tf).

locals {
  db_cluster_identifier = "${var.name}-read-model"
  db_secret_arn         = aws_rds_cluster.read_model.master_user_secret[0].secret_arn
}

resource "aws_db_subnet_group" "read_model" {
  name        = local.db_cluster_identifier
  description = "Isolated subnets of the wallet read model"
  subnet_ids  = var.isolated_subnet_ids
}

resource "aws_rds_cluster_parameter_group" "read_model" {
  name        = local.db_cluster_identifier
  family      = "aurora-postgresql16"
  description = "Wallet read model: TLS only, DDL and slow statements logged"

  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

resource "aws_rds_cluster" "read_model" {
  #checkov:skip=CKV2_AWS_8:Backed up by Aurora itself: continuous backups with point-in-time restore for db_backup_retention_days, plus a final snapshot; the read model can also be rebuilt from the table (wallet update --rebuild).
  cluster_identifier = local.db_cluster_identifier
  engine             = "aurora-postgresql"
  engine_mode        = "provisioned"
  engine_version     = var.db_engine_version
  database_name      = "wallet"
  port               = local.ports.database

  master_username               = "wallet_admin"
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.wallet.arn

  db_subnet_group_name            = aws_db_subnet_group.read_model.name
  vpc_security_group_ids          = [aws_security_group.database.id]
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.read_model.name

  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.wallet.arn
  iam_database_authentication_enabled = true

  backup_retention_period      = var.db_backup_retention_days
  preferred_backup_window      = "02:00-03:00"
  preferred_maintenance_window = "sun:04:00-sun:05:00"
  copy_tags_to_snapshot        = true
  deletion_protection          = var.deletion_protection
  skip_final_snapshot          = var.skip_final_snapshot
  final_snapshot_identifier    = "${local.db_cluster_identifier}-final"

  enabled_cloudwatch_logs_exports = ["postgresql"]

  serverlessv2_scaling_configuration {
    min_capacity = var.db_min_capacity
    max_capacity = var.db_max_capacity
  }

  depends_on = [aws_cloudwatch_log_group.database]

  lifecycle {
    # The instances take minor upgrades in the maintenance window (16.6 -> 16.8); an apply
    # must not then try to go back to the pinned minor, which RDS refuses. The variable
    # still picks the version of a new cluster and a deliberate major upgrade.
    ignore_changes = [engine_version]
  }
}

# The first instance is the writer; the others are readers in other AZs (failover targets,
# and the query service reads from the reader endpoint). Instances inherit the engine
# version from the cluster, and take minor upgrades in the maintenance window.
resource "aws_rds_cluster_instance" "read_model" {
  count = var.db_instance_count

  identifier                 = "${local.db_cluster_identifier}-${count.index + 1}"
  cluster_identifier         = aws_rds_cluster.read_model.id
  instance_class             = "db.serverless"
  engine                     = aws_rds_cluster.read_model.engine
  db_subnet_group_name       = aws_db_subnet_group.read_model.name
  publicly_accessible        = false
  auto_minor_version_upgrade = true
  copy_tags_to_snapshot      = true

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.wallet.arn
  performance_insights_retention_period = 7

  monitoring_interval = 60
  monitoring_role_arn = aws_iam_role.rds_monitoring.arn

  # RDS refuses enhanced monitoring with a role that cannot publish yet.
  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}

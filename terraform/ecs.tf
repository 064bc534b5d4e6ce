# The ECS cluster, one task definition per process (all from the one image, each with its
# `wallet` subcommand), and the three long-running services.

resource "aws_ecs_cluster" "wallet" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enhanced"
  }

  service_connect_defaults {
    namespace = aws_service_discovery_http_namespace.wallet.arn
  }
}

resource "aws_ecs_cluster_capacity_providers" "wallet" {
  cluster_name       = aws_ecs_cluster.wallet.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# Cloud Map namespace of ECS Service Connect. The gateway reaches command.<namespace> and
# query.<namespace> through its Service Connect proxy, which balances each gRPC request
# across the healthy tasks (plain DNS would pin a gRPC channel to one task).
resource "aws_service_discovery_http_namespace" "wallet" {
  name        = var.service_namespace
  description = "Service Connect namespace of the wallet services"
}

locals {
  processes = toset(["gateway", "command", "query", "updater", "migrate"])
  image     = "${aws_ecr_repository.wallet.repository_url}:${var.image_tag}"

  service_hosts = {
    command = "command.${var.service_namespace}"
    query   = "query.${var.service_namespace}"
  }

  # Python needs a writable /tmp on the read-only root file system.
  tmp_mount_points = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]

  # The database roles of the processes that sign in with IAM tokens: `wallet migrate`
  # creates them (services/ledger/adapters/migrations.py, ProcessRoles), iam.tf lets each
  # task role connect as its own.
  database_users = {
    query   = "wallet_query"
    updater = "wallet_updater"
  }

  # One container per task, written out in ECS's own JSON shape so that checkov and
  # tests/unit/test_infrastructure_drift.py read exactly what ECS gets. Every setting a
  # process reads (services/platform/settings.py) is set here: `environment` for plain
  # values, `secrets` (valueFrom) for credentials. The app builds its database URL from
  # WALLET_DATABASE_* (DATABASE_URL stays unset). Only migrate has a password: the master
  # user's, from the JSON keys of its RDS-managed secret, read when the one-off task
  # starts; query and updater sign in as their own roles with an IAM token per new
  # connection, so the secret's rotation cannot break them.
  containers = {
    gateway = {
      name                   = "gateway"
      image                  = local.image
      command                = ["serve", "gateway"]
      essential              = true
      readonlyRootFilesystem = true
      mountPoints            = local.tmp_mount_points
      stopTimeout            = 30
      portMappings = [
        { name = "http", containerPort = local.ports.gateway, protocol = "tcp", appProtocol = "http" },
      ]
      environment = [
        { name = "WALLET_LISTEN_HOST", value = "0.0.0.0" },
        { name = "WALLET_GATEWAY_PORT", value = tostring(local.ports.gateway) },
        { name = "WALLET_COMMAND_ADDRESS", value = "${local.service_hosts.command}:${local.ports.command}" },
        { name = "WALLET_QUERY_ADDRESS", value = "${local.service_hosts.query}:${local.ports.query}" },
        { name = "WALLET_GATEWAY_DEADLINE_SECONDS", value = tostring(var.gateway_deadline_seconds) },
        # Above the load balancer's idle timeout (alb.tf).
        { name = "WALLET_GATEWAY_KEEP_ALIVE_SECONDS", value = tostring(local.gateway_keep_alive_seconds) },
        { name = "WALLET_AUTH_JWKS_URL", value = var.auth_jwks_url },
        { name = "WALLET_AUTH_ISSUER", value = var.auth_issuer },
        { name = "WALLET_AUTH_AUDIENCE", value = var.auth_audience },
        { name = "WALLET_RATE_LIMIT", value = var.rate_limit },
        # The load balancer's nodes, which append the client's address to X-Forwarded-For;
        # the gateway takes the rightmost address not in the VPC as the client (rate limits).
        { name = "WALLET_TRUSTED_PROXIES", value = local.vpc_cidrs },
        { name = "WALLET_SHUTDOWN_GRACE_SECONDS", value = tostring(var.shutdown_grace_seconds) },
        { name = "WALLET_LOG_LEVEL", value = var.log_level },
      ]
      secrets = []
      healthCheck = {
        command     = ["CMD", "python", "/opt/wallet/healthcheck.py", "gateway"]
        interval    = 30
        timeout     = 10
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task["gateway"].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "gateway"
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    }

    command = {
      name                   = "command"
      image                  = local.image
      command                = ["serve", "command"]
      essential              = true
      readonlyRootFilesystem = true
      mountPoints            = local.tmp_mount_points
      stopTimeout            = 30
      portMappings = [
        { name = "grpc", containerPort = local.ports.command, protocol = "tcp", appProtocol = "grpc" },
        { name = "metrics", containerPort = local.ports.command_metrics, protocol = "tcp", appProtocol = "http" },
      ]
      environment = [
        # botocore takes the region from AWS_DEFAULT_REGION, not AWS_REGION. (Written with
        # tostring(): with a bare var.region here checkov cannot render the container.)
        { name = "AWS_DEFAULT_REGION", value = tostring(var.region) },
        { name = "WALLET_TABLE_NAME", value = aws_dynamodb_table.ledger.name },
        { name = "WALLET_AGGREGATE_SHARDS", value = tostring(var.aggregate_shards) },
        { name = "WALLET_LISTEN_HOST", value = "0.0.0.0" },
        { name = "WALLET_COMMAND_PORT", value = tostring(local.ports.command) },
        { name = "WALLET_COMMAND_METRICS_PORT", value = tostring(local.ports.command_metrics) },
        { name = "WALLET_GRPC_WORKERS", value = tostring(var.grpc_workers) },
        { name = "WALLET_GRPC_MAX_CONCURRENT_RPCS", value = tostring(var.grpc_max_concurrent_rpcs) },
        { name = "WALLET_GRPC_MAX_RECEIVE_BYTES", value = tostring(var.grpc_max_receive_bytes) },
        { name = "WALLET_AUTH_JWKS_URL", value = var.auth_jwks_url },
        { name = "WALLET_AUTH_ISSUER", value = var.auth_issuer },
        { name = "WALLET_AUTH_AUDIENCE", value = var.auth_audience },
        { name = "WALLET_SHUTDOWN_GRACE_SECONDS", value = tostring(var.shutdown_grace_seconds) },
        { name = "WALLET_LOG_LEVEL", value = var.log_level },
      ]
      secrets = []
      healthCheck = {
        command     = ["CMD", "python", "/opt/wallet/healthcheck.py", "command"]
        interval    = 30
        timeout     = 10
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task["command"].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "command"
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    }

    query = {
      name                   = "query"
      image                  = local.image
      command                = ["serve", "query"]
      essential              = true
      readonlyRootFilesystem = true
      mountPoints            = local.tmp_mount_points
      stopTimeout            = 30
      portMappings = [
        { name = "grpc", containerPort = local.ports.query, protocol = "tcp", appProtocol = "grpc" },
        { name = "metrics", containerPort = local.ports.query_metrics, protocol = "tcp", appProtocol = "http" },
      ]
      environment = [
        # Signs the database's IAM tokens (botocore ignores AWS_REGION).
        { name = "AWS_DEFAULT_REGION", value = tostring(var.region) },
        # Reads only (read-only REPEATABLE READ snapshots), so from the reader endpoint.
        { name = "WALLET_DATABASE_HOST", value = aws_rds_cluster.read_model.reader_endpoint },
        { name = "WALLET_DATABASE_PORT", value = tostring(local.ports.database) },
        { name = "WALLET_DATABASE_NAME", value = aws_rds_cluster.read_model.database_name },
        { name = "WALLET_DATABASE_USER", value = local.database_users.query },
        { name = "WALLET_DATABASE_IAM_AUTH", value = "true" },
        { name = "WALLET_DATABASE_POOL_SIZE", value = tostring(var.database_pool_size) },
        { name = "WALLET_LISTEN_HOST", value = "0.0.0.0" },
        { name = "WALLET_QUERY_PORT", value = tostring(local.ports.query) },
        { name = "WALLET_QUERY_METRICS_PORT", value = tostring(local.ports.query_metrics) },
        { name = "WALLET_GRPC_WORKERS", value = tostring(var.grpc_workers) },
        { name = "WALLET_GRPC_MAX_CONCURRENT_RPCS", value = tostring(var.grpc_max_concurrent_rpcs) },
        { name = "WALLET_GRPC_MAX_RECEIVE_BYTES", value = tostring(var.grpc_max_receive_bytes) },
        { name = "WALLET_AUTH_JWKS_URL", value = var.auth_jwks_url },
        { name = "WALLET_AUTH_ISSUER", value = var.auth_issuer },
        { name = "WALLET_AUTH_AUDIENCE", value = var.auth_audience },
        { name = "WALLET_SHUTDOWN_GRACE_SECONDS", value = tostring(var.shutdown_grace_seconds) },
        { name = "WALLET_LOG_LEVEL", value = var.log_level },
      ]
      secrets = []
      healthCheck = {
        command     = ["CMD", "python", "/opt/wallet/healthcheck.py", "query"]
        interval    = 30
        timeout     = 10
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task["query"].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "query"
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    }

    # One pass per run, started by EventBridge Scheduler (scheduler.tf).
    updater = {
      name                   = "updater"
      image                  = local.image
      command                = ["update"]
      essential              = true
      readonlyRootFilesystem = true
      mountPoints            = local.tmp_mount_points
      stopTimeout            = 30
      portMappings           = []
      environment = [
        { name = "AWS_DEFAULT_REGION", value = tostring(var.region) },
        { name = "WALLET_TABLE_NAME", value = aws_dynamodb_table.ledger.name },
        { name = "WALLET_DATABASE_HOST", value = aws_rds_cluster.read_model.endpoint },
        { name = "WALLET_DATABASE_PORT", value = tostring(local.ports.database) },
        { name = "WALLET_DATABASE_NAME", value = aws_rds_cluster.read_model.database_name },
        { name = "WALLET_DATABASE_USER", value = local.database_users.updater },
        { name = "WALLET_DATABASE_IAM_AUTH", value = "true" },
        { name = "WALLET_STREAM_DELIVERY_ALLOWANCE_SECONDS", value = tostring(var.stream_delivery_allowance_seconds) },
        { name = "WALLET_LOG_LEVEL", value = var.log_level },
      ]
      secrets = []
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task["updater"].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "updater"
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    }

    # One-off: `wallet migrate`, run before a release that changes the schema (output
    # migrate_command).
    migrate = {
      name                   = "migrate"
      image                  = local.image
      command                = ["migrate"]
      essential              = true
      readonlyRootFilesystem = true
      mountPoints            = local.tmp_mount_points
      stopTimeout            = 30
      portMappings           = []
      environment = [
        { name = "WALLET_DATABASE_HOST", value = aws_rds_cluster.read_model.endpoint },
        { name = "WALLET_DATABASE_PORT", value = tostring(local.ports.database) },
        { name = "WALLET_DATABASE_NAME", value = aws_rds_cluster.read_model.database_name },
        # The master user's password, read at the task's start: it creates the roles.
        { name = "WALLET_DATABASE_IAM_AUTH", value = "false" },
      ]
      secrets = [
        { name = "WALLET_DATABASE_USER", valueFrom = "${local.db_secret_arn}:username::" },
        { name = "WALLET_DATABASE_PASSWORD", valueFrom = "${local.db_secret_arn}:password::" },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.task["migrate"].name
          awslogs-region        = var.region
          awslogs-stream-prefix = "migrate"
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    }
  }
}

resource "aws_ecs_task_definition" "gateway" {
  family = "${var.name}-gateway"
  # Keeps the revision a release replaces registered: the rollback target (docs/deploy.md).
  skip_destroy             = true
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_size["gateway"].cpu
  memory                   = var.task_size["gateway"].memory
  execution_role_arn       = aws_iam_role.execution["gateway"].arn
  task_role_arn            = aws_iam_role.task["gateway"].arn
  container_definitions    = jsonencode([local.containers.gateway])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

resource "aws_ecs_task_definition" "command" {
  family = "${var.name}-command"
  # Keeps the revision a release replaces registered: the rollback target (docs/deploy.md).
  skip_destroy             = true
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_size["command"].cpu
  memory                   = var.task_size["command"].memory
  execution_role_arn       = aws_iam_role.execution["command"].arn
  task_role_arn            = aws_iam_role.task["command"].arn
  container_definitions    = jsonencode([local.containers.command])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

resource "aws_ecs_task_definition" "query" {
  family = "${var.name}-query"
  # Keeps the revision a release replaces registered: the rollback target (docs/deploy.md).
  skip_destroy             = true
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_size["query"].cpu
  memory                   = var.task_size["query"].memory
  execution_role_arn       = aws_iam_role.execution["query"].arn
  task_role_arn            = aws_iam_role.task["query"].arn
  container_definitions    = jsonencode([local.containers.query])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

resource "aws_ecs_task_definition" "updater" {
  family = "${var.name}-updater"
  # Keeps the revision a release replaces registered: the rollback target (docs/deploy.md).
  skip_destroy             = true
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_size["updater"].cpu
  memory                   = var.task_size["updater"].memory
  execution_role_arn       = aws_iam_role.execution["updater"].arn
  task_role_arn            = aws_iam_role.task["updater"].arn
  container_definitions    = jsonencode([local.containers.updater])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

resource "aws_ecs_task_definition" "migrate" {
  family = "${var.name}-migrate"
  # Keeps the revision a release replaces registered: the rollback target (docs/deploy.md).
  skip_destroy             = true
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_size["migrate"].cpu
  memory                   = var.task_size["migrate"].memory
  execution_role_arn       = aws_iam_role.execution["migrate"].arn
  task_role_arn            = aws_iam_role.task["migrate"].arn
  container_definitions    = jsonencode([local.containers.migrate])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
}

# --- services -------------------------------------------------------------------------------

locals {
  service_connect_log_configuration = {
    for name in ["gateway", "command", "query"] : name => {
      log_driver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.task[name].name
        awslogs-region        = var.region
        awslogs-stream-prefix = "service-connect"
      }
    }
  }
}

resource "aws_ecs_service" "command" {
  name                               = "command"
  cluster                            = aws_ecs_cluster.wallet.id
  task_definition                    = aws_ecs_task_definition.command.arn
  desired_count                      = var.service_scaling.command.min
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.command.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.wallet.arn

    service {
      port_name      = "grpc"
      discovery_name = "command"

      client_alias {
        dns_name = local.service_hosts.command
        port     = local.ports.command
      }
    }

    log_configuration {
      log_driver = local.service_connect_log_configuration.command.log_driver
      options    = local.service_connect_log_configuration.command.options
    }
  }

  # Tasks must not start before their roles have their permissions.
  depends_on = [aws_iam_role_policy.execution, aws_iam_role_policy.command_task]

  lifecycle {
    ignore_changes = [desired_count] # autoscaling owns it
  }
}

resource "aws_ecs_service" "query" {
  name                               = "query"
  cluster                            = aws_ecs_cluster.wallet.id
  task_definition                    = aws_ecs_task_definition.query.arn
  desired_count                      = var.service_scaling.query.min
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.query.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.wallet.arn

    service {
      port_name      = "grpc"
      discovery_name = "query"

      client_alias {
        dns_name = local.service_hosts.query
        port     = local.ports.query
      }
    }

    log_configuration {
      log_driver = local.service_connect_log_configuration.query.log_driver
      options    = local.service_connect_log_configuration.query.options
    }
  }

  # Tasks must not start before their task role may connect to the database.
  depends_on = [
    aws_rds_cluster_instance.read_model,
    aws_iam_role_policy.execution,
    aws_iam_role_policy.database_connect,
  ]

  lifecycle {
    ignore_changes = [desired_count] # autoscaling owns it
  }
}

resource "aws_ecs_service" "gateway" {
  name                               = "gateway"
  cluster                            = aws_ecs_cluster.wallet.id
  task_definition                    = aws_ecs_task_definition.gateway.arn
  desired_count                      = var.service_scaling.gateway.min
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "gateway"
    container_port   = local.ports.gateway
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # A client only: its proxy resolves command.<namespace> and query.<namespace>.
  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.wallet.arn

    log_configuration {
      log_driver = local.service_connect_log_configuration.gateway.log_driver
      options    = local.service_connect_log_configuration.gateway.options
    }
  }

  # Service Connect gives a client task the endpoints that exist when it starts, and the
  # listener must exist before ECS registers targets.
  depends_on = [
    aws_ecs_service.command,
    aws_ecs_service.query,
    aws_lb_listener.https,
    aws_iam_role_policy.execution,
  ]

  lifecycle {
    ignore_changes = [desired_count] # autoscaling owns it
  }
}

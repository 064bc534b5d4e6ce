# Security groups in the existing VPC. Who may talk to whom:
#   internet -> alb:443/80 -> gateway:8080 -> command:50051, query:50052
#   query, updater, migrate -> database:5432
#   metrics scrapers (optional groups) -> gateway:8080/metrics, command:9101, query:9102
# Every task also needs HTTPS out to AWS APIs (ECR, CloudWatch Logs, Secrets Manager,
# DynamoDB, ECS Service Connect) through the private subnets' NAT or VPC endpoints.

locals {
  # The ports the processes listen on: the defaults in services/platform/settings.py (a test
  # checks), also set explicitly in each task's environment.
  ports = {
    gateway         = 8080
    command         = 50051
    query           = 50052
    command_metrics = 9101
    query_metrics   = 9102
    database        = 5432
  }
  # Static keys: the groups' ids are only known after apply.
  grpc_client_security_groups = merge(
    { gateway = aws_security_group.gateway.id },
    { for index, id in var.grpc_client_security_group_ids : "operator-${index}" => id },
  )
  task_security_groups = {
    gateway = aws_security_group.gateway.id
    command = aws_security_group.command.id
    query   = aws_security_group.query.id
    updater = aws_security_group.updater.id
    migrate = aws_security_group.migrate.id
  }
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Public HTTPS load balancer in front of the gateway"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "gateway" {
  name        = "${var.name}-gateway"
  description = "REST gateway tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "command" {
  name        = "${var.name}-command"
  description = "Command service tasks (gRPC, VPC-internal)"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "query" {
  name        = "${var.name}-query"
  description = "Query service tasks (gRPC, VPC-internal)"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "updater" {
  #checkov:skip=CKV2_AWS_5:Attached when a task starts: EventBridge Scheduler's ECS parameters (scheduler.tf), which checkov does not follow.
  name        = "${var.name}-updater"
  description = "Scheduled updater tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "migrate" {
  #checkov:skip=CKV2_AWS_5:Attached when an operator runs the one-off task (output migrate_command); no resource holds it.
  name        = "${var.name}-migrate"
  description = "One-off schema migration tasks"
  vpc_id      = var.vpc_id
}

resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "Aurora PostgreSQL read model"
  vpc_id      = var.vpc_id
}

# --- load balancer ------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.alb_ingress_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers with a redirect to HTTPS (alb.tf); nothing is served over HTTP.
  for_each = toset(var.alb_ingress_cidrs)

  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, redirected to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateway" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.gateway
  to_port                      = local.ports.gateway
  referenced_security_group_id = aws_security_group.gateway.id
}

# --- gateway --------------------------------------------------------------------------------

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "HTTP from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.gateway
  to_port                      = local.ports.gateway
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_command" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "gRPC to the command service"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.command
  to_port                      = local.ports.command
  referenced_security_group_id = aws_security_group.command.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_query" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "gRPC to the query service"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.query
  to_port                      = local.ports.query
  referenced_security_group_id = aws_security_group.query.id
}

# --- command and query: reachable from the gateway (and optional operator groups) only ----

resource "aws_vpc_security_group_ingress_rule" "command_from_clients" {
  for_each = local.grpc_client_security_groups

  security_group_id            = aws_security_group.command.id
  description                  = "gRPC from the gateway and allowed operator groups"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.command
  to_port                      = local.ports.command
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_ingress_rule" "query_from_clients" {
  for_each = local.grpc_client_security_groups

  security_group_id            = aws_security_group.query.id
  description                  = "gRPC from the gateway and allowed operator groups"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.query
  to_port                      = local.ports.query
  referenced_security_group_id = each.value
}

# --- metrics: scraped from inside the VPC only (the load balancer hides /metrics) -------------

locals {
  # Where each process serves its metrics; the updater runs one pass a run and serves none.
  metrics_endpoints = {
    gateway = { security_group_id = aws_security_group.gateway.id, port = local.ports.gateway }
    command = { security_group_id = aws_security_group.command.id, port = local.ports.command_metrics }
    query   = { security_group_id = aws_security_group.query.id, port = local.ports.query_metrics }
  }
  # Static keys (process-scraper index): the groups' ids are only known after apply.
  metrics_scrapes = {
    for pair in setproduct(keys(local.metrics_endpoints), range(length(var.metrics_scraper_security_group_ids))) :
    "${pair[0]}-scraper-${pair[1]}" => merge(
      local.metrics_endpoints[pair[0]],
      { scraper = var.metrics_scraper_security_group_ids[pair[1]] },
    )
  }
}

resource "aws_vpc_security_group_ingress_rule" "metrics_from_scrapers" {
  for_each = local.metrics_scrapes

  security_group_id            = each.value.security_group_id
  description                  = "Prometheus scrapes from the allowed groups"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.scraper
}

# --- database clients -----------------------------------------------------------------------

resource "aws_vpc_security_group_egress_rule" "to_database" {
  for_each = {
    query   = aws_security_group.query.id
    updater = aws_security_group.updater.id
    migrate = aws_security_group.migrate.id
  }

  security_group_id            = each.value
  description                  = "PostgreSQL to the read model"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.database
  to_port                      = local.ports.database
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_clients" {
  for_each = {
    query   = aws_security_group.query.id
    updater = aws_security_group.updater.id
    migrate = aws_security_group.migrate.id
  }

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = local.ports.database
  to_port                      = local.ports.database
  referenced_security_group_id = each.value
}

# --- every task: HTTPS to AWS APIs ----------------------------------------------------------

resource "aws_vpc_security_group_egress_rule" "task_https" {
  for_each = local.task_security_groups

  security_group_id = each.value
  description       = "HTTPS to AWS APIs (ECR, logs, secrets, DynamoDB, Service Connect)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# The VPC's address ranges: the gateway believes X-Forwarded-For from peers in them.
data "aws_vpc" "selected" {
  id = var.vpc_id
}

locals {
  vpc_cidrs = join(",", data.aws_vpc.selected.cidr_block_associations[*].cidr_block)
}

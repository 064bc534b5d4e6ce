# ---------------------------------------------------------------------------------------
# Where: an existing VPC and its subnets.
# ---------------------------------------------------------------------------------------

variable "region" {
  description = "AWS region of every resource."
  type        = string
}

variable "name" {
  description = "Prefix of resource names (cluster, services, roles, log groups)."
  type        = string
  default     = "wallet"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name: 2-21 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "The existing VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets (two or more AZs): the load balancer."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "The load balancer needs public subnets in at least two availability zones."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets with a route to AWS APIs (NAT gateway or VPC endpoints for ECR, S3, CloudWatch Logs, Secrets Manager, DynamoDB, DynamoDB Streams): the ECS tasks."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Run the tasks in at least two availability zones."
  }
}

variable "isolated_subnet_ids" {
  description = "Isolated subnets (no route to the internet, two or more AZs): the database."
  type        = list(string)

  validation {
    condition     = length(var.isolated_subnet_ids) >= 2
    error_message = "A DB subnet group needs subnets in at least two availability zones."
  }
}

# ---------------------------------------------------------------------------------------
# The public endpoint.
# ---------------------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ACM certificate (same region) for the load balancer's HTTPS listener."
  type        = string
}

variable "gateway_domain_name" {
  description = "DNS name the certificate covers and that points (alias record) at the load balancer; used for the gateway_url output. Empty: the load balancer's own name."
  type        = string
  default     = ""
}

variable "alb_idle_timeout_seconds" {
  description = "Seconds the load balancer keeps an idle connection open. The gateway keeps its own 15 s longer (WALLET_GATEWAY_KEEP_ALIVE_SECONDS), so the load balancer always closes first."
  type        = number
  default     = 60

  validation {
    condition     = var.alb_idle_timeout_seconds >= 1 && var.alb_idle_timeout_seconds <= 4000
    error_message = "alb_idle_timeout_seconds: 1 to 4000 seconds (the load balancer's bounds)."
  }
}

variable "alb_ingress_cidrs" {
  description = "IPv4 ranges allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# ---------------------------------------------------------------------------------------
# What runs.
# ---------------------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the image in the ECR repository this configuration creates (tags are immutable: use one per build, e.g. the git commit)."
  type        = string
}

variable "table_name" {
  description = "DynamoDB table (WALLET_TABLE_NAME)."
  type        = string
  default     = "wallet-ledger"
}

variable "aggregate_shards" {
  description = "Aggregate shards per wallet and 15-minute bucket (WALLET_AGGREGATE_SHARDS)."
  type        = number
  default     = 8
}

variable "log_level" {
  description = "WALLET_LOG_LEVEL of every process."
  type        = string
  default     = "INFO"
}

variable "grpc_workers" {
  description = "WALLET_GRPC_WORKERS of the command and query services."
  type        = number
  default     = 64
}

variable "grpc_max_concurrent_rpcs" {
  description = "WALLET_GRPC_MAX_CONCURRENT_RPCS: calls in flight per command or query task before RESOURCE_EXHAUSTED."
  type        = number
  default     = 256
}

variable "grpc_max_receive_bytes" {
  description = "WALLET_GRPC_MAX_RECEIVE_BYTES: the largest request message the command and query services read."
  type        = number
  default     = 65536
}

variable "auth_jwks_url" {
  description = "WALLET_AUTH_JWKS_URL: the identity provider's JWKS (RS256/ES256 keys) that signs the bearer tokens."
  type        = string
  validation {
    condition     = startswith(var.auth_jwks_url, "https://")
    error_message = "auth_jwks_url must be an https:// URL."
  }
}

variable "auth_issuer" {
  description = "WALLET_AUTH_ISSUER: the iss claim every token must carry."
  type        = string
}

variable "auth_audience" {
  description = "WALLET_AUTH_AUDIENCE: the aud claim every token must carry."
  type        = string
  default     = "wallet-ledger"
}

variable "rate_limit" {
  description = "WALLET_RATE_LIMIT: requests per client (token subject, else address) per gateway task, in `limits` notation."
  type        = string
  default     = "100/second"
}

variable "database_pool_size" {
  description = "WALLET_DATABASE_POOL_SIZE of each query task (times the task count must stay below the database's connection limit)."
  type        = number
  default     = 8
}

variable "shutdown_grace_seconds" {
  description = "WALLET_SHUTDOWN_GRACE_SECONDS: how long in-flight calls may finish after SIGTERM (below the container stop timeout of 30 s)."
  type        = number
  default     = 10
}

variable "gateway_deadline_seconds" {
  description = "WALLET_GATEWAY_DEADLINE_SECONDS: deadline of the gateway's gRPC calls."
  type        = number
  default     = 10
}

variable "service_namespace" {
  description = "Cloud Map namespace of ECS Service Connect; the gateway reaches command.<namespace> and query.<namespace>."
  type        = string
  default     = "wallet.internal"
}

variable "updater_schedule" {
  description = "EventBridge Scheduler expression of the updater's runs (one pass each)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron|at)\\(.+\\)$", var.updater_schedule))
    error_message = "updater_schedule: a rate(...), cron(...) or at(...) expression."
  }
}

variable "stream_delivery_allowance_seconds" {
  description = "WALLET_STREAM_DELIVERY_ALLOWANCE_SECONDS of the updater: how long DynamoDB Streams may take to show an acknowledged write (a pass that found a shard quiet dates the read model this much before it listed the shards)."
  type        = number
  default     = 5
}

variable "task_size" {
  description = "Fargate CPU units and memory (MiB) per process."
  type = map(object({
    cpu    = number
    memory = number
  }))
  default = {
    gateway = { cpu = 512, memory = 1024 }
    command = { cpu = 512, memory = 1024 }
    query   = { cpu = 512, memory = 1024 }
    updater = { cpu = 512, memory = 1024 }
    migrate = { cpu = 256, memory = 512 }
  }
}

variable "service_scaling" {
  description = "Task count bounds of the long-running services; they scale on average CPU."
  type = map(object({
    min = number
    max = number
  }))
  default = {
    gateway = { min = 2, max = 10 }
    command = { min = 2, max = 10 }
    query   = { min = 2, max = 10 }
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the services' autoscaling keeps."
  type        = number
  default     = 60
}

variable "grpc_client_security_group_ids" {
  description = "Extra security groups allowed to call the command and query services (e.g. an operator's bastion). The gateway's is always allowed."
  type        = list(string)
  default     = []
}

variable "metrics_scraper_security_group_ids" {
  description = "Security groups of Prometheus scrapers inside the VPC, allowed to reach the gateway's /metrics on its port and the command and query services' metrics ports (9101, 9102). Empty: none."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------------------------------
# Data safety.
# ---------------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "Deletion protection of the table, the database and the load balancer."
  type        = bool
  default     = true
}

variable "skip_final_snapshot" {
  description = "Skip the database's final snapshot on destroy (only for throw-away environments)."
  type        = bool
  default     = false
}

variable "db_engine_version" {
  description = "Aurora PostgreSQL 16 minor version (aws rds describe-db-engine-versions --engine aurora-postgresql)."
  type        = string
  default     = "16.6"

  validation {
    condition     = startswith(var.db_engine_version, "16.")
    error_message = "The read model runs on Aurora PostgreSQL 16."
  }
}

variable "db_min_capacity" {
  description = "Aurora Serverless v2 minimum ACUs."
  type        = number
  default     = 0.5
}

variable "db_max_capacity" {
  description = "Aurora Serverless v2 maximum ACUs."
  type        = number
  default     = 8
}

variable "db_instance_count" {
  description = "Aurora instances: one writer plus readers (two or more for a failover target in another AZ)."
  type        = number
  default     = 2
}

variable "db_backup_retention_days" {
  description = "Days of automated database backups (point-in-time restore window)."
  type        = number
  default     = 14
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group."
  type        = number
  default     = 365
}

variable "alb_log_retention_days" {
  description = "Days the load balancer's access logs are kept in S3."
  type        = number
  default     = 365
}

# ---------------------------------------------------------------------------------------
# Alarms (alarms.tf); docs/deploy.md, "Alarms".
# ---------------------------------------------------------------------------------------

variable "alarm_email_addresses" {
  description = "Email addresses subscribed to the alarm topic (each confirms by email first). Empty: subscribe other endpoints to the alarm_topic_arn output yourself."
  type        = list(string)
  default     = []
}

variable "updater_max_minutes_without_pass" {
  description = "Minutes without a completed updater pass before the alarm. Keep it at least two of updater_schedule's intervals, so that one failed run alone does not raise it."
  type        = number
  default     = 15

  validation {
    # The stream keeps 24 hours: the alarm must leave time to act on it.
    condition     = var.updater_max_minutes_without_pass >= 2 && var.updater_max_minutes_without_pass <= 720 && floor(var.updater_max_minutes_without_pass) == var.updater_max_minutes_without_pass
    error_message = "updater_max_minutes_without_pass: a whole number of minutes, 2 to 720."
  }
}

variable "read_model_max_age_seconds" {
  description = "How far behind the table (seconds) the read model may be before the alarm: the age each updater pass reports, and no pass at all for this long."
  type        = number
  default     = 900

  validation {
    condition     = var.read_model_max_age_seconds >= 60 && var.read_model_max_age_seconds <= 43200
    error_message = "read_model_max_age_seconds: 60 to 43200 (12 hours; the stream keeps 24)."
  }
}

variable "gateway_target_5xx_percent" {
  description = "Share of the gateway's answers (per minute, in 3 of 5 minutes) that may be 5xx before the alarm."
  type        = number
  default     = 1
}

variable "gateway_elb_5xx_per_minute" {
  description = "5xx answers a minute the load balancer may give itself (no healthy gateway, reset, timeout), in 3 of 5 minutes, before the alarm."
  type        = number
  default     = 5
}

variable "dynamodb_throttle_events_per_minute" {
  description = "Read and write throttle events a minute on the ledger table, in 3 of 5 minutes, that raise the alarm."
  type        = number
  default     = 1
}

variable "db_cpu_percent" {
  description = "Average CPU of a database instance over 15 minutes above which the alarm is raised."
  type        = number
  default     = 80
}

variable "db_freeable_memory_percent" {
  description = "Freeable memory of a database instance, as a percentage of its memory at db_max_capacity (2 GiB an ACU), below which for 15 minutes the alarm is raised."
  type        = number
  default     = 10
}

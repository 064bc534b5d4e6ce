terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Exactly the version `make test` validates and applies (against moto); the lock file
      # (.terraform.lock.hcl) holds its checksum. Raise both together, after testing.
      version = "5.100.0"
    }
  }

  # State: add a backend here (for example "s3" with use_lockfile = true) before the first
  # apply of a shared environment; see docs/deploy.md.
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Application = var.name
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

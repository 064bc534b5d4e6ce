# The one image every task runs (Dockerfile at the repository root).
resource "aws_ecr_repository" "wallet" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  # Without deletion protection (a throw-away environment) destroy deletes the images too.
  force_delete = !var.deletion_protection

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.wallet.arn
  }
}

resource "aws_ecr_lifecycle_policy" "wallet" {
  repository = aws_ecr_repository.wallet.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest 50 images (rollback targets); expire older ones."
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = 50
      }
      action = { type = "expire" }
    }]
  })
}

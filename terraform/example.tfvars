# Copy to <environment>.tfvars and fill in; see docs/deploy.md.
region = "eu-west-1"
name   = "wallet"

vpc_id              = "vpc-0123456789abcdef0"
public_subnet_ids   = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
private_subnet_ids  = ["subnet-0bbbbbbbbbbbbbbb1", "subnet-0bbbbbbbbbbbbbbb2"]
isolated_subnet_ids = ["subnet-0ccccccccccccccc1", "subnet-0ccccccccccccccc2"]

certificate_arn     = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
gateway_domain_name = "wallet.example.com"

# The identity provider that issues the clients' bearer tokens.
auth_jwks_url = "https://auth.example.com/.well-known/jwks.json"
auth_issuer   = "https://auth.example.com/"

# One immutable tag per build: the git commit the image was built from.
image_tag = "0123456789abcdef0123456789abcdef01234567"

updater_schedule = "rate(5 minutes)"

service_scaling = {
  gateway = { min = 2, max = 10 }
  command = { min = 2, max = 10 }
  query   = { min = 2, max = 10 }
}

tags = {
  Environment = "production"
  Owner       = "payments"
}

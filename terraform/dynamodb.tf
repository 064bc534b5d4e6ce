# The write store. Keys, attribute types, billing mode and stream view must equal
# services/ledger/adapters/ledger_table.py:table_definition (tests/unit/test_infrastructure_drift.py).
resource "aws_dynamodb_table" "ledger" {
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # The updater reads the aggregates' new images from the stream.
  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.wallet.arn
  }

  deletion_protection_enabled = var.deletion_protection
}

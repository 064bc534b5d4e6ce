"""Local stand-ins for the cloud: DynamoDB Local and the development stack."""

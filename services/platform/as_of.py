"""The query service's messages that carry `as_of`, as its servicer fills them and the
gateway reads them. Here, in the layer below both, because the two may not import each
other."""

from wallet.v1 import query_pb2

# Each has a Timestamp `as_of`: when the read model was last brought up to date, unset
# before the updater's first pass.
MessageWithAsOf = (
    query_pb2.GetBalanceHistoryResponse
    | query_pb2.GetBalanceResponse
    | query_pb2.ListRecordsResponse
    | query_pb2.GetRecordResponse
    | query_pb2.ReadModelAsOf
)

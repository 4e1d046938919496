import VLMRPC

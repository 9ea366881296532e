"""Cluster mode: collections split into shards, each shard replicated over Ray actors that
each wrap one single-node `Service` (same store, log and index as single-node pith)."""

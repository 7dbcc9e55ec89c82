"""Redis care: the cache report (memory, fragmentation, hit ratio, evictions, keyspace, big
keys by sampling), flushing a cache with its name typed back, and warming it through a service."""

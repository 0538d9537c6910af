"""Log text and stats.json → typed tables: the chunked scanner, the snapshot reader, the
live follower, and the run facts derived from the finished tables."""

"""dataset package: annotation schema, shard and manifest I/O, corpus checks."""

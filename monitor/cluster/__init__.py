"""Several instances: SQLite kept to one, PostgreSQL shared by many (membership, partition, one leader)."""

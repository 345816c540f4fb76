"""Storage: the SQLite system of record and the Chroma indexes rebuilt from it."""

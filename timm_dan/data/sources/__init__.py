"""Readers of the FER data sets' official label files: each `scan(root, ...)` returns a `SourceScan`."""

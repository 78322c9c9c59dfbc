"""Event ingestion: sources with write keys and the Segment-compatible tracking API (``/v1/*``)."""

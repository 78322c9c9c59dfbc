"""Custom audiences for ad platforms: a segment's consenting members as Google Customer Match or Meta files."""

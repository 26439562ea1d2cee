"""Stand-in package (tests/authors_standin; see its README)."""

"""lightyard's search-path plugin: a user's project's configs come before lightyard's own."""

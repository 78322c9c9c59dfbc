"""Privacy: consent rules, data-subject requests, third-party provision records (APPI)."""

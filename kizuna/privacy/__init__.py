"""Privacy: records Japan's APPI asks of a provider of personal data (third-party provisions) and their retention."""

"""Lead and deal scoring: a calibrated model trained on the team's won/lost history, a rule score when the
history is too short, the stored scores with their top factors, and the "whom to call first" list."""

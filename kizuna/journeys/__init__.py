"""Journeys (scenarios): a trigger, steps (wait, branch, split, send, tag, attribute, exit), versions, the engine
that moves enrolled customers through them, and what they measure."""

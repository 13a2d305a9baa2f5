"""Bolt listeners, one module per feature, each exposing `register(app)`.

Handlers stay thin: they parse (through the command grammar), authorize (declared with each
command, button and modal), call the domain, and render with `views`; a feature's Slack side
effects beyond the reply (card redraws, DMs, scheduling) live in its `jobs` module.
"""

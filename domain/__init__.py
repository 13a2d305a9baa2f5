"""The rules of the community, one module per domain, free of Slack: they read like the handbook."""

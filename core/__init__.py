"""Slack-facing plumbing shared by every domain: config, the app, commands, authorization."""

"""The composition root and the doors: `app` builds the Bolt app from every feature and starts their
background work; `http` serves Slack's HTTP requests (waitress); `socket_mode` is the WebSocket
alternative."""

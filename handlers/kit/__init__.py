"""The listener kit: how a slash command, button, modal or event is declared, parsed, authorized,
acknowledged and run. Feature handlers are written with it; `server.app` wires it to Bolt."""

"""The sandbox page's side of the fake Slack: what a person does in the browser, sent to the bot
the way Slack sends it.

The page (``sandbox/web/``, served by the fake Slack's own HTTP server) reads
``GET /sandbox/state?user=U…`` and follows ``GET /sandbox/events`` (server-sent events, one per
change). What the person does is POSTed to ``/sandbox/<verb>`` and turned here into a signed slash
command, message event, ``block_actions``, ``view_submission`` or ``app_home_opened`` through
:class:`~sandbox.driver.SlackDriver`, so the bot can't tell the page from Slack. What the bot sends
back lands on the same :class:`~sandbox.fake_slack.FakeSlack` the tests use.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from sandbox import blockkit, rules
from sandbox.driver import Response, SlackDriver
from sandbox.fake_slack import BOT_USER_ID, FakeSlack, dm_channel_id

#: The channels of the sandbox workspace: id -> name.
CHANNELS = {"C0GENERAL": "general", "C0TASKS": "tasks", "C0LEADS": "leads", "C0RANDOM": "random"}


class Workspace:
    """Connects the page to the bot. ``people`` (id -> a short description such as "lead,
    medicine") labels the user switcher; ``try_this`` is the page's "Try this" panel."""

    def __init__(
        self,
        fake: FakeSlack,
        bot_url: str,
        signing_secret: str,
        people: dict[str, str] | None = None,
        try_this: list[str] | None = None,
    ) -> None:
        self.fake = fake
        self.driver = SlackDriver(bot_url, signing_secret, fake=fake)
        self.people = people or {}
        self.try_this = try_this or []
        self.commands = rules.slash_commands()
        self.on_reset: Any = None  # the "Start over" button, when the runner offers one
        self.resetting = False  # a "Start over" under way: the page says so until it is done
        for channel_id, name in CHANNELS.items():
            fake.channel_names.setdefault(channel_id, name)
            fake.channel_members.setdefault(channel_id, [BOT_USER_ID])
        fake.workspace = self

    # ------------------------------------------------------------------ what the page shows

    def state(self, user: str) -> dict[str, Any]:
        fake = self.fake
        with fake._cond:
            users = [
                {**u, "about": self.people.get(u["id"], "")}
                for u in fake.users.values()
                if not u.get("is_bot") and (not self.people or u["id"] in self.people)
            ]
            channels = [{"id": c, "name": fake.channel_names.get(c, c)} for c in CHANNELS]
            dm = dm_channel_id(user) if user else None
            messages = {c["id"]: list(fake.messages.get(c["id"], [])) for c in channels}
            if dm:
                messages[dm] = list(fake.messages.get(dm, []))
            modal_stack = fake.modals.get(user, [])
            return json.loads(
                json.dumps(
                    {
                        "revision": fake.revision,
                        "me": user,
                        "users": users,
                        "bot": fake.users[BOT_USER_ID],
                        "channels": channels,
                        "dm": dm,
                        "messages": messages,
                        "ephemerals": list(fake.ephemerals.get(user, [])),
                        "home": fake.home_views.get(user),
                        "modal": modal_stack[-1] if modal_stack else None,
                        "violations": [
                            {"method": v.method, "rule": v.rule, "ts": v.ts} for v in fake.violations
                        ],
                        "rate_limited": fake.rate_limited_count,
                        "commands": self.commands,
                        "try_this": self.try_this,
                        "can_reset": self.on_reset is not None,
                        "resetting": self.resetting,
                    },
                    default=str,
                )
            )

    # ------------------------------------------------------------------ what the person does

    def handle(self, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        user = str(body.get("user", ""))
        if verb == "reset" and self.on_reset is not None:
            if not self.resetting:  # a second press while seeding changes nothing
                self.resetting = True
                self.fake.changed()
                threading.Thread(target=self._reset, name="sandbox-reset", daemon=True).start()
            return {"ok": True}
        if user not in self.fake.users:
            return {"ok": False, "error": "unknown user"}
        if verb == "send":
            return self.send(user, str(body["channel"]), str(body.get("text", "")), body.get("thread_ts"))
        if verb == "action":
            return self.action(user, body)
        if verb == "submit":
            return self.submit(user, str(body["view_id"]), body.get("values") or {})
        if verb == "close":
            return self.close(user, str(body.get("view_id", "")))
        if verb == "home":
            self.driver.home_opened(user)
            return {"ok": True}
        if verb == "dismiss":
            with self.fake._cond:
                mine = self.fake.ephemerals.get(user, [])
                mine[:] = [m for m in mine if m["ts"] != body.get("ts")]
                self.fake.changed()
            return {"ok": True}
        return {"ok": False, "error": f"unknown verb {verb}"}

    def _reset(self) -> None:
        try:
            self.on_reset()
        finally:
            self.resetting = False
            self.fake.changed()

    def send(self, user: str, channel: str, text: str, thread_ts: Any = None) -> dict[str, Any]:
        text = text.strip()
        if not text:
            return {"ok": False, "error": "empty"}
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            return self.command(user, channel, command, self._mentions(rest.strip(), escaped=True))
        text = self._mentions(text)
        extra = {"thread_ts": str(thread_ts)} if thread_ts else {}
        message = self.fake.add_message(channel, text, user=user, **extra)
        self.fake.changed()
        if channel.startswith("D"):
            self.driver.message_im(user, text, channel=channel, ts=message["ts"], thread_ts=thread_ts or None)
        elif f"<@{BOT_USER_ID}>" in text:
            event = {
                "type": "app_mention",
                "channel": channel,
                "user": user,
                "text": text,
                "ts": message["ts"],
                "event_ts": message["ts"],
                **extra,
            }
            self.driver.event(event)
        return {"ok": True}

    def command(self, user: str, channel: str, command: str, text: str) -> dict[str, Any]:
        known = {c["command"] for c in self.commands}
        if command not in known:
            self._notice(
                user, channel, f"`{command}` is not a valid command. Try one of: {', '.join(sorted(known))}"
            )
            return {"ok": True}
        trigger_id, url = self.fake.new_interaction(user, channel)
        response = self.driver.command(user, command, text, channel, trigger_id, response_url=url)
        self._ack_reply(user, channel, response, command)
        return {"ok": True}

    def action(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        where = body.get("where")
        action = dict(body["action"])
        channel = body.get("channel")
        source = body.get("message")
        view = None
        if where in ("modal", "home"):
            view = self.fake.views.get(str(body.get("view_id")))
            if view is None:
                return {"ok": False, "error": "view gone"}
            view = {**view, "state": {"values": body.get("values") or {}}}
        trigger_id, url = self.fake.new_interaction(user, channel, source)
        kwargs: dict[str, Any] = {"trigger_id": trigger_id, "response_url": url, "view": view}
        if source:
            kwargs["message_ts"] = source["ts"]
            if source.get("is_ephemeral"):
                kwargs["message"] = source
                kwargs["container"] = {
                    "type": "message",
                    "message_ts": source["ts"],
                    "channel_id": channel,
                    "is_ephemeral": True,
                }
        if channel:
            kwargs["channel_id"] = channel
        response = self.driver.block_actions(user, [action], **kwargs)
        if response.status != 200:
            self._notice(user, channel, f"The app did not answer (HTTP {response.status}).")
        return {"ok": True}

    def submit(self, user: str, view_id: str, values: dict[str, Any]) -> dict[str, Any]:
        view = self.fake.views.get(view_id)
        if view is None:
            return {"ok": False, "error": "view gone"}
        payload = self.driver.view_submission_payload(user, view.get("callback_id", ""), {}, view=view)
        payload["view"]["state"] = {"values": values}
        response = self.driver.post_payload(payload)
        if response.status != 200:
            return {"ok": False, "error": f"The app did not answer (HTTP {response.status})."}
        answer = response.json() if response.body.strip() else {}
        action = answer.get("response_action")
        with self.fake._cond:
            stack = self.fake.modals.setdefault(user, [])
            if action == "errors":
                return {"ok": False, "errors": answer.get("errors") or {}}
            if action in ("update", "push"):
                self.fake._method = f"view_submission response_action={action}"
                try:
                    new = self.fake._view_object(answer.get("view"), view_id if action == "update" else None)
                except Exception:  # a refused view is a violation on the page already
                    return {"ok": False, "error": "the app answered with a view Slack refuses"}
                if action == "update" and stack:
                    stack[-1] = new
                else:
                    stack.append(new)
            elif action == "clear":
                stack.clear()
            elif stack:
                stack.pop()
            self.fake.changed()
        return {"ok": True}

    def close(self, user: str, view_id: str) -> dict[str, Any]:
        with self.fake._cond:
            stack = self.fake.modals.get(user, [])
            if stack and stack[-1]["id"] == view_id:
                stack.pop()
            self.fake.changed()
        return {"ok": True}

    # ------------------------------------------------------------------ helpers

    def _ack_reply(self, user: str, channel: str, response: Response, what: str) -> None:
        """A slash command's ack body is shown as Slack shows it: ephemeral, or in the channel."""
        if response.status != 200:
            self._notice(user, channel, f'{what} failed with the error "dispatch_failed"')
            return
        if not response.body.strip():
            return
        try:
            data = response.json()
        except ValueError:
            data = {"text": response.body}
        if not isinstance(data, dict) or not (data.get("text") or data.get("blocks")):
            return
        for problem in blockkit.problems(data.get("blocks")):
            self.fake.violation(f"{what} ack", problem)
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": "B0BOT",
            "text": data.get("text", ""),
            "blocks": data.get("blocks") or [],
            "ts": self.fake.next_ts(),
        }
        if data.get("response_type") == "in_channel":
            with self.fake._cond:
                self.fake.messages.setdefault(channel, []).append(message)
                self.fake.changed()
        else:
            self.fake.add_ephemeral(user, channel, message)

    def _notice(self, user: str, channel: str | None, text: str) -> None:
        """Slackbot's own ephemeral note (e.g. an unknown command)."""
        message = {"type": "message", "user": "USLACKBOT", "text": text, "ts": self.fake.next_ts()}
        self.fake.add_ephemeral(user, channel or dm_channel_id(user), message)

    def _mentions(self, text: str, escaped: bool = False) -> str:
        """``@name`` and ``#channel`` typed in the composer become ``<@U…>`` and ``<#C…>`` as
        Slack's client sends them (slash commands, escaped as the manifest asks: ``<@U…|name>``)."""
        names = {str(u["name"]).lower(): uid for uid, u in self.fake.users.items()}
        channels = {name: cid for cid, name in self.fake.channel_names.items()}

        def person(m: re.Match[str]) -> str:
            uid = names.get(m.group(1).lower())
            if uid is None:
                return m.group(0)
            return f"<@{uid}|{self.fake.users[uid]['name']}>" if escaped else f"<@{uid}>"

        def channel(m: re.Match[str]) -> str:
            cid = channels.get(m.group(1).lower())
            return f"<#{cid}|{m.group(1)}>" if cid else m.group(0)

        text = re.sub(r"(?<![<\w])@([\w.\-]+)", person, text)
        return re.sub(r"(?<![<\w])#([\w\-]+)", channel, text)

"""Slash commands: one definition gives the grammar, the parser, the role check and the help.

    tasks = SlashCommand("/tasks", "Find, claim and work on tasks")

    @tasks.sub("claim", "Claim a task", params=[Param("task", record_id("T", "task"))])
    def claim(ctx: Ctx, args: Args) -> None: ...

`/tasks help` (or `/tasks claim help`) prints usage lines built from these same definitions, so
help and grammar cannot drift. Bad input gets a specific ephemeral error and the subcommand's usage;
a refused role gets a message saying who may do it. Neither runs the handler.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App

from core.authz import Actor, Role, authorize
from core.errors import UsageError, UserError
from core.grammar import TEXT, Kind, Token, tokenize
from core.grammar import shown as _shown
from core.slack import answering, closing_before_slack
from handlers.kit.ack import PromptAck
from handlers.kit.context import Ctx, SlackRequest
from jobs.fairness import Refusal, limits_for
from views.blocks import context, section, sections, slow_down

if TYPE_CHECKING:
    from jobs.runtime import Services

log = logging.getLogger("crewcall.commands")

HELP_WORDS = frozenset({"help", "-h", "--help", "?"})


@dataclass(frozen=True)
class Param:
    """A positional argument. `rest=True` takes the remaining free text (at most one, last);
    `strict=True` refuses a `word=` in that text that is no option, instead of keeping a mistyped
    option as part of a title or name."""

    name: str
    kind: Kind = TEXT
    required: bool = True
    rest: bool = False
    strict: bool = False

    def usage(self) -> str:
        shown = f"{self.kind.placeholder}…" if self.rest else self.kind.placeholder
        return f"<{shown}>" if self.required else f"[{shown}]"


@dataclass(frozen=True)
class Option:
    """A `key=value` option, anywhere on the line."""

    key: str
    kind: Kind
    default: Any = None

    def usage(self) -> str:
        return f"[{self.key}={self.kind.placeholder}]"


class Args:
    """Parsed arguments by name: `args.task`, `args.get("skill")`."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        value = self._values.get(name)
        return default if value is None else value

    def __contains__(self, name: str) -> bool:
        return self._values.get(name) is not None

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


Handler = Callable[[Ctx, Args], None]


@dataclass
class Subcommand:
    name: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    options: tuple[Option, ...] = ()
    role: Role = Role.CONTRACTOR
    action: str = ""
    command: str = ""

    def usage(self) -> str:
        parts = (
            [self.command, self.name] + [p.usage() for p in self.params] + [o.usage() for o in self.options]
        )
        return " ".join(p for p in parts if p)

    def describe(self) -> str:
        who = "" if self.role == Role.CONTRACTOR else f" _({self.role.label}s only)_"
        return f"`{self.usage()}`\n{self.summary}{who}"

    def parse(self, tokens: list[Token], text: str) -> Args:
        try:
            return self._parse(tokens, text)
        except UsageError as e:
            raise UsageError(e.message, e.usage or self.usage()) from None

    def _parse(self, tokens: list[Token], text: str) -> Args:
        options = {o.key: o for o in self.options}
        values: dict[str, Any] = {o.key: o.default for o in self.options}
        positional: list[Token] = []
        rest_param = next((p for p in self.params if p.rest), None)
        given: dict[str, str] = {}
        for token in tokens:
            key, sep, raw = token.text.partition("=")
            if sep and key.lower() in options:
                if key.lower() in given:
                    # `rate=40 rate=60` is ambiguous: never pick one silently.
                    raise UsageError(
                        f"`{key.lower()}=` is given twice (`{_shown(given[key.lower()])}` and "
                        f"`{_shown(token.text)}`). Say it once. Nothing changed.",
                        self.usage(),
                    )
                given[key.lower()] = token.text
                value = _unquote(raw)
                if not value:
                    raise UsageError(
                        f"`{key}=` needs a value, like {options[key.lower()].usage()[1:-1]}.", self.usage()
                    )
                values[key.lower()] = options[key.lower()].kind.parse(value)
            elif sep and key.isidentifier() and key.islower() and (rest_param is None or rest_param.strict):
                known = ", ".join(options) or "none"
                raise UsageError(
                    f"`{_shown(key)}` is not an option of `{self.command} {self.name}` (options: {known}).",
                    self.usage(),
                )
            else:
                positional.append(token)
        for i, param in enumerate(self.params):
            if param.rest:
                chunk = positional[i:]
                free = _join_text(text, chunk)
                positional = positional[:i]
                if not free and param.required:
                    raise UsageError(f"Missing {param.name}.", self.usage())
                values[param.name] = param.kind.parse(free) if free else None
                break
            if i >= len(positional):
                if param.required:
                    raise UsageError(f"Missing {param.name} ({param.kind.placeholder}).", self.usage())
                values[param.name] = None
                continue
            values[param.name] = param.kind.parse(positional[i].unquoted)
        else:
            if len(positional) > len(self.params):
                extra = " ".join(t.text for t in positional[len(self.params) :])
                raise UsageError(f"I didn't understand `{_shown(extra)}`.", self.usage())
        return Args(values)


def _unquote(raw: str) -> str:
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def _join_text(text: str, tokens: Sequence[Token]) -> str:
    """The original text of these tokens, keeping the author's spacing and line breaks; where
    option tokens sat between two of them, only the whitespace before the options is kept."""
    if not tokens:
        return ""
    parts = [tokens[0].text]
    for previous, token in zip(tokens, tokens[1:], strict=False):
        gap = text[previous.end : token.start]
        if gap.strip():
            gap = gap[: len(gap) - len(gap.lstrip())] or " "
        parts.append(gap + token.text)
    return "".join(parts).strip()


class SlashCommand:
    def __init__(self, name: str, summary: str, description: str = "") -> None:
        self.name = name
        self.summary = summary
        self.description = description
        self.subcommands: dict[str, Subcommand] = {}

    def sub(
        self,
        name: str,
        summary: str,
        *,
        params: Sequence[Param] = (),
        options: Sequence[Option] = (),
        role: Role = Role.CONTRACTOR,
        action: str = "",
    ) -> Callable[[Handler], Handler]:
        """Declare a subcommand (`name=""` is what runs when no subcommand word is given).
        `action` completes "Only leads and admins can …" when the role check refuses."""
        rests = [p for p in params if p.rest]
        assert len(rests) <= 1 and (not rests or params[-1].rest), "one rest param, last"

        def decorator(handler: Handler) -> Handler:
            self.subcommands[name] = Subcommand(
                name=name,
                summary=summary,
                handler=handler,
                params=tuple(params),
                options=tuple(options),
                role=role,
                action=action or f"use `{f'{self.name} {name}'.strip()}`",
                command=self.name,
            )
            return handler

        return decorator

    # ---- help ----------------------------------------------------------------------------------

    def help_blocks(self, only: Subcommand | None = None) -> list[dict[str, Any]]:
        subs = [only] if only else list(self.subcommands.values())
        head = f"*{self.name}*: {self.summary}" + (
            f"\n{self.description}" if self.description and not only else ""
        )
        lines = [s.describe() for s in subs]
        blocks = [section(head), *sections(lines, separator="\n\n")]
        blocks.append(
            context("IDs can be typed as T-12, T12 or 12. Options go as key=value anywhere on the line.")
        )
        return blocks

    def help_text(self) -> str:
        return "\n".join([f"{self.name}: {self.summary}"] + [s.usage() for s in self.subcommands.values()])

    # ---- parsing -------------------------------------------------------------------------------

    def resolve(self, text: str) -> tuple[Subcommand, Args] | Subcommand | None:
        """(subcommand, args); a bare Subcommand when help for it was asked; None for the command's help."""
        tokens = tokenize(text)
        if tokens and tokens[0].text.lower() in HELP_WORDS:
            return None
        # A two-word subcommand (`skills add`) wins over its first word (`skills`).
        pair = " ".join(t.text.lower() for t in tokens[:2])
        sub = self.subcommands.get(pair) if len(tokens) >= 2 and " " in pair else None
        if sub is None and tokens:
            sub = self.subcommands.get(tokens[0].text.lower())
        if sub is not None:
            tokens = tokens[len(sub.name.split()) :]
        else:
            sub = self.subcommands.get("")
            takes_words = sub is not None and bool(sub.params)
            if sub is None or (tokens and not takes_words and "=" not in tokens[0].text):
                if not tokens:
                    return None
                names = ", ".join(f"`{n}`" for n in self.subcommands if n)
                raise UsageError(
                    f"`{_shown(tokens[0].text)}` is not a {self.name} subcommand. Try one of: {names}."
                )
        if tokens and tokens[0].text.lower() in HELP_WORDS and not any(p.rest for p in sub.params):
            return sub
        if tokens and len(tokens) == 1 and tokens[0].text.lower() in HELP_WORDS:
            return sub
        return sub, sub.parse(tokens, text)

    # ---- Bolt ----------------------------------------------------------------------------------

    def register(self, app: App, services: Services) -> None:
        def listener(ack: Ack, body: dict[str, Any]) -> None:
            self.dispatch(services, ack, body)

        app.command(self.name)(listener)

    def dispatch(self, services: Services, ack: Ack, body: dict[str, Any]) -> None:
        """Answer one invocation (`body`: the command's form fields): help and usage errors in the
        acknowledgement, anything else through run_handler."""
        text = body.get("text", "") or ""
        try:
            resolved = self.resolve(text)
        except UsageError as e:
            usage = (
                f"\nUsage: `{e.usage}`" if e.usage else f"\nType `{self.name} help` to see what it can do."
            )
            ack(response_type="ephemeral", text=f":warning: {e.message}{usage}")
            return
        if resolved is None or isinstance(resolved, Subcommand):
            blocks = self.help_blocks(resolved)
            ack(response_type="ephemeral", text=self.help_text(), blocks=blocks)
            return
        sub, args = resolved
        request = SlackRequest.from_command(body, sub.name)
        run_handler(
            services, ack, request, sub.role, sub.action, lambda ctx: sub.handler(ctx, args), ack_first=True
        )


def run_handler(
    services: Services,
    ack: Callable[..., Any],
    request: SlackRequest,
    role: Role,
    action: str,
    body: Callable[[Ctx], Any],
    ack_first: bool,
) -> Any:
    """Load the actor, authorize in one place, ack, refresh the profile, run the body.

    A UserError becomes a friendly ephemeral reply; any other exception is logged with a reference
    the user is shown, instead of silence. With ack_first=False (modal submissions) the body runs
    before the ack and acks itself (`ack` must then be callable more than once); it gets the stored
    profile, since no Web API call may come before the ack. The thread is `answering()` throughout:
    no Web API call made here waits out a rate limit."""
    with answering(), services.db.turns.taken():
        return _run_handler(services, ack, request, role, action, body, ack_first)


def _run_handler(
    services: Services,
    ack: Callable[..., Any],
    request: SlackRequest,
    role: Role,
    action: str,
    body: Callable[[Ctx], Any],
    ack_first: bool,
) -> Any:
    # A slash command's acknowledgement is held for its first reply, which rides in it
    # (handlers.kit.ack); a Web API call before that acknowledges first (Ctx.before_slack).
    held = ack if request.kind == "command" and isinstance(ack, PromptAck) else None
    acked = held is not None  # a held ack owes no ack() here: its answer or before_slack sends it
    if role == Role.CONTRACTOR and ack_first and not acked:
        # Everyone may do this: acknowledge before touching the store (the fair-share count
        # included), so the ack stays fast even when the database is busy (a storm of clicks).
        ack()
        acked = True
    ctx = Ctx(services, request, Actor(request.user_id), held=held)
    # The read that loads the actor stays open for the body's first `ctx.read()`: one transaction
    # per request instead of two (see Ctx.read); anything else the body does closes it first.
    # Commands and clicks are counted against the member's share first (jobs.fairness).
    reading = ExitStack()
    try:
        if request.kind in ("command", "action"):
            counting = limits_for(services).commands
            acting = services.directory.counted_acting_in(reading, request.user_id, counting)
        else:
            acting = services.directory.acting_in(reading, request.user_id)
        if isinstance(acting, Refusal):
            if not acked:
                ack()
            if request.kind == "command" or acting.first:
                ctx.reply(slow_down("commands and clicks", acting.retry_at))
            return None
        actor, stale, session = acting
        authorize(actor, role, action)
    except UserError as e:
        reading.close()
        if held is None:
            ack()
        ctx.reply(f":no_entry: {e.message}")
        return None
    except Exception:
        reading.close()
        if not acked:
            ack()
        _report_failure(ctx)
        return None
    if ack_first and not acked:
        ack()
    try:
        if ack_first and stale:
            reading.close()  # users.info is asked outside any transaction
            with closing_before_slack(ctx.before_slack):
                actor = services.directory.refreshed(actor, stale)
        ctx = Ctx(services, request, actor, (session, reading) if session is not None else None, held)
        with closing_before_slack(ctx.before_slack):
            return body(ctx)
    except UserError as e:
        ctx.release()
        if not ack_first:
            ack()  # a modal's: closes it before the reply (no-op when the body acked already)
        ctx.reply(f":warning: {e.message}")
    except Exception:
        ctx.release()
        if not ack_first:
            ack()
        _report_failure(ctx)
    finally:
        ctx.release()
        reading.close()
        if held is not None:
            held()  # a command that has not replied is acknowledged now, not at the deadline
    return None


def _report_failure(ctx: Ctx) -> None:
    ref = uuid.uuid4().hex[:8]
    log.exception("handler failed (ref %s) for %s by %s", ref, ctx.request.source, ctx.request.user_id)
    ctx.reply(failure_notice(ref))


def failure_notice(ref: str) -> str:
    """What a member is told when their request failed on our side; `ref` finds it in the log."""
    return f":boom: Something went wrong on my side (ref `{ref}`). Please try again, or tell a lead this ref."


@dataclass
class CommandSet:
    """Every slash command the app registers, for the manifest check and the README."""

    commands: list[SlashCommand] = field(default_factory=list)

    def add(self, command: SlashCommand) -> SlashCommand:
        self.commands.append(command)
        return command

    def find(self, name: str) -> SlashCommand | None:
        return next((command for command in self.commands if command.name == name), None)

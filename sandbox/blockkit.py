"""Slack's Block Kit rules, checked the way Slack refuses a payload (`invalid_blocks`).

Two layers: slack_sdk's own models (`Block.parse(...).validate_json()`, `View(...).validate_json()`:
a block's first broken rule among section and header text lengths, block_id ≤ 255, field and element
counts, label lengths…) and only the limits those models don't check (action_id ≤ 255, option
values ≤ 150, placeholders ≤ 150, plain_text where Slack requires it, ≤ 10 checkbox and radio
options, confirm dialog lengths, section fields ≤ 2,000, ≤ 50 blocks per message and 100 per modal
or Home tab…), so a rule broken is reported once.

Every problem names where it is (``block 3 (section, block_id=card)``, ``… accessory (button)``)
and the rule broken, so the report of a refused message says what to fix. The fake Slack runs
every message, view and response_url payload through `problems()` / `view_problems()`.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
ID_LIMIT = 255
OPTION_VALUE = 150
PLACEHOLDER = 150
CHOICE_OPTIONS = 10  # checkboxes and radio buttons
SELECT_OPTIONS = 100
_ELEMENT_TEXT = {"button": 75}
_CONFIRM_LIMITS = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
_KNOWN_BLOCKS = {
    "actions", "context", "divider", "file", "header", "image", "input", "section", "video",
    "rich_text", "markdown", "call",
}  # fmt: skip

# slack_sdk logs a warning for each unknown type it parses; the problems list says it instead.
logging.getLogger("slack_sdk.models").setLevel(logging.ERROR)


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else 0


def _describe(i: int, block: dict[str, Any]) -> str:
    block_id = block.get("block_id")
    return f"block {i} ({block.get('type')}" + (f", block_id={block_id})" if block_id else ")")


def _plain(found: list[str], where: str, what: str, obj: Any, limit: int | None = None) -> None:
    """`obj` must be a plain_text object (Slack refuses mrkdwn here), at most `limit` long."""
    if obj is None:
        return
    if not isinstance(obj, dict) or obj.get("type") != "plain_text":
        found.append(f"{where}: {what} must be a plain_text object")
        return
    if limit is not None and _text_len(obj) > limit:
        found.append(f"{where}: {what} longer than {limit} characters ({_text_len(obj)})")


def _options(found: list[str], where: str, element: dict[str, Any]) -> None:
    etype = element.get("type")
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    if etype in ("checkboxes", "radio_buttons") and len(options) > CHOICE_OPTIONS:
        found.append(f"{where}: {etype} has {len(options)} options (at most {CHOICE_OPTIONS})")
    if len(options) > SELECT_OPTIONS:
        found.append(f"{where}: {len(options)} options (at most {SELECT_OPTIONS})")
    initial = element.get("initial_options") or []
    if isinstance(element.get("initial_option"), dict):
        initial = [*initial, element["initial_option"]]
    for option in options + list(initial):
        if not isinstance(option, dict):
            found.append(f"{where}: an option is not an object")
            continue
        if len(str(option.get("value", ""))) > OPTION_VALUE:
            found.append(f"{where}: option value longer than {OPTION_VALUE} characters")
        if etype not in ("checkboxes", "radio_buttons"):
            _plain(found, where, "option text", option.get("text"), 75)


def _element(found: list[str], where: str, element: Any, action_ids: set[str]) -> None:
    if not isinstance(element, dict):
        found.append(f"{where}: element is not an object")
        return
    etype = element.get("type")
    where = f"{where} ({etype})"
    if etype == "button":
        _plain(found, where, "button text", element.get("text"), _ELEMENT_TEXT["button"])
    if len(str(element.get("value", ""))) > 2000:
        found.append(f"{where}: value longer than 2000 characters")
    action_id = element.get("action_id")
    if action_id is not None:
        if len(str(action_id)) > ID_LIMIT:
            found.append(f"{where}: action_id longer than {ID_LIMIT} characters")
        if action_id in action_ids:
            found.append(f"{where}: duplicate action_id {action_id} in the block")
        action_ids.add(action_id)
    _plain(found, where, "placeholder", element.get("placeholder"), PLACEHOLDER)
    confirm = element.get("confirm")
    if isinstance(confirm, dict):
        for key, limit in _CONFIRM_LIMITS.items():
            if key == "text":
                if _text_len(confirm.get(key)) > limit:
                    found.append(f"{where}: confirm text longer than {limit} characters")
            else:
                _plain(found, where, f"confirm {key}", confirm.get(key), limit)
    _options(found, where, element)


def _block(found: list[str], i: int, block: dict[str, Any], block_ids: set[str]) -> None:
    kind = block["type"]
    where = _describe(i, block)
    if kind not in _KNOWN_BLOCKS:
        found.append(f"{where}: unknown block type {kind!r}")
        return
    try:
        parsed = Block.parse(block)
        if parsed is not None:
            parsed.validate_json()
    except SlackObjectFormationError as e:
        found.append(f"{where}: {e}")
    except (TypeError, AttributeError, KeyError, ValueError) as e:
        found.append(f"{where}: malformed ({e})")
    block_id = block.get("block_id")
    if block_id is not None:
        if block_id in block_ids:
            found.append(f"{where}: duplicate block_id {block_id}")
        block_ids.add(block_id)
    if kind == "header":
        _plain(found, where, "header text", block.get("text"))
    if kind == "input":
        _plain(found, where, "label", block.get("label"))
        _plain(found, where, "hint", block.get("hint"))
    if kind == "section":
        if block.get("text") is not None and not _text_len(block["text"]):
            found.append(f"{where}: empty text")
        if any(_text_len(f) > 2000 for f in block.get("fields") or []):
            found.append(f"{where}: a field longer than 2000 characters")
    if kind in ("context", "actions") and not block.get("elements"):
        found.append(f"{where}: no elements (a {kind} block needs at least one)")
    action_ids: set[str] = set()  # Slack wants them unique within a block
    if kind == "actions":
        for n, element in enumerate(block.get("elements") or []):
            _element(found, f"{where} element {n}", element, action_ids)
    for key in ("accessory", "element"):
        if key in block:
            _element(found, f"{where} {key}", block[key], action_ids)


def problems(blocks: Any, max_blocks: int = MESSAGE_BLOCKS) -> list[str]:
    """Everything Slack would refuse in these blocks, each naming the block and the rule; empty
    when they are fine."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    found: list[str] = []
    if len(blocks) > max_blocks:
        found.append(f"{len(blocks)} blocks (at most {max_blocks})")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            found.append(f"block {i}: has no type")
            continue
        _block(found, i, block, block_ids)
    return found


def view_problems(view: Any) -> list[str]:
    """Everything Slack would refuse in a modal or Home tab view."""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return ["view must be an object of type modal or home"]
    found = problems(view.get("blocks", []), VIEW_BLOCKS)
    if view.get("type") == "modal":
        _plain(found, "modal", "title", view.get("title"), 24)
        if "title" not in view:
            found.append("modal: a modal needs a title")
        for key in ("submit", "close"):
            _plain(found, "modal", key, view.get(key), 24)
        if not view.get("submit") and any(
            isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or []
        ):
            found.append("modal: a modal with input blocks needs a submit button")
    if len(view.get("private_metadata", "") or "") > 3000:
        found.append(f"{view.get('type')}: private_metadata longer than 3000 characters")
    if len(view.get("callback_id", "") or "") > ID_LIMIT:
        found.append(f"{view.get('type')}: callback_id longer than {ID_LIMIT} characters")
    if not found and (view.get("blocks") or view.get("type") == "modal"):  # an empty Home tab is fine
        try:
            View(**view).validate_json()
        except SlackObjectFormationError as e:
            found.append(f"{view.get('type')}: {e}")
        except (TypeError, AttributeError, KeyError, ValueError) as e:
            found.append(f"{view.get('type')}: malformed ({e})")
    return found

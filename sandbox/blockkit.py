"""Slack's Block Kit limits, checked the way Slack rejects a payload (`invalid_blocks`).

The fake Slack runs every message, view and response_url payload through `problems()`, so a test
that renders something Slack would refuse fails where it happens.
"""

from __future__ import annotations

from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
_TEXT_LIMITS = {"section": 3000, "header": 150}
_ELEMENT_TEXT = {"button": 75}


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else 0


def problems(blocks: Any, max_blocks: int = MESSAGE_BLOCKS) -> list[str]:
    """Everything Slack would refuse in these blocks; empty when they are fine."""
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
            found.append(f"block {i} has no type")
            continue
        kind = block["type"]
        where = f"block {i} ({kind})"
        if block.get("block_id"):
            if block["block_id"] in block_ids:
                found.append(f"{where}: duplicate block_id {block['block_id']}")
            block_ids.add(block["block_id"])
        limit = _TEXT_LIMITS.get(kind)
        if limit and _text_len(block.get("text")) > limit:
            found.append(f"{where}: text longer than {limit}")
        if kind == "section":
            if not block.get("text") and not block.get("fields"):
                found.append(f"{where}: needs text or fields")
            if block.get("text") is not None and not _text_len(block["text"]):
                found.append(f"{where}: empty text")
            fields = block.get("fields") or []
            if len(fields) > 10 or any(_text_len(f) > 2000 for f in fields):
                found.append(f"{where}: at most 10 fields of 2000 characters")
        if kind == "context" and not 1 <= len(block.get("elements") or []) <= 10:
            found.append(f"{where}: 1 to 10 elements")
        if kind == "actions" and not 1 <= len(block.get("elements") or []) <= 25:
            found.append(f"{where}: 1 to 25 elements")
        elements = list(block.get("elements") or []) if kind == "actions" else []
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        action_ids: set[str] = set()  # Slack wants them unique within a block
        for element in elements:
            etype = element.get("type")
            if etype in _ELEMENT_TEXT and _text_len(element.get("text")) > _ELEMENT_TEXT[etype]:
                found.append(f"{where}: {etype} text longer than {_ELEMENT_TEXT[etype]}")
            if len(str(element.get("value", ""))) > 2000:
                found.append(f"{where}: {etype} value longer than 2000")
            action_id = element.get("action_id")
            if action_id:
                if action_id in action_ids:
                    found.append(f"{where}: duplicate action_id {action_id}")
                action_ids.add(action_id)
    return found


def view_problems(view: dict[str, Any]) -> list[str]:
    found = problems(view.get("blocks", []), VIEW_BLOCKS)
    if view.get("type") == "modal":
        for key, limit in (("title", 24), ("submit", 24), ("close", 24)):
            if _text_len(view.get(key)) > limit:
                found.append(f"modal {key} longer than {limit}")
    if len(view.get("private_metadata", "") or "") > 3000:
        found.append("private_metadata longer than 3000")
    return found

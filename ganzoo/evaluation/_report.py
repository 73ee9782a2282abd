"""Short plain-text tables of scores, for the command line."""

from __future__ import annotations

from typing import Any

from ._scoring import SCORE_KEYS as ORDER


def _value(scores: dict[str, Any], key: str, std: dict[str, Any] | None = None) -> str:
    value = scores.get(key)
    if value is None:
        return "-"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    spread = (std or {}).get(key)
    if key in ("kid", "is") and spread is None:
        spread = scores.get(f"{key}_std")
    return f"{text}±{spread:.2g}" if spread is not None else text


def format_scores(scores: dict[str, Any], std: dict[str, Any] | None = None) -> str:
    keys = [k for k in ORDER if k in scores]
    width = max([len(k) for k in keys] + [5])
    return "\n".join(f"  {k:<{width}}  {_value(scores, k, std)}" for k in keys)


def format_record(record: dict[str, Any]) -> str:
    protocol = record.get("protocol", {})
    extractor = protocol.get("feature_extractor") or {}
    reference = protocol.get("reference", {})
    lines = [
        f"{record['name']}  status {record['status']}  recipe {record['recipe_hash']}  "
        f"seeds {record['n_seeds']}",
        f"  protocol: {extractor.get('name', 'raw samples')}"
        + (f" ({extractor['weights_hash']})" if extractor else "")
        + f", n_fake {protocol.get('n_fake')} vs n_real {protocol.get('n_real')} "
        f"({reference.get('dataset')}:{reference.get('split')})",
    ]
    if record["status"] == "ok":
        lines.append(f"  final checkpoint ({record.get('kimg', 0):.1f} kimg):")
        lines.append(format_scores(record, record.get("std")))
        if "best" in record:
            best = record["best"]
            lines.append(f"  best checkpoint ({best.get('kimg', 0):.1f} kimg):")
            lines.append(format_scores(best, best.get("std")))
    else:
        lines.extend(f"  error: {e}" for e in record.get("errors", []))
    if "record" in record:
        lines.append(f"  record: {record['record']}")
    return "\n".join(lines)

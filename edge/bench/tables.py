"""Markdown for bench results: the table ``edgeface bench`` prints and the cell formats
that ``edgeface bench report`` shares."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from edgeface.bench.stats import STAGES


def fmt_num(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{nd}f}"


def fmt_mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.2f}"


def frames_note(doc: Mapping[str, Any]) -> str:
    """``16 widerface-val-416 images at 640x480`` / ``synthetic frames (no faces) at ...``."""
    f = doc["settings"].get("frames") or {}
    size = f.get("size")
    size = f"{size[0]}x{size[1]}" if isinstance(size, list) else "their stored size"
    what = (f"{f.get('count')} images from {f.get('source')}" if f.get("kind") == "images"
            else "synthetic frames (no faces)")
    return f"{what} at {size}"


def load_note(doc: Mapping[str, Any]) -> str:
    """``load average 8.1 -> 9.2 on 2 cores`` (1-minute, start and end), or ''."""
    cond = doc.get("conditions") or {}
    start, end = cond.get("loadavg_start"), cond.get("loadavg_end")
    if not start:
        return ""
    span = f"{start[0]:.1f}" + (f" -> {end[0]:.1f}" if end else "")
    return f"load average {span} on {doc['platform'].get('cores')} cores"


def thermal_note(doc: Mapping[str, Any]) -> str:
    """``SoC 52.1 -> 71.3 °C``, then ``THROTTLED (soft temperature limit)`` when the run was
    (or may have been) slowed; '' for results recorded before thermals were."""
    cond = doc.get("conditions") or {}
    start, end = cond.get("thermal_start") or {}, cond.get("thermal_end") or {}
    t0, t1 = start.get("soc_c"), end.get("soc_c")
    parts = []
    if t0 is not None or t1 is not None:
        parts.append("SoC " + " -> ".join(f"{t:.1f}" for t in (t0, t1) if t is not None) + " °C")
    if cond.get("throttling"):
        parts.append(f"THROTTLED ({', '.join(cond['throttling'])})")
    return ", ".join(parts)


def throttled(doc: Mapping[str, Any]) -> bool:
    return bool((doc.get("conditions") or {}).get("throttling"))


def ratio_lookup(doc: Mapping[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(label, threads) -> ratio record; the baseline of each thread count maps to 1.0."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in doc.get("ratios", []):
        out[(r["model"], r["threads"])] = r
        out.setdefault((r["baseline"], r["threads"]), {"p50_ratio": 1.0})
    return out


def markdown_table(doc: Mapping[str, Any]) -> str:
    """One run as a Markdown table (what ``edgeface bench`` prints)."""
    from edgeface.system.platform import describe

    ratios = ratio_lookup(doc)
    st = doc["settings"]
    what = frames_note(doc) if doc["mode"] == "model" else f"source {st.get('source')}"
    lines = [f"**{describe(doc['platform'])}** — {doc['mode']} mode, {what}, "
             f"{st['runs']} runs after {st['warmup']} warm-up per model and thread count"
             + (f", {load_note(doc)}" if load_note(doc) else "")
             + (f", {thermal_note(doc)}" if thermal_note(doc) else "")
             + (", INTERRUPTED (partial)" if doc.get("interrupted") else ""), ""]
    lines += ["| Model | Threads | p50 ms | p90 ms | p99 ms | mean ms | pre / infer / post "
              "p50 ms | FPS | peak RSS MB | model RSS MB | size MB | p50 vs first model |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["results"]:
        lines.append(_row(r, ratios))
    return "\n".join(lines)


def _row(r: Mapping[str, Any], ratios: Mapping[tuple[str, int], Any],
         prefix: Sequence[str] = ()) -> str:
    lat = r["latency_ms"]
    st = r.get("stages_ms") or {}
    split = " / ".join(fmt_num((st.get(s) or {}).get("p50"), 2) for s in STAGES) if st else "—"
    ratio = ratios.get((r["model"]["label"], r["threads"]))
    rel = f"{ratio['p50_ratio']:.2f}×" if ratio else "—"
    cells = [*prefix, r["model"]["label"], str(r["threads"]), fmt_num(lat.get("p50"), 2),
             fmt_num(lat.get("p90"), 2), fmt_num(lat.get("p99"), 2),
             fmt_num(lat.get("mean"), 2), split,
             fmt_num(r.get("throughput_fps")), fmt_num(r.get("peak_rss_mb")),
             fmt_num(r.get("model_rss_mb")), fmt_mb(r["model"].get("size_bytes")), rel]
    return "| " + " | ".join(cells) + " |"

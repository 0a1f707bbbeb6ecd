"""Compare two `edgeface detect --json` files: the same images, run on two platforms.

Faces are paired greedily by IoU (highest first, IoU >= --min-iou); a face left without a
partner, or a different face count, is a mismatch. For each pair the largest coordinate
difference of the box (px, original image) and the score difference are checked against
the tolerances; landmarks are reported too. Prints one row per image and exits 1 on any
mismatch, 2 on unusable input.

Uses only the standard library, so it runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def load(path: Path) -> dict[str, list[dict]]:
    records = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if "faces" not in rec:
            raise ValueError(f"{path}:{n}: no 'faces' (error record: {rec.get('error')!r})")
        records[rec["image"]] = rec["faces"]
    if not records:
        raise ValueError(f"{path}: no detections records")
    return records


def iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pair(faces_a: list[dict], faces_b: list[dict], min_iou: float):
    """Greedy IoU matching: (pairs [(i, j)], unmatched a indices, unmatched b indices)."""
    cands = sorted(((iou(fa["box"], fb["box"]), i, j)
                    for i, fa in enumerate(faces_a) for j, fb in enumerate(faces_b)),
                   reverse=True)
    used_a, used_b, pairs = set(), set(), []
    for v, i, j in cands:
        if v < min_iou:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return (pairs, [i for i in range(len(faces_a)) if i not in used_a],
            [j for j in range(len(faces_b)) if j not in used_b])


def max_abs(xs, ys) -> float:
    return max((abs(x - y) for x, y in zip(xs, ys)), default=0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="reference JSON lines (e.g. x86-64)")
    ap.add_argument("b", type=Path, help="JSON lines to check (e.g. aarch64)")
    ap.add_argument("--names", default="a,b", help="column names for a and b")
    ap.add_argument("--box-tol", type=float, default=1.0, help="px (default 1)")
    ap.add_argument("--score-tol", type=float, default=1e-3, help="(default 1e-3)")
    ap.add_argument("--min-iou", type=float, default=0.5, help="to pair two faces")
    args = ap.parse_args(argv)
    name_a, name_b = args.names.split(",")
    try:
        ra, rb = load(args.a), load(args.b)
    except (OSError, ValueError) as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2

    bad = []
    worst = {"box": 0.0, "score": 0.0, "landmarks": 0.0}
    header = (f"{'image':<44} {name_a:>6} {name_b:>6} {'paired':>6} "
              f"{'box px':>8} {'score':>8} {'lmk px':>8}  verdict")
    print(header)
    print("-" * len(header))
    for image in sorted(set(ra) | set(rb)):
        label = image if len(image) <= 44 else "..." + image[-41:]
        if image not in ra or image not in rb:
            print(f"{label:<44} {'only in ' + (name_a if image in ra else name_b)}  MISMATCH")
            bad.append(f"{image}: only in one file")
            continue
        fa, fb = ra[image], rb[image]
        pairs, lone_a, lone_b = pair(fa, fb, args.min_iou)
        dbox = max((max_abs(fa[i]["box"], fb[j]["box"]) for i, j in pairs), default=0.0)
        dscore = max((abs(fa[i]["score"] - fb[j]["score"]) for i, j in pairs), default=0.0)
        dlmk = max((max_abs(sum(fa[i].get("landmarks") or [], []),
                            sum(fb[j].get("landmarks") or [], [])) for i, j in pairs),
                   default=0.0)
        for key, v in (("box", dbox), ("score", dscore), ("landmarks", dlmk)):
            worst[key] = max(worst[key], v)
        why = []
        if len(fa) != len(fb):
            why.append(f"{len(fa)} vs {len(fb)} faces")
        if lone_a or lone_b:
            lone = [f"{name_a}:{fa[i]['score']:.4f}" for i in lone_a]
            lone += [f"{name_b}:{fb[j]['score']:.4f}" for j in lone_b]
            why.append("unpaired " + " ".join(lone))
        if dbox > args.box_tol:
            why.append(f"box {dbox:.2f} px > {args.box_tol}")
        if dscore > args.score_tol:
            why.append(f"score {dscore:.4f} > {args.score_tol}")
        print(f"{label:<44} {len(fa):>6} {len(fb):>6} {len(pairs):>6} "
              f"{dbox:>8.2f} {dscore:>8.4f} {dlmk:>8.2f}  {'MISMATCH' if why else 'ok'}")
        if why:
            bad.append(f"{image}: " + "; ".join(why))
    print("-" * len(header))
    print(f"max differences over {len(set(ra) | set(rb))} images: box {worst['box']:.2f} px, "
          f"score {worst['score']:.4f}, landmarks {worst['landmarks']:.2f} px "
          f"(tolerances: box {args.box_tol} px, score {args.score_tol}; landmarks not checked)")
    if bad:
        print(f"MISMATCH in {len(bad)} image(s):")
        for line in bad:
            print(f"  {line}")
        return 1
    print(f"{name_a} and {name_b} agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())

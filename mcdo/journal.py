"""``claims.jsonl`` as the journal of a ``mcdo claims`` run: every record is appended as it is decided, so a killed
run loses nothing; ``--resume`` reuses the records a journal holds for the same commit and settings (a pair whose
evaluator failed is evaluated again). At the end of a run the report rewrites the file whole (``report.write``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .io import write_text_atomic
from .verify.records import Record

# how much work a (claim, tier) is, in seconds, when no earlier report says: the proxy tier trains and samples
# the proxies, every other tier reads files or runs a small simulation
TIER_WORK = {"math": 3.0, "arch": 3.0, "recorded": 5.0, "proxy": 60.0, "gpu": 2.0}


class Journal:
    """The journal of one run. With ``resume``, the records of the earlier run with the same ``key``: a (claim,
    tier) pair counts as done only when every one of its records is there (each line carries its pair's record
    count and its place in it), so a line cut by a kill or a full disk, or one damaged later, makes its pair be
    evaluated again; ``damaged`` names such lines (1-based) and ``incomplete`` their pairs."""

    def __init__(self, path: Path, key: dict, resume: bool = False) -> None:
        self.path, self.key = Path(path), key
        self.done: dict[tuple[str, str], list[Record]] = {}
        self.damaged: list[int] = []
        self.incomplete: list[tuple[str, str]] = []
        lines: dict[tuple[str, str], dict[int, str]] = {}
        found: dict[tuple[str, str], dict[int, Record]] = {}
        counts: dict[tuple[str, str], int] = {}
        if resume and self.path.is_file():
            for number, line in enumerate(self.path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                try:
                    d = json.loads(line)
                    if not isinstance(d, dict):
                        raise ValueError("not a record")
                    if d.pop("resume_key", None) != key:
                        continue
                    count, index = int(d.pop("pair_count")), int(d.pop("pair_index"))
                    r = Record.from_dict(d)
                except (ValueError, KeyError, TypeError):  # a line a kill cut short, or damaged since
                    self.damaged.append(number)
                    continue
                pair = (r.id, r.tier)
                counts[pair] = count
                found.setdefault(pair, {})[index] = r
                lines.setdefault(pair, {})[index] = line
            for pair, got in found.items():
                if set(got) != set(range(counts[pair])):
                    self.incomplete.append(pair)
                elif not any(r.reason.startswith("evaluator error") for r in got.values()):
                    self.done[pair] = [got[i] for i in range(counts[pair])]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = "".join(lines[p][i] + "\n" for p in self.done for i in range(len(self.done[p])))
        write_text_atomic(self.path, kept)  # replaced whole: a full disk never leaves half of it

    def append(self, records: list[Record]) -> None:
        """Add one pair's records to the journal, on disk before the next pair starts; each line says how many
        records its pair has and which one it is."""
        with open(self.path, "a", encoding="utf-8") as f:
            for i, r in enumerate(records):
                f.write(json.dumps({**r.as_dict(), "resume_key": self.key, "pair_count": len(records),
                                    "pair_index": i}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def work(pairs: list[tuple[str, str]], earlier: list[Record]) -> dict[tuple[str, str], float]:
    """Each pair's share of the progress bar: its seconds in the earlier report when there is one, else its tier's
    typical work (so the bar does not race through the cheap tiers and stall on the proxies)."""
    took: dict[tuple[str, str], float] = {}
    for r in earlier:
        took[(r.id, r.tier)] = took.get((r.id, r.tier), 0.0) + r.elapsed_s
    return {p: max(took.get(p, 0.0), 0.5) if p in took else TIER_WORK.get(p[1], 5.0) for p in pairs}


def usage() -> tuple[float, ...]:
    """This process's (wall, user, system seconds, minor page faults, peak resident MB) so far."""
    import resource
    import sys
    import time

    u = resource.getrusage(resource.RUSAGE_SELF)
    rss = u.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux
    return time.perf_counter(), u.ru_utime, u.ru_stime, float(u.ru_minflt), rss


def usage_since(before: tuple[float, ...]) -> dict[str, float]:
    """What one step cost: wall, user and system seconds, minor faults, and the peak resident set after it."""
    now = usage()
    return dict(wall_s=round(now[0] - before[0], 2), user_s=round(now[1] - before[1], 2),
                sys_s=round(now[2] - before[2], 2), minor_faults=int(now[3] - before[3]), peak_rss_mb=round(now[4]))

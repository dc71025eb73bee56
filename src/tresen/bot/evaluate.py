"""`tresen bot eval`: fit as the product does, answer each test row as a live message would be."""

from __future__ import annotations

import csv
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tresen.bot.kb import KnowledgeBase, load_kb
from tresen.bot.matcher import OOS, Matcher, new_matcher

Progress = Callable[[str], None]


class DataError(ValueError):
    """An input file is missing, unreadable or has the wrong columns (the message says which)."""


def read_intent_csv(path: str | Path) -> tuple[list[str], list[str]]:
    """Rows of a `text,label` CSV; raises DataError naming the file, line and problem."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            missing = [c for c in ("text", "label") if c not in fields]
            if missing:
                raise DataError(
                    f"{path}: needs the columns text,label; missing {', '.join(missing)} "
                    f"(header: {','.join(fields) or 'empty file'})"
                )
            texts: list[str] = []
            labels: list[str] = []
            for row in reader:
                label = (row.get("label") or "").strip()
                if not label:
                    raise DataError(f"{path}: line {reader.line_num}: empty label")
                texts.append(row.get("text") or "")
                labels.append(label)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not texts:
        raise DataError(f"{path}: no rows")
    return texts, labels


def write_intent_csv(path: str | Path, texts: Sequence[str], labels: Sequence[str]) -> None:
    """Write a `text,label` CSV."""
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))


def stratified_split(
    texts: Sequence[str], labels: Sequence[str], test_share: float = 0.2, seed: int = 13
) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """Deterministic per-label split: round(share * n) rows of each label go to the test side."""
    if not 0.0 < test_share < 1.0:
        raise ValueError("test_share must be between 0 and 1")
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    test_idx: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        k = round(test_share * len(idx))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        test_idx.update(idx[:k])
    train = [i for i in range(len(texts)) if i not in test_idx]
    test = sorted(test_idx)
    return (
        ([texts[i] for i in train], [labels[i] for i in train]),
        ([texts[i] for i in test], [labels[i] for i in test]),
    )


def build_matcher(
    texts: Sequence[str],
    labels: Sequence[str],
    backend: str = "default",
    default_language: str | None = None,
) -> Matcher:
    """The matcher the product would build from these rows (languages taken from the data)."""
    return new_matcher(backend, default_language).fit(texts, labels)


def kb_training_rows(
    kb: KnowledgeBase, extra: tuple[list[str], list[str]] | None = None
) -> tuple[list[str], list[str]]:
    """Training rows of a knowledge base plus extra phrasings; extra labels must be FAQ ids."""
    texts, labels = kb.training_rows()
    if extra is not None:
        unknown = sorted({lab for lab in extra[1] if lab not in kb.by_id})
        if unknown:
            raise DataError(
                f"extra training rows have labels that are no FAQ id: {', '.join(unknown[:5])}"
            )
        texts, labels = texts + extra[0], labels + extra[1]
    return texts, labels


def score(gold: Sequence[str], predicted: Sequence[str | None]) -> dict[str, float | None]:
    """In-scope accuracy, oos recall/precision and macro-F1 (declined counts as "oos")."""
    g = np.asarray(gold, dtype=object)
    p = np.asarray([OOS if x is None else x for x in predicted], dtype=object)
    ins = g != OOS
    oos_rows = int((~ins).sum())
    declined = p == OOS
    result: dict[str, float | None] = {
        "in_scope_accuracy": float(np.mean(p[ins] == g[ins])) if ins.any() else None,
        "oos_recall": float(np.mean(declined[~ins])) if oos_rows else None,
        "oos_precision": (
            (float(np.mean(g[declined] == OOS)) if declined.any() else 0.0) if oos_rows else None
        ),
    }
    f1s = []
    for label in sorted(set(g.tolist())):
        tp = float(np.sum((p == label) & (g == label)))
        fp = float(np.sum((p == label) & (g != label)))
        fn = float(np.sum((p != label) & (g == label)))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    result["macro_f1"] = float(np.mean(f1s))
    return result


def run_eval(
    test: tuple[list[str], list[str]],
    *,
    train: tuple[list[str], list[str]] | None = None,
    kb: KnowledgeBase | None = None,
    extra: tuple[list[str], list[str]] | None = None,
    backend: str = "default",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit on `train` (or the knowledge base), answer every test row one at a time, score."""
    say = progress or (lambda message: print(message, file=sys.stderr))
    if kb is not None:
        texts, labels = kb_training_rows(kb, extra)
        language: str | None = kb.language
    elif train is not None:
        texts, labels = train
        language = None
    else:
        raise ValueError("run_eval needs train rows or a knowledge base")
    known = set(labels) | {OOS}
    unknown = sorted({lab for lab in test[1] if lab not in known})
    if unknown:
        raise DataError(f"test labels not in the training data: {', '.join(unknown[:5])}")
    say(f"training on {len(texts)} rows, {len(set(labels) - {OOS})} labels, backend {backend}")
    started = time.perf_counter()
    matcher = build_matcher(texts, labels, backend, language)
    train_seconds = time.perf_counter() - started
    cal = matcher.calibration
    say(
        f"trained in {train_seconds:.1f}s; threshold {cal.threshold:.3f} fitted on "
        f"{cal.n_in_scope} cross-validated rows and {cal.n_oos} unknown-question rows "
        f"({cal.oos_source})"
    )
    predicted: list[str | None] = []
    timings: list[float] = []
    for n, text in enumerate(test[0], start=1):
        t0 = time.perf_counter()
        match = matcher.match(text)
        timings.append((time.perf_counter() - t0) * 1000.0)
        predicted.append(match.label)
        if n % 1000 == 0:
            say(f"answered {n}/{len(test[0])}")
    result: dict[str, Any] = {"n": len(test[0])}
    result.update(
        {k: None if v is None else round(v, 4) for k, v in score(test[1], predicted).items()}
    )
    result["ms_per_query_p50"] = round(float(np.percentile(timings, 50)), 3)
    result["ms_per_query_p95"] = round(float(np.percentile(timings, 95)), 3)
    result["train_seconds"] = round(train_seconds, 2)
    result["backend"] = backend
    result["threshold"] = round(cal.threshold, 4)
    return result


def load_eval_inputs(
    train: Path | None, test: Path, faq: Path | None, extra_train: Path | None
) -> dict[str, Any]:
    """Read and check the files `bot eval` was given; raises DataError on bad input."""
    if (train is None) == (faq is None):
        raise DataError("give either --train or --faq (exactly one)")
    if extra_train is not None and faq is None:
        raise DataError("--extra-train only goes with --faq")
    inputs: dict[str, Any] = {"test": read_intent_csv(test)}
    if train is not None:
        inputs["train"] = read_intent_csv(train)
    if faq is not None:
        inputs["kb"] = load_kb(faq)
    if extra_train is not None:
        inputs["extra"] = read_intent_csv(extra_train)
    return inputs


def synthetic_kb_rows(
    texts: Sequence[str], labels: Sequence[str], entries: int, per_entry: int = 3, seed: int = 13
) -> tuple[list[str], list[str]]:
    """A knowledge base of `entries` FAQ ids, each with `per_entry` phrasings of one intent."""
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(texts, labels, strict=True):
        if label != OOS:
            by_label[label].append(text)
    pools = {lab: rng.sample(rows, len(rows)) for lab, rows in sorted(by_label.items())}
    out_texts: list[str] = []
    out_labels: list[str] = []
    names = sorted(pools)
    for n in range(entries):
        label = names[n % len(names)]
        chunk = [pools[label].pop() for _ in range(per_entry) if pools[label]]
        if not chunk:
            raise DataError(f"not enough rows for {entries} entries of {per_entry} phrasings")
        out_texts.extend(chunk)
        out_labels.extend([f"{label}#{n}"] * len(chunk))
    return out_texts, out_labels


def run_latency(
    source: tuple[list[str], list[str]],
    queries: Sequence[str],
    entries: int = 1000,
    backend: str = "default",
    progress: Progress | None = None,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Per-query latency of `match` against a synthetic knowledge base of `entries` FAQs, then
    throughput with `concurrency` threads answering at once (messages/s, and per CPU second)."""
    say = progress or (lambda message: print(message, file=sys.stderr))
    texts, labels = synthetic_kb_rows(*source, entries=entries)
    say(f"indexing {entries} synthetic entries ({len(texts)} phrasings), backend {backend}")
    started = time.perf_counter()
    matcher = build_matcher(texts, labels, backend, "en")
    train_seconds = time.perf_counter() - started
    say(f"indexed in {train_seconds:.1f}s; answering {len(queries)} queries one at a time")
    timings, cpu = [], []
    for text in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        matcher.match(text)
        timings.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    result: dict[str, Any] = {
        "entries": entries,
        "phrasings": len(texts),
        "queries": len(timings),
        "ms_per_query_p50": round(float(np.percentile(timings, 50)), 3),
        "ms_per_query_p95": round(float(np.percentile(timings, 95)), 3),
        "ms_per_query_max": round(float(np.max(timings)), 3),
        "cpu_ms_per_query_p50": round(float(np.percentile(cpu, 50)), 3),
        "cpu_ms_per_query_p95": round(float(np.percentile(cpu, 95)), 3),
        "train_seconds": round(train_seconds, 2),
        "backend": backend,
    }
    result.update(_load(matcher, queries, concurrency, say))
    return result


def _load(
    matcher: Matcher, queries: Sequence[str], concurrency: int, say: Progress
) -> dict[str, Any]:
    """All queries answered by `concurrency` threads at once: wall and CPU throughput."""
    say(f"load: {len(queries)} queries by {concurrency} concurrent workers")
    pending = iter(list(queries))
    lock = threading.Lock()
    latencies: list[float] = []

    def worker() -> None:
        while True:
            with lock:
                text = next(pending, None)
            if text is None:
                return
            t0 = time.perf_counter()
            matcher.match(text)
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000.0)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "concurrency": max(1, concurrency),
        "load_messages_per_s": round(len(latencies) / wall, 1),
        "load_messages_per_cpu_s": round(len(latencies) / max(cpu, 1e-9), 1),
        "load_ms_per_query_p95": round(float(np.percentile(latencies, 95)), 3),
    }

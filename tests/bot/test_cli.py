"""`tresen bot eval` and `tresen bot split` through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.bot.kbdata import KB_YAML
from tresen.cli import app

runner = CliRunner()

KEYS = {
    "n",
    "in_scope_accuracy",
    "oos_recall",
    "oos_precision",
    "macro_f1",
    "ms_per_query_p50",
    "ms_per_query_p95",
    "train_seconds",
    "backend",
}

TRAIN = [
    ("wann habt ihr offen", "hours"),
    ("öffnungszeiten bitte", "hours"),
    ("seid ihr samstag da", "hours"),
    ("was kostet der versand", "shipping"),
    ("versandkosten?", "shipping"),
    ("ist lieferung gratis", "shipping"),
    ("kann ich zurückgeben", "returns"),
    ("rücksendung wie", "returns"),
    ("umtausch möglich", "returns"),
    ("wie wird das wetter", "oos"),
]
TEST = [
    ("offnungszeiten samstag", "hours"),
    ("versand kosten", "shipping"),
    ("erzähl einen witz", "oos"),
]


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows), encoding="utf-8")
    return path


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_eval_train_test_prints_one_json_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "bot",
            "eval",
            "--train",
            str(_csv(tmp_path / "tr.csv", TRAIN)),
            "--test",
            str(_csv(tmp_path / "te.csv", TEST)),
        ],
    )
    assert result.exit_code == 0, result.output
    data = _last_json(result.stdout)
    assert set(data) >= KEYS
    assert data["n"] == 3 and data["backend"] == "default"


def test_eval_faq_with_extra_train(tmp_path: Path) -> None:
    kb = tmp_path / "kb.yaml"
    kb.write_text(
        "business: X\nlanguage: de\nfaqs:\n"
        "  - {id: hours, questions: ['Wann habt ihr offen?'], answer: 9-18 Uhr}\n"
        "  - {id: shipping, questions: ['Was kostet der Versand?'], answer: '4,90 Euro'}\n",
        encoding="utf-8",
    )
    extra = _csv(
        tmp_path / "extra.csv", [("öffnungszeiten", "hours"), ("versandkosten", "shipping")]
    )
    test = _csv(
        tmp_path / "te.csv", [("offen am samstag?", "hours"), ("versand preis", "shipping")]
    )
    result = runner.invoke(
        app, ["bot", "eval", "--faq", str(kb), "--test", str(test), "--extra-train", str(extra)]
    )
    assert result.exit_code == 0, result.output
    data = _last_json(result.stdout)
    assert set(data) >= KEYS
    assert data["oos_recall"] is None and data["oos_precision"] is None


def test_eval_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("question,intent\nx,y\n", encoding="utf-8")
    good = _csv(tmp_path / "tr.csv", TRAIN)
    cases = [
        ["--train", str(bad), "--test", str(good)],
        ["--train", str(good), "--test", str(tmp_path / "missing.csv")],
        ["--test", str(good)],
        ["--train", str(good), "--test", str(good), "--backend", "nope"],
        ["--faq", str(good), "--test", str(good)],
    ]
    for args in cases:
        result = runner.invoke(app, ["bot", "eval", *args])
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output


def test_split_is_deterministic_and_stratified(tmp_path: Path) -> None:
    rows = [(f"text {i}", f"l{i % 3}") for i in range(30)]
    src = _csv(tmp_path / "all.csv", rows)
    outs = []
    for n in range(2):
        tr, te = tmp_path / f"tr{n}.csv", tmp_path / f"te{n}.csv"
        result = runner.invoke(
            app, ["bot", "split", str(src), "--out-train", str(tr), "--out-test", str(te)]
        )
        assert result.exit_code == 0, result.output
        assert _last_json(result.stdout) == {"train": 24, "test": 6, "labels": 3, "seed": 13}
        outs.append(te.read_text(encoding="utf-8"))
    assert outs[0] == outs[1]


def test_import_faq_imports_and_a_bad_file_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    good = tmp_path / "faq.yaml"
    good.write_text(KB_YAML, encoding="utf-8")
    result = runner.invoke(app, ["bot", "import-faq", str(good)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["imported"] == 5

    def keys() -> list[str]:
        with sqlite3.connect(tmp_path / "data" / "tresen.db") as db:
            return [k for (k,) in db.execute("SELECT key FROM bot_faqs ORDER BY position")]

    before = keys()
    assert before == ["oeffnungszeiten", "versand", "rueckgabe", "schuhe", "zahlung"]
    broken = KB_YAML.replace('      de: "Der Versand kostet', '      xx1: "Der Versand kostet')
    cases = {
        "bad_answer.yaml": (broken, "entry 2 (id 'versand'): answer language 'xx1'"),
        "not_yaml.yaml": ("faqs: [unclosed", "not valid YAML"),
        "no_faqs.yaml": ("business: x\n", "'faqs' must be a non-empty list"),
        "bad_flow.yaml": (
            KB_YAML.replace("flow: groesse", "flow: fehlt"),
            "entry 4 (id 'schuhe'): unknown flow 'fehlt'",
        ),
        "latin1.yaml": (None, "cannot read"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        if text is None:
            path.write_bytes("faqs: [Größe]".encode("latin-1"))
        else:
            path.write_text(text, encoding="utf-8")
        failed = runner.invoke(app, ["bot", "import-faq", str(path)])
        assert failed.exit_code == 2, (name, failed.output)
        assert expected in failed.output and "nothing was imported" in failed.output, name
        assert keys() == before, f"{name} must not change the knowledge base"
    missing = runner.invoke(app, ["bot", "import-faq", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_import_products_replaces_the_catalog_and_refuses_bad_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRESEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRESEN_DATABASE_URL", raising=False)
    demo = Path(__file__).parents[2] / "src" / "tresen" / "bot" / "data" / "demo_products.json"
    result = runner.invoke(app, ["bot", "import-products", str(demo)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["imported"] == 8

    def skus() -> list[str]:
        with sqlite3.connect(tmp_path / "data" / "tresen.db") as db:
            return [s for (s,) in db.execute("SELECT sku FROM bot_products ORDER BY sku")]

    before = skus()
    assert len(before) == 8 and "RS-4100" in before
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,price\nA1,Ding,1\nA2,Zweites,zehn\n", encoding="utf-8")
    failed = runner.invoke(app, ["bot", "import-products", str(bad)])
    assert failed.exit_code == 2
    assert (
        "product 2 (sku 'A2'): 'price'" in failed.output and "nothing was imported" in failed.output
    )
    assert skus() == before
    good = tmp_path / "new.csv"
    good.write_text("sku,name,price\nA1,Ding,1\n", encoding="utf-8")
    assert runner.invoke(app, ["bot", "import-products", str(good)]).exit_code == 0
    assert skus() == ["A1"]


@pytest.mark.parametrize("backend", ["default", "lexical"])
def test_latency_prints_latency_and_throughput_under_load(tmp_path: Path, backend: str) -> None:
    rows = [(f"{t} {n}", lab) for n in range(3) for t, lab in TRAIN if lab != "oos"]
    result = runner.invoke(
        app,
        [
            "bot",
            "latency",
            "--train",
            str(_csv(tmp_path / "tr.csv", rows)),
            "--test",
            str(_csv(tmp_path / "te.csv", TEST)),
            "--entries",
            "3",
            "--concurrency",
            "2",
            "--backend",
            backend,
        ],
    )
    assert result.exit_code == 0, result.output
    data = _last_json(result.stdout)
    assert data["entries"] == 3 and data["queries"] == 3 and data["backend"] == backend
    assert data["concurrency"] == 2
    assert data["load_messages_per_s"] > 0 and data["load_messages_per_cpu_s"] > 0
    assert data["ms_per_query_p95"] >= data["ms_per_query_p50"] > 0


def test_latency_refuses_bad_options(tmp_path: Path) -> None:
    good = _csv(tmp_path / "g.csv", TRAIN)
    for extra in (["--concurrency", "0"], ["--backend", "minilm"], ["--entries", "1"]):
        result = runner.invoke(
            app, ["bot", "latency", "--train", str(good), "--test", str(good), *extra]
        )
        assert result.exit_code == 2, (extra, result.output)

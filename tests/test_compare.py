"""bench/compare_results.py: the check behind "a rerun gives the same rows and the same words"."""

import pandas as pd

from conftest import _bench_module

compare = _bench_module("compare_results")


def write(root, name, frame):
    path = root / "m" / "benchmarks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def test_tables_differ_only_where_a_value_does_and_never_for_timings(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    quality = pd.DataFrame({"method": ["dense", "wanda"], "metric": ["perplexity"] * 2, "value": [20.0, 25.0]})
    runtime = pd.DataFrame({"kind": ["kernel-csr"], "tokens": [16], "speedup": [1.3], "dense_ms": [2.0]})
    for root, speed in ((a, 1.3), (b, 0.7)):  # timings differ between any two runs
        write(root, "quality.csv", quality)
        write(root, "runtime.csv", runtime.assign(speedup=speed, dense_ms=2.0 / speed))
    assert compare.compare_tables(a, b) == 0
    write(b, "quality.csv", quality.assign(value=[20.0, 25.0 * (1 + 1e-6)]))
    assert compare.compare_tables(a, b) == 1
    said = capsys.readouterr().out
    assert "m/benchmarks/quality.csv: DIFFERS" in said and "1 of 2 values differ" in said
    assert "m/benchmarks/runtime.csv: same" in said


def test_report_words_compare_without_tags_or_images(tmp_path, capsys):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    a.write_text('<h2 id="S">Size¶</h2><p>72% of the <b>dense</b> bytes</p><img src="data:image/png;base64,AAA">')
    b.write_text('<div class="ss-lead"><h2 id="S">Size</h2>\n<p>72% of the dense bytes</p></div>'
                 '<img src="data:image/png;base64,BBB">')
    assert compare.compare_text(a, b) == 0
    b.write_text('<h2>Size</h2><p>71% of the dense bytes</p>')
    assert compare.compare_text(a, b) == 1
    assert "+71% of the dense bytes" in capsys.readouterr().out

"""`python -m bench.rerender`: rewrite the Markdown that bench/results derives from its JSON.

`RESULTS.md` (`make bench`) and `fast_schedule_512.md` (`make bench-headline`) are renderings of
the JSON their runs wrote.  When a renderer's wording changes (e.g. labelling the tutorial's
time as extrapolated), this rewrites them from the committed measurements without measuring
anything; `tests/test_bench.py` checks that the committed files equal these renderings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import headline, report

RESULTS = Path(__file__).resolve().parent / "results"


def rendered(results: Path = RESULTS) -> dict[Path, str]:
    """File -> the text its renderer makes from the committed JSON."""
    envelopes = {name: json.loads((results / f"{name}.json").read_text(encoding="utf-8")) for name in report.BENCHMARKS}
    run_info = envelopes["environment"]["run"]
    texts = {results / "RESULTS.md": report.render(run_info, {n: e["results"] for n, e in envelopes.items()})}
    for path in sorted(results.glob("fast_schedule_*.json")):
        texts[path.with_suffix(".md")] = headline.markdown(json.loads(path.read_text(encoding="utf-8"))) + "\n"
    return texts


def main() -> int:
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

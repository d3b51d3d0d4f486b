"""Entry point: `python -m service.bench_report [results/bench.json] [--readme README.md]` renders bench.md."""

from service.bench.report import main

if __name__ == "__main__":
    main()

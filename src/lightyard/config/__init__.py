"""The config layer: composition, the checks run before any work, signatures read from source,
the model/data fit rules, resolvers and instantiation. Never imports torch or Lightning (a test
and an import-linter contract hold it to that), so `--help`, `--cfg` and every pre-run check
answer in well under a second."""

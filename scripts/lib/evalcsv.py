"""evalcsv.py — reading what `qat-eval --csv` writes, for the report scripts beside it."""
import csv
import os
import sys


def die(msg):
    """The calling script's name, the message, exit 1."""
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr)
    sys.exit(1)


def read_rows(path, need, what="a qat-eval CSV"):
    """The rows of the CSV at path as dicts; dies unless it has every column in need."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        die(f"{path}: {e.strerror}")
    if not rows or not need <= set(rows[0]):
        die(f"{path}: not {what} (need columns {sorted(need)})")
    return rows

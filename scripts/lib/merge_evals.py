#!/usr/bin/env python3
"""merge_evals.py OUT.csv OUT.md TRAIN_FORMATS ARM:EVAL.csv... — one table, a column per arm.

Each EVAL.csv is what `qat-eval --csv` writes (format,bits_per_element,val_loss,perplexity,
delta_vs_fp32,note). Formats listed in TRAIN_FORMATS (comma-separated) are marked as seen in
MF-QAT training; the others were never trained on by MF-QAT."""
import csv
import sys


def main(argv):
    out_csv, out_md, train_formats = argv[1], argv[2], set(argv[3].split(","))
    arms, table, bits, order = [], {}, {}, []
    for spec in argv[4:]:
        arm, path = spec.split(":", 1)
        arms.append(arm)
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                fmt = row["format"]
                if fmt not in bits:
                    order.append(fmt)
                    bits[fmt] = row["bits_per_element"]
                table[(fmt, arm)] = row["val_loss"]
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["format", "bits_per_element", "in_mfqat_training"] + arms)
        for fmt in order:
            w.writerow([fmt, bits[fmt], fmt in train_formats] + [table.get((fmt, a), "") for a in arms])
    with open(out_md, "w") as f:
        f.write("| format | bits/elem | " + " | ".join(arms) + " |\n")
        f.write("|---|---|" + "---|" * len(arms) + "\n")
        for fmt in order:
            mark = "" if fmt == "fp32" or fmt in train_formats else " (unseen by MF-QAT)"
            cells = [table.get((fmt, a), "") or "–" for a in arms]
            f.write(f"| {fmt}{mark} | {bits[fmt]} | " + " | ".join(cells) + " |\n")


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""ablation_report.py MANIFEST OUT_DIR FORMATS COMMAND — the tables of ablate_ptq_vs_qat.sh.

MANIFEST lines are METHOD<TAB>FORMAT|all<TAB>EVAL.csv, EVAL.csv being what `qat-eval --csv`
writes (format,bits_per_element,val_loss,perplexity,delta_vs_fp32,note). FORMAT picks one row of
it; "all" takes every MX row (fp32 rows only where FORMAT is fp32). Writes in OUT_DIR:
  ablation.csv       method,format,bits_per_element,val_loss,delta_vs_fp32 (vs the baseline)
  ablation.md        formats x methods, with the gain of the best QAT arm over the best PTQ
  ablation_plot.dat  the same table for gnuplot (formats sorted by bits, one column per method)
  ablation_fp32.txt  the baseline's fp32 validation loss (the plot's reference line)
Fails (exit 1) on a missing or malformed CSV, a non-finite loss, or a missing baseline."""
import csv
import math
import os
import sys

from evalcsv import die, read_rows

PTQ = ["rtn", "gptq", "smoothquant+rtn", "smoothquant+gptq"]
QAT = ["qat", "mfqat", "mfqat_anchor_sns"]
ORDER = ["fp32", "ft_fp32"] + PTQ + ["ft_fp32+rtn"] + QAT


def read_eval(path):
    return read_rows(path, {"format", "bits_per_element", "val_loss"})


def collect(manifest, formats):
    results, bits = {}, {"fp32": 32.0}
    with open(manifest) as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                die(f"{manifest}:{n}: expected METHOD<TAB>FORMAT<TAB>CSV")
            method, want, path = parts
            for row in read_eval(path):
                fmt = row["format"]
                take = fmt == want or (want == "all" and fmt != "fp32" and fmt in formats)
                if not take or row["val_loss"] in ("", "nan"):
                    continue
                loss = float(row["val_loss"])
                if not math.isfinite(loss):
                    die(f"{path}: {fmt} loss is {loss}")
                results[(method, fmt)] = loss
                bits[fmt] = float(row["bits_per_element"])
    return results, bits


def write_csv(path, results, bits, base):
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["method", "format", "bits_per_element", "val_loss", "delta_vs_fp32"])
        def order(kv):
            (method, fmt), _ = kv
            return (ORDER.index(method) if method in ORDER else len(ORDER), -bits[fmt], fmt)

        for (method, fmt), loss in sorted(results.items(), key=order):
            w.writerow([method, fmt, f"{bits[fmt]:.2f}", f"{loss:.6f}", f"{loss - base:+.6f}"])
    os.replace(path + ".tmp", path)


def write_md(path, results, bits, fmts, methods, base, command):
    cell = lambda m, f: f"{results[(m, f)]:.4f}" if (m, f) in results else "–"
    with open(path + ".tmp", "w") as f:
        f.write(f"Validation loss (lower is better). FP32 baseline: **{base:.4f}**")
        if ("ft_fp32", "fp32") in results:
            f.write(f"; after the fine-tuning budget in fp32: {results[('ft_fp32', 'fp32')]:.4f}")
        f.write(".\n\n")
        f.write("| format | bits/elem | " + " | ".join(methods) + " | best PTQ | best QAT | QAT gain |\n")
        f.write("|---|---|" + "---|" * (len(methods) + 3) + "\n")
        for fmt in fmts:
            ptq = [results[(m, fmt)] for m in PTQ + ["ft_fp32+rtn"] if (m, fmt) in results]
            qat = [results[(m, fmt)] for m in QAT if (m, fmt) in results]
            row = f"| {fmt} | {bits[fmt]:.2f} | " + " | ".join(cell(m, fmt) for m in methods)
            if ptq and qat:
                row += f" | {min(ptq):.4f} | {min(qat):.4f} | {min(ptq) - min(qat):+.4f} |"
            else:
                row += " | – | – | – |"
            f.write(row + "\n")
        f.write("\nQAT gain = best PTQ (any method, incl. the fp32 fine-tune + RTN) − best QAT arm; "
                "positive: QAT is better.\n")
        f.write(f"\nProduced by `{command}`.\n")
    os.replace(path + ".tmp", path)


def write_plot(path, results, fmts, methods):
    with open(path, "w") as f:
        f.write("format " + " ".join(methods) + "\n")
        for fmt in fmts:
            vals = [f"{results[(m, fmt)]:.6f}" if (m, fmt) in results else "NaN" for m in methods]
            f.write(f"{fmt} " + " ".join(vals) + "\n")


def main(argv):
    if len(argv) != 5:
        die("usage: ablation_report.py MANIFEST OUT_DIR FORMATS COMMAND")
    manifest, out, formats, command = argv[1], argv[2], argv[3].split(","), argv[4]
    results, bits = collect(manifest, formats)
    if ("fp32", "fp32") not in results:
        die(f"{manifest}: no fp32 baseline row")
    base = results[("fp32", "fp32")]
    fmts = sorted((f for f in formats if f in bits), key=lambda f: (bits[f], f))
    missing = [f for f in formats if f not in bits]
    if missing:
        die(f"no result at {', '.join(missing)}")
    present = {m for (m, f) in results if f != "fp32"}
    methods = [m for m in ORDER if m in present]
    write_csv(os.path.join(out, "ablation.csv"), results, bits, base)
    write_md(os.path.join(out, "ablation.md"), results, bits, fmts, methods, base, command)
    write_plot(os.path.join(out, "ablation_plot.dat"), results, fmts, methods)
    with open(os.path.join(out, "ablation_fp32.txt"), "w") as f:
        f.write(f"{base:.6f}\n")


if __name__ == "__main__":
    main(sys.argv)

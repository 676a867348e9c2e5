#!/usr/bin/env python3
"""rl_report.py MANIFEST OUT_DIR FORMATS COMMAND SETTINGS — the tables of ablate_rl_quant.sh.

MANIFEST lines are ARM<TAB>TRAIN_FORMAT<TAB>RL_STEPS<TAB>SEED<TAB>SECONDS<TAB>EVAL.csv<TAB>CMD.txt,
EVAL.csv being what `qat-eval --csv` writes on a task checkpoint (format,bits_per_element,val_loss,
perplexity,delta_vs_fp32,note,accuracy) and CMD.txt the qat-train command of the arm. Every row of
EVAL.csv is taken. FORMATS (comma-separated, fp32 first) orders the columns. Writes in OUT_DIR:
  rl_ablation.csv       arm,train_format,eval_format,accuracy,val_loss,rl_steps,seconds
  rl_ablation.md        arms x eval formats (accuracy in %), then each arm's seed, steps, wall
                        time and command
  rl_ablation_plot.dat  the same table in % for gnuplot (NaN where an arm was not evaluated)
Fails (exit 1) on a missing or malformed CSV, an accuracy outside [0, 1] or a non-finite loss."""
import csv
import math
import os
import sys

from evalcsv import die, read_rows


def read_eval(path):
    rows = read_rows(path, {"format", "val_loss", "accuracy"}, "a qat-eval CSV of a task checkpoint")
    out = {}
    for row in rows:
        try:
            loss, acc = float(row["val_loss"]), float(row["accuracy"])
        except ValueError:
            die(f"{path}: {row['format']}: val_loss '{row['val_loss']}', accuracy '{row['accuracy']}'"
                f" are not numbers ({row.get('note', '')})")
        if not math.isfinite(loss):
            die(f"{path}: {row['format']} loss is {loss}")
        if not 0 <= acc <= 1:
            die(f"{path}: {row['format']} accuracy {acc} is outside [0, 1]")
        out[row["format"]] = (acc, loss)
    return out


def collect(manifest):
    arms = []  # (arm, train_format, steps, seed, seconds, {format: (acc, loss)}, command)
    with open(manifest) as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 7:
                die(f"{manifest}:{n}: expected 7 tab-separated fields, got {len(parts)}")
            arm, fmt, steps, seed, secs, path, cmd_file = parts
            try:
                with open(cmd_file) as c:
                    cmd = c.read().strip()
            except OSError as e:
                die(f"{cmd_file}: {e.strerror}")
            try:
                steps, secs = int(steps), float(secs)
            except ValueError:
                die(f"{manifest}:{n}: steps '{steps}' or seconds '{secs}' is not a number")
            arms.append((arm, fmt, steps, seed, secs, read_eval(path), cmd))
    if not arms:
        die(f"{manifest}: no arms")
    return arms


def write_csv(path, arms, fmts):
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["arm", "train_format", "eval_format", "accuracy", "val_loss", "rl_steps",
                    "seconds"])
        for arm, tfmt, steps, _, secs, res, _ in arms:
            for fmt in sorted(res, key=lambda x: fmts.index(x) if x in fmts else len(fmts)):
                acc, loss = res[fmt]
                w.writerow([arm, tfmt, fmt, f"{acc:.4f}", f"{loss:.6f}", steps, f"{secs:.1f}"])
    os.replace(path + ".tmp", path)


def duration(s):
    return f"{int(s) // 60} min {int(s) % 60:02d} s" if s >= 60 else f"{s:.1f} s"


def write_md(path, arms, fmts, command, settings):
    with open(path + ".tmp", "w") as f:
        f.write("Held-out exact-match accuracy (greedy decoding), % — higher is better. Columns are "
                "the evaluation format (weights and activations quantized; fp32 = nothing "
                "quantized, except a QLoRA arm's frozen 4-bit base).\n\n")
        f.write("| arm | trained in | " + " | ".join(fmts) + " |\n")
        f.write("|---|---|" + "---|" * len(fmts) + "\n")
        for arm, tfmt, _, _, _, res, _ in arms:
            cells = [f"{100 * res[x][0]:.1f}" if x in res else "–" for x in fmts]
            f.write(f"| {arm} | {tfmt} | " + " | ".join(cells) + " |\n")
        f.write(f"\n{settings}. Total wall time {duration(sum(a[4] for a in arms))}.\n\n")
        f.write("| arm | RL steps | seed | wall time | command |\n|---|---|---|---|---|\n")
        for arm, _, steps, seed, secs, _, cmd in arms:
            cmd = cmd.replace("|", "\\|")  # a pipe would end the table cell
            f.write(f"| {arm} | {steps} | {seed} | {duration(secs)} | `{cmd}` |\n")
        f.write("\nWall time = training (the SFT run for `sft`) plus evaluation; 0 s training for a "
                "given --sft-checkpoint.\n")
        f.write(f"\nProduced by `{command}`.\n")
    os.replace(path + ".tmp", path)


def write_plot(path, arms, fmts):
    with open(path, "w") as f:
        f.write("arm " + " ".join(fmts) + "\n")
        for arm, _, _, _, _, res, _ in arms:
            vals = [f"{100 * res[x][0]:.2f}" if x in res else "NaN" for x in fmts]
            f.write(f"{arm} " + " ".join(vals) + "\n")


def main(argv):
    if len(argv) != 6:
        die("usage: rl_report.py MANIFEST OUT_DIR FORMATS COMMAND SETTINGS")
    manifest, out, fmts, command, settings = argv[1], argv[2], argv[3].split(","), argv[4], argv[5]
    arms = collect(manifest)
    extra = sorted({x for a in arms for x in a[5] if x not in fmts})
    if extra:
        die(f"evaluated at {', '.join(extra)}, which FORMATS does not list")
    write_csv(os.path.join(out, "rl_ablation.csv"), arms, fmts)
    write_md(os.path.join(out, "rl_ablation.md"), arms, fmts, command, settings)
    write_plot(os.path.join(out, "rl_ablation_plot.dat"), arms, fmts)


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""torch_gpt.py — qat's GPT (train/model/gpt.c) in PyTorch on CPU, timed like bench/bench_train.

    python3 bench/torch_gpt.py CONFIG.ini [--steps N] [--warmup W] [--threads N]
                               [--set section.key=value]...

Reads the same INI as qat-train ([run] [model] [data] [optim]; other sections are ignored), with
the same defaults for missing keys (train/io/config_keys.c) and the same overrides syntax. The
model: byte vocabulary, pre-norm blocks x += wo·attn(ln1(x)), x += down·gelu_tanh(up·ln2(x)),
LayerNorm (eps 1e-5) or RMSNorm, learned positions or RoPE on interleaved pairs (2j, 2j+1) with
theta_j = 10000^(-2j/head_dim), causal softmax attention, linear layers without bias, tied or
untied LM head, mean cross-entropy; AdamW (or SGD) with qat's split of decayed parameters
(matrices and embeddings decay, norms do not), global-norm clipping when optim.grad_clip > 0.
Tokens are random bytes (the speed does not depend on them).

Prints a summary, then one machine-readable line (bench/compare.sh parses it):
    RESULT impl=torch threads=.. B=.. T=.. ms_median=.. ms_mean=.. tokens_per_s=.. blas=PATH
Needs Debian's python3-torch (./scripts/bootstrap.sh --bench); run it with /usr/bin/python3.
"""
import argparse
import configparser
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("torch_gpt.py: PyTorch is not installed for %s; run ./scripts/bootstrap.sh --bench "
             "(Debian's python3-torch, used through /usr/bin/python3)" % sys.executable)

# Defaults of train/io/config_keys.c for the keys this script reads (kind, default).
KEYS = {
    "run": {"out_dir": ("str", "runs/default"), "seed": ("int", "1337"), "steps": ("int", "1000"),
            "eval_every": ("int", "100"), "eval_batches": ("int", "8"),
            "ckpt_every": ("int", "250"), "keep": ("int", "3"), "log_every": ("int", "10"),
            "threads": ("int", "0"), "mode": ("str", "pretrain")},
    "model": {"n_layer": ("int", "4"), "n_head": ("int", "4"), "d_model": ("int", "128"),
              "d_ff": ("int", "512"), "seq_len": ("int", "128"), "vocab_size": ("int", "256"),
              "norm": ("str", "layernorm"), "positions": ("str", "rope"),
              "attention": ("str", "standard"), "tie_embeddings": ("bool", "true")},
    "data": {"corpus": ("str", "/usr/share/games/fortunes"), "val_fraction": ("float", "0.05"),
             "batch_size": ("int", "16")},
    "optim": {"name": ("str", "adamw"), "lr": ("float", "1e-3"), "min_lr": ("float", "1e-4"),
              "momentum": ("float", "0.9"), "weight_decay": ("float", "0.1"),
              "beta1": ("float", "0.9"), "beta2": ("float", "0.95"), "eps": ("float", "1e-8"),
              "warmup_steps": ("int", "100"), "schedule": ("str", "cosine"),
              "grad_clip": ("float", "1.0")},
}
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def convert(where, kind, text):
    text = text.strip()
    try:
        if kind == "int":
            return int(text, 10)
        if kind == "float":
            return float(text)
    except ValueError:
        sys.exit("torch_gpt.py: %s = '%s' is not a%s %s" % (where, text,
                 "n" if kind == "int" else "", kind))
    if kind == "bool":
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        sys.exit("torch_gpt.py: %s = '%s': expected true or false" % (where, text))
    return text


def load_config(path, sets):
    """The [run] [model] [data] [optim] keys as {section: {key: value}}, file then --set."""
    cp = configparser.ConfigParser(comment_prefixes=(";", "#"), inline_comment_prefixes=(";",),
                                   interpolation=None, strict=True)
    cp.optionxform = str  # keys are case-sensitive in qat
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f)
    except (OSError, configparser.Error) as e:
        sys.exit("torch_gpt.py: %s: %s" % (path, e))
    raw = {sec: {k: d for k, (_, d) in keys.items()} for sec, keys in KEYS.items()}
    quant = cp.get("quant", "mode", fallback="none").strip()
    for sec in cp.sections():
        if sec not in KEYS:
            continue  # [quant], [lora], ...: not part of the model timed here
        for key, val in cp.items(sec):
            if key not in KEYS[sec]:
                sys.exit("torch_gpt.py: %s: unknown key %s.%s (new in config_keys.c? add it to "
                         "KEYS in bench/torch_gpt.py)" % (path, sec, key))
            raw[sec][key] = val
    for s in sets:
        name, eq, val = s.partition("=")
        sec, dot, key = name.strip().partition(".")
        if not eq or not dot:
            sys.exit("torch_gpt.py: --set expects section.key=value, got '%s'" % s)
        if (sec, key.strip()) == ("quant", "mode"):
            quant = val.strip()
        if sec not in KEYS:
            continue  # accepted for symmetry with bench_train; irrelevant here
        if key not in KEYS[sec]:
            sys.exit("torch_gpt.py: --set %s: unknown key %s.%s" % (s, sec, key))
        raw[sec][key] = val
    cfg = {sec: {k: convert("%s.%s" % (sec, k), KEYS[sec][k][0], v) for k, v in keys.items()}
           for sec, keys in raw.items()}
    cfg["quant_mode"] = quant
    return cfg


class RMSNorm(torch.nn.Module):
    """x / sqrt(mean(x^2) + eps) * w (PyTorch 1.13 has no nn.RMSNorm)."""

    def __init__(self, c, eps):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(c))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind, c):
    return torch.nn.LayerNorm(c, eps=1e-5) if kind == "layernorm" else RMSNorm(c, 1e-5)


def rope_tables(T, hs, base=10000.0):
    """cos, sin of shape (T, hs/2): angle t*theta_j, theta_j = base^(-2j/hs)."""
    j = torch.arange(hs // 2, dtype=torch.float64)
    theta = base ** (-2.0 * j / hs)
    a = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.cos(a).float(), torch.sin(a).float()


def rope(x, cos, sin):
    """x (B, NH, T, HS): rotate the interleaved pairs (2j, 2j+1) by angle[t, j]."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        C, F_ = m["d_model"], m["d_ff"]
        self.nh = m["n_head"]
        self.ln1 = make_norm(m["norm"], C)
        self.wq = torch.nn.Linear(C, C, bias=False)
        self.wk = torch.nn.Linear(C, C, bias=False)
        self.wv = torch.nn.Linear(C, C, bias=False)
        self.wo = torch.nn.Linear(C, C, bias=False)
        self.ln2 = make_norm(m["norm"], C)
        self.up = torch.nn.Linear(C, F_, bias=False)
        self.down = torch.nn.Linear(F_, C, bias=False)

    def attention(self, h, mask, cs):
        B, T, C = h.shape
        hs = C // self.nh
        q, k, v = (w(h).view(B, T, self.nh, hs).transpose(1, 2)
                   for w in (self.wq, self.wk, self.wv))
        if cs is not None:
            q, k = rope(q, *cs), rope(k, *cs)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        return self.wo((p @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x, mask, cs):
        x = x + self.attention(self.ln1(x), mask, cs)
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class GPT(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        C, V, T = m["d_model"], m["vocab_size"], m["seq_len"]
        self.wte = torch.nn.Embedding(V, C)
        self.wpe = torch.nn.Parameter(torch.zeros(T, C)) if m["positions"] == "learned" else None
        self.h = torch.nn.ModuleList(Block(m) for _ in range(m["n_layer"]))
        self.ln_f = make_norm(m["norm"], C)
        self.lm_head = None if m["tie_embeddings"] else torch.nn.Linear(C, V, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))
        hs = C // m["n_head"]
        self.cs = rope_tables(T, hs) if m["positions"] == "rope" else None
        # GPT-2 init as qat_model_init: N(0, 0.02), residual projections / sqrt(2L).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                resid = name.endswith("wo.weight") or name.endswith("down.weight")
                torch.nn.init.normal_(p, 0.0, 0.02 / (math.sqrt(2 * m["n_layer"]) if resid else 1))

    def forward(self, x, y):
        T = x.shape[1]
        h = self.wte(x)
        if self.wpe is not None:
            h = h + self.wpe[:T]
        mask = self.mask[:T, :T]
        cs = None if self.cs is None else (self.cs[0][:T], self.cs[1][:T])
        for blk in self.h:
            h = blk(h, mask, cs)
        h = self.ln_f(h)
        logits = F.linear(h, self.lm_head.weight if self.lm_head is not None else self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))


def lr_at(o, total, step):
    """opt_schedule_lr of optim/: warmup, then constant / cosine / linear to min_lr."""
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    span = total - 1 - o["warmup_steps"]
    if o["schedule"] == "constant" or span <= 0:
        return o["lr"]
    frac = min(1.0, (step - o["warmup_steps"]) / span)
    if o["schedule"] == "cosine":
        return o["min_lr"] + 0.5 * (o["lr"] - o["min_lr"]) * (1 + math.cos(math.pi * frac))
    return o["lr"] + (o["min_lr"] - o["lr"]) * frac


def loaded_blas():
    """Paths of the BLAS libraries mapped into this process."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(path)
                if "blas" in base or "mkl" in base:
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return ",".join(sorted(libs)) or "?"


def main():
    ap = argparse.ArgumentParser(description="qat's GPT in PyTorch, timed per training step")
    ap.add_argument("config")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="default: run.threads (0 = all)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0:
        sys.exit("torch_gpt.py: --steps must be >= 1 and --warmup >= 0")
    cfg = load_config(a.config, a.set)
    m, o, r = cfg["model"], cfg["optim"], cfg["run"]
    if cfg["quant_mode"] != "none":
        print("WARNING: quant.mode = %s: qat fake-quantizes, this PyTorch model trains in fp32; "
              "the comparison is not like for like" % cfg["quant_mode"])
    if m["attention"] != "standard":
        sys.exit("torch_gpt.py: model.attention = %s is not implemented here" % m["attention"])
    if m["d_model"] % m["n_head"]:
        sys.exit("torch_gpt.py: model.d_model is not divisible by model.n_head")
    threads = a.threads if a.threads is not None else r["threads"]
    threads = threads if threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(r["seed"])
    B, T, V = cfg["data"]["batch_size"], m["seq_len"], m["vocab_size"]

    model = GPT(m)
    decay = [p for p in model.parameters() if p.dim() == 2]  # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # norm weights and biases
    groups = [{"params": decay, "weight_decay": o["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    if o["name"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    elif o["name"] == "sgd":
        opt = torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"])
    else:
        sys.exit("torch_gpt.py: optim.name = %s is not supported" % o["name"])
    params = list(model.parameters())
    clip = o["grad_clip"] if o["grad_clip"] > 0 else float("inf")  # the norm is computed anyway
    gen = torch.Generator().manual_seed(r["seed"])
    total = a.warmup + a.steps

    phases = {"forward": [], "backward": [], "clip+optimizer": []}

    def step(i):
        for g in opt.param_groups:
            g["lr"] = lr_at(o, total, i)
        batch = torch.randint(0, V, (B, T + 1), generator=gen)
        t0 = time.perf_counter()
        loss = model(batch[:, :-1], batch[:, 1:])
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        t3 = time.perf_counter()
        for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
            phases[k].append(1e3 * v)
        return loss.item()

    for i in range(a.warmup):
        step(i)
    for v in phases.values():
        v.clear()
    ms = []
    c0, w0 = time.process_time(), time.perf_counter()
    loss = float("nan")
    for i in range(a.steps):
        t0 = time.perf_counter()
        loss = step(a.warmup + i)
        ms.append(1e3 * (time.perf_counter() - t0))
    cpu_s = time.process_time() - c0
    cpu_use = cpu_s / (time.perf_counter() - w0)
    med, mean = statistics.median(ms), statistics.fmean(ms)
    blas = loaded_blas()
    nparams = sum(p.numel() for p in model.parameters())
    print("torch %s, %d threads (intra-op), BLAS: %s" % (torch.__version__,
          torch.get_num_threads(), blas))
    print("GPT L=%d heads=%d d_model=%d d_ff=%d T=%d V=%d %s %s %s, %d parameters; B=%d; %s"
          % (m["n_layer"], m["n_head"], m["d_model"], m["d_ff"], T, V, m["norm"], m["positions"],
             "tied" if m["tie_embeddings"] else "untied", nparams, B, o["name"]))
    print("timed %d steps after %d warm-up (last loss %.4f)" % (a.steps, a.warmup, loss))
    print("  ms/step  median %.1f  mean %.1f  min %.1f  max %.1f"
          % (med, mean, min(ms), max(ms)))
    print("  tokens/s %.0f   CPU use %.2f of %d threads   CPU time %.1f ms/step"
          % (B * T / (med * 1e-3), cpu_use, threads, 1e3 * cpu_s / a.steps))
    print("phases (median ms): " + ", ".join("%s %.1f" % (k, statistics.median(v))
                                             for k, v in phases.items()))
    print("RESULT impl=torch threads=%d B=%d T=%d ms_median=%.2f ms_mean=%.2f tokens_per_s=%.1f "
          "cpu_ms_per_step=%.1f cpu_use=%.2f blas=%s"
          % (threads, B, T, med, mean, B * T / (med * 1e-3), 1e3 * cpu_s / a.steps, cpu_use, blas))


if __name__ == "__main__":
    main()

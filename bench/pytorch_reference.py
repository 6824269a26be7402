#!/usr/bin/env python3
"""PyTorch reference for the benchmarks: the same GPT, trained on the same batches.

Run as `/usr/bin/python3 bench/pytorch_reference.py '<json args>'`; prints one JSON line. Three modes:
- timing (bench/bench.ts): a few steps at a constant learning rate, timed the same way as ours;
- "parity" (bench/parity.ts): a whole training run with lib's Trainer recipe (linear warm-up then cosine
  decay, gradient clipping by global norm), the loss on fixed validation windows every `evalInterval` steps;
- "generate" (bench/bench.ts, GPT-2 124M's shape): greedy generation with a KV cache, batch 1.
Architecture (nanoGPT / GPT-2 style, as lib/models/gpt.ts): token + position embeddings, pre-LN blocks
(LayerNorm eps 1e-5, causal multi-head self-attention with a fused qkv projection, MLP 4x with tanh GELU),
final LayerNorm, output head tied to the token embedding, biases everywhere, N(0, 0.02) init with the
residual projections (attn.c_proj, mlp.c_proj) at 0.02 / sqrt(2 * n_layer). AdamW betas (0.9, 0.99) as
lib's AdamW, weight decay 0.1 on Linear weights only (not biases, LayerNorms or embeddings, as lib). Needs Debian's python3-torch with
libopenblas0-pthread (reference BLAS is ~40x slower at matmul).
"""
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, C, n_head, T):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        if cache is not None:  # generation: keys and values of the earlier positions, kept in a dict
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        past = k.shape[2] - T
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, past:past + T, :past + T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, n_head, T):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = CausalSelfAttention(C, n_head, T)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, V, T, L, H, C):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, H, T) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx, caches=None, past=0):
        B, T = idx.shape
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.h):
            x = block(x, caches[i] if caches is not None else None)
        return self.lm_head(self.ln_f(x))


def time_generation(model, args):
    """Greedy generation with a KV cache, batch 1, as lib's generate(): tokens per second after a warm-up."""
    prompt, new_tokens = args["prompt"], args["newTokens"]
    model.eval()

    def run():
        caches = [{} for _ in model.h]
        with torch.no_grad():
            logits = model(torch.tensor([prompt]), caches)
            tokens = list(prompt)
            for _ in range(new_tokens):
                tokens.append(int(logits[0, -1].argmax()))
                logits = model(torch.tensor([[tokens[-1]]]), caches, past=len(tokens) - 1)
        return tokens

    run()  # warm-up
    started = time.perf_counter()
    tokens = run()
    seconds = time.perf_counter() - started
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "tokens_per_second": new_tokens / seconds,
        "tokens": tokens,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def make_optimizer(model, lr, weight_decay):
    """AdamW with decay on Linear weights only (lib's defaultDecays: not biases, LayerNorms, embeddings)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # the tied lm_head.weight is wte.weight: listed once, as wte
        (decay if p.dim() >= 2 and not name.startswith(("wte.", "wpe.")) else no_decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.99), eps=1e-8,
    )


def learning_rate_at(step, args):
    """lib/training/schedule.ts: linear warm-up from 0, then cosine decay to the minimum."""
    peak, low, warmup, total = args["learningRate"], args["minLearningRate"], args["warmupSteps"], args["totalSteps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= total:
        return low
    progress = (step - warmup) / max(1, total - warmup)
    return low + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - low)


def train_for_parity(model, optimizer, args):
    V, T, B = args["vocabSize"], args["contextLength"], args["batchSize"]
    steps = args["totalSteps"]
    windows = torch.from_numpy(np.fromfile(args["batchesFile"], dtype=np.int32).reshape(steps, B, T + 1).astype(np.int64))
    validation = torch.from_numpy(np.fromfile(args["validationFile"], dtype=np.int32).reshape(-1, B, T + 1).astype(np.int64))

    def validation_loss():
        model.eval()
        with torch.no_grad():
            total = sum(F.cross_entropy(model(w[:, :T]).view(-1, V), w[:, 1:].reshape(-1)).item() for w in validation)
        model.train()
        return total / len(validation)

    evals, losses = [{"step": 0, "validation": validation_loss()}], []
    started = time.perf_counter()
    for s in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(s, args)
        x, y = windows[s, :, :T], windows[s, :, 1:]
        loss = F.cross_entropy(model(x).view(-1, V), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args["gradientClip"])
        optimizer.step()
        losses.append(loss.item())
        if (s + 1) % args["evalInterval"] == 0 or s + 1 == steps:
            evals.append({"step": s + 1, "validation": validation_loss()})
            print(f"pytorch: step {s + 1}, validation loss {evals[-1]['validation']:.4f}", file=sys.stderr, flush=True)
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - started,
        "losses": losses,
        "evals": evals,
    }))


def main():
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    torch.manual_seed(args["seed"])
    V, T, L, H, C = args["vocabSize"], args["contextLength"], args["numLayers"], args["numHeads"], args["embeddingDim"]
    model = GPT(V, T, L, H, C)
    model.train()
    optimizer = make_optimizer(model, args.get("learningRate", 1e-3), args.get("weightDecay", 0.1))
    if args.get("mode") == "parity":
        return train_for_parity(model, optimizer, args)
    if args.get("mode") == "generate":
        return time_generation(model, args)

    B = args["batchSize"]
    steps = args["warmupSteps"] + args["timedSteps"]
    windows = np.fromfile(args["batchesFile"], dtype=np.int32).reshape(steps, B, T + 1)
    windows = torch.from_numpy(windows.astype(np.int64))
    params = [p for p in model.parameters() if p.requires_grad]

    step_ms, cpu_ms, losses = [], [], []
    for s in range(steps):
        start = time.perf_counter()
        cpu_start = time.process_time()
        x, y = windows[s, :, :T], windows[s, :, 1:]
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if s >= args["warmupSteps"]:
            step_ms.append((time.perf_counter() - start) * 1000)
            cpu_ms.append((time.process_time() - cpu_start) * 1000)

    ms = statistics.median(step_ms)
    config = torch.__config__.show()
    blas = "OpenBLAS" if "openblas" in config.lower() else "unknown"
    try:
        import ctypes.util  # which BLAS the process really loaded
        with open("/proc/self/maps") as maps:
            loaded = maps.read()
        blas = "OpenBLAS" if "openblas" in loaded else ("reference BLAS" if "libblas" in loaded else blas)
    except OSError:
        pass
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "blas": blas,
        "ms_per_step": ms,
        "tokens_per_second": B * T * 1000 / ms,
        "step_ms": step_ms,
        "cpu_ms_per_step": statistics.median(cpu_ms),
        "losses": losses,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "parameters": sum(p.numel() for p in params),
    }))


if __name__ == "__main__":
    main()

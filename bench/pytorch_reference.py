#!/usr/bin/env python3
"""PyTorch reference for bench/bench.ts: the same GPT, trained on the same batches, timed the same way.

Run by the bench as `/usr/bin/python3 bench/pytorch_reference.py '<json args>'`; prints one JSON line.
Architecture (nanoGPT / GPT-2 style, as lib/models/gpt.ts): token + position embeddings, pre-LN blocks
(LayerNorm eps 1e-5, causal multi-head self-attention with a fused qkv projection, MLP 4x with tanh GELU),
final LayerNorm, output head tied to the token embedding, biases everywhere, N(0, 0.02) init with the
residual projections (attn.c_proj, mlp.c_proj) at 0.02 / sqrt(2 * n_layer). AdamW lr 1e-3, betas
(0.9, 0.99) as lib's AdamW, weight decay 0.1 on 2-D weights only. Needs Debian's python3-torch with
libopenblas0-pthread (reference BLAS is ~40x slower at matmul).
"""
import json
import math
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

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
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

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
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

    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def main():
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    torch.manual_seed(args["seed"])
    V, T, L, H, C = args["vocabSize"], args["contextLength"], args["numLayers"], args["numHeads"], args["embeddingDim"]
    B = args["batchSize"]
    steps = args["warmupSteps"] + args["timedSteps"]
    windows = np.fromfile(args["batchesFile"], dtype=np.int32).reshape(steps, B, T + 1)
    windows = torch.from_numpy(windows.astype(np.int64))

    model = GPT(V, T, L, H, C)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.99), eps=1e-8,
    )

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

"""The training-speed peer of `PersonaBench deep`: the SASRec architecture Persona trains
(item embeddings times sqrt(d) plus learned positions, the latest item at the last position;
per block a layer norm, one-head causal self-attention over the raw input with a residual
from the normed query, a layer norm and a point-wise ReLU feed-forward with its residual;
a final layer norm; dropout after the embeddings, on the attention weights and in the
feed-forward), the same loss (one sampled negative per position, binary cross-entropy of
both), Adam with the same rate and betas, on the same sequences, batch and epochs, written
in PyTorch and run on the CPU with one thread. Padding keys are masked, so a position
attends to the same items as in Persona's unpadded batches.

    python sasrec_torch.py DIR OUT_JSON

DIR holds params.json (items, dim, max_length, blocks, dropout, learning_rate, batch,
epochs, seed), train.txt (a training sequence a line: item indices, oldest first) and
test.txt (an evaluated user's input sequence a line). OUT_JSON gets the training seconds,
the loss per epoch and each test user's ten best items (items met before included).
"""
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)


class SASRec(nn.Module):
    def __init__(self, items, dim, length, blocks, dropout):
        super().__init__()
        self.dim, self.length = dim, length
        self.item = nn.Embedding(items + 1, dim, padding_idx=0)
        self.pos = nn.Embedding(length, dim)
        self.drop = nn.Dropout(dropout)
        self.ln1 = nn.ModuleList([nn.LayerNorm(dim, eps=1e-8) for _ in range(blocks)])
        self.attn = nn.ModuleList([nn.MultiheadAttention(dim, 1, dropout=dropout, batch_first=True) for _ in range(blocks)])
        self.ln2 = nn.ModuleList([nn.LayerNorm(dim, eps=1e-8) for _ in range(blocks)])
        self.ff1 = nn.ModuleList([nn.Linear(dim, dim) for _ in range(blocks)])
        self.ff2 = nn.ModuleList([nn.Linear(dim, dim) for _ in range(blocks)])
        self.last = nn.LayerNorm(dim, eps=1e-8)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.xavier_normal_(p)
            elif "bias" in name:
                nn.init.zeros_(p)

    def forward(self, seqs):
        """seqs: B x Lb item indices + 1, left-padded with 0; the output at every position."""
        b, lb = seqs.shape
        pad = seqs == 0
        positions = torch.arange(self.length - lb, self.length).unsqueeze(0).expand(b, lb)
        x = self.item(seqs) * math.sqrt(self.dim) + self.pos(positions)
        x = self.drop(x) * (~pad).unsqueeze(-1)
        causal = torch.triu(torch.ones(lb, lb, dtype=torch.bool), diagonal=1)
        # A padding key is hidden from every query but itself (so no row is empty).
        eye = torch.eye(lb, dtype=torch.bool)
        mask = causal.unsqueeze(0) | (pad.unsqueeze(1) & ~eye.unsqueeze(0))
        for i in range(len(self.attn)):
            q = self.ln1[i](x)
            a, _ = self.attn[i](q, x, x, attn_mask=mask, need_weights=False)
            x = q + a
            f = self.ln2[i](x)
            x = f + self.drop(self.ff2[i](torch.relu(self.drop(self.ff1[i](f)))))
            x = x * (~pad).unsqueeze(-1)
        return self.last(x)


def pad_left(rows, width):
    out = np.zeros((len(rows), width), dtype=np.int64)
    for r, s in enumerate(rows):
        if s:
            out[r, width - len(s):] = s
    return torch.from_numpy(out)


def main():
    folder, out_path = sys.argv[1:3]
    with open(os.path.join(folder, "params.json")) as f:
        p = json.load(f)
    read = lambda name: [[int(x) + 1 for x in line.split()] for line in open(os.path.join(folder, name))]
    train, test = read("train.txt"), read("test.txt")
    items, length = p["items"], p["max_length"]
    torch.manual_seed(p["seed"])
    rng = np.random.default_rng(p["seed"])
    model = SASRec(items, p["dim"], length, p["blocks"], p["dropout"])
    adam = torch.optim.Adam(model.parameters(), lr=p["learning_rate"], betas=(0.9, 0.98), eps=1e-8)
    bce = nn.BCEWithLogitsLoss()
    met = [set(s) for s in train]
    losses = []
    start = time.perf_counter()
    for _ in range(p["epochs"]):
        model.train()
        order = rng.permutation(len(train))
        total, steps = 0.0, 0
        for b in range(0, len(order), p["batch"]):
            chosen = [train[i] for i in order[b:b + p["batch"]]]
            width = max(len(s) for s in chosen) - 1
            inputs = pad_left([s[:-1] for s in chosen], width)
            targets = pad_left([s[1:] for s in chosen], width)
            negatives = []
            for i in order[b:b + p["batch"]]:
                row = []
                for _ in range(len(train[i]) - 1):
                    n = int(rng.integers(1, items + 1))
                    while n in met[i] and len(met[i]) < items:
                        n = int(rng.integers(1, items + 1))
                    row.append(n)
                negatives.append(row)
            negatives = pad_left(negatives, width)
            out = model(inputs)
            real = targets != 0
            pos = (out * model.item(targets)).sum(-1)[real]
            neg = (out * model.item(negatives)).sum(-1)[real]
            loss = bce(pos, torch.ones_like(pos)) + bce(neg, torch.zeros_like(neg))
            adam.zero_grad()
            loss.backward()
            adam.step()
            total += loss.item()
            steps += 1
        losses.append(total / max(steps, 1))
    seconds = time.perf_counter() - start
    model.eval()
    lists = []
    with torch.no_grad():
        table = model.item.weight[1:]
        for b in range(0, len(test), 256):
            chunk = [s[-length:] for s in test[b:b + 256]]
            out = model(pad_left(chunk, max(len(s) for s in chunk)))[:, -1, :]
            top = torch.topk(out @ table.T, 10, dim=1).indices
            lists += [[int(i) for i in row] for row in top]
    with open(out_path, "w") as f:
        json.dump({"seconds": seconds, "losses": losses, "lists": lists, "torch_version": torch.__version__}, f)
    print(f"PyTorch SASRec: {p['epochs']} epochs in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

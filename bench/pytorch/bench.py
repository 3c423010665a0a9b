"""bench/pytorch/bench.py - the nnlua benchmark's networks in PyTorch, for comparison.

Run by bench/run.lua (never needed by nnlua itself or its tests):
    python3 bench/pytorch/bench.py --threads N --case NAME [--reps R] [--steps K]
prints one line per case: RESULT <case> <key> <value>
Cases: logreg mlp cnn rnn siamese (the tutorial loops, steps/s, batch 64, fed from the
8x8 digits as nnlua's tutorial is), lenet64 lenet256 (images/s), mlp784 (images/s),
dyncall (us per add_scalar in an eager chain of 100 on a 1-element tensor), memory (peak
RSS in MiB of the five tutorial loops).
"""
import argparse
import csv
import gzip
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, '..', '..', 'tutorials', 'data', 'digits.csv.gz')


def load_digits():
    with gzip.open(DIGITS, 'rt') as f:
        rows = [[float(v) for v in line.split(',')] for line in f if line.strip()]
    x = torch.tensor([r[:64] for r in rows], dtype=torch.float32).reshape(-1, 1, 8, 8)
    t = torch.tensor([int(r[64]) for r in rows], dtype=torch.long)
    return x, t


class DigitsIterator:
    """Shuffled batches of 64 that wrap across epochs, like nnlua's data_iterator_simple."""

    def __init__(self, x, t, batch_size=64, seed=313):
        self.x, self.t, self.bs = x, t, batch_size
        self.g = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(x), generator=self.g)
        self.pos = 0

    def next(self):
        n = len(self.x)
        if self.pos + self.bs <= n:
            idx = self.order[self.pos:self.pos + self.bs]
            self.pos += self.bs
        else:
            head = self.order[self.pos:]
            self.order = torch.randperm(n, generator=self.g)
            rest = self.bs - len(head)
            idx = torch.cat([head, self.order[:rest]])
            self.pos = rest
        return self.x[idx], self.t[idx]


# ---- the tutorial's networks (tutorials/by_examples.lua) ----------------------------------

class LogReg(nn.Module):
    def __init__(self):
        super().__init__()
        self.affine1 = nn.Linear(64, 10)

    def forward(self, x):
        return self.affine1(x.flatten(1))


class MLP(nn.Module):
    def __init__(self, hidden=(16, 32, 16)):
        super().__init__()
        sizes = (64,) + tuple(hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.classifier = nn.Linear(sizes[-1], 10)

    def forward(self, x):
        h = x.flatten(1)
        for layer in self.layers:
            h = torch.tanh(layer(h))
        return self.classifier(h)


class CNNBody(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, stride=2)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)

    def forward(self, x):
        c1 = torch.tanh(self.bn1(self.conv1(x)))
        c2 = torch.tanh(self.bn2(self.conv2(c1)))
        return F.avg_pool2d(c2, 2).flatten(1)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = CNNBody()
        self.fc3 = nn.Linear(32, 32)
        self.classifier = nn.Linear(32, 10)

    def forward(self, x):
        return self.classifier(torch.tanh(self.fc3(self.body(x))))


class RNN(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.x2h = nn.Linear(16, hidden, bias=False)
        self.h2h = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, 10)

    def forward(self, x, h0):
        xs = [x[:, :, 0:4, 0:4], x[:, :, 0:4, 4:8], x[:, :, 4:8, 0:4], x[:, :, 4:8, 4:8]]
        h = h0
        for xt in xs:
            h = torch.tanh(self.x2h(xt.flatten(1)) + self.h2h(h))
        return self.classifier(h)


class SiameseEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = CNNBody()
        self.fc3 = nn.Linear(32, 32)       # created as in the tutorial, not in the loss
        self.embed2d = nn.Linear(32, 2)

    def forward(self, x):
        return self.embed2d(self.body(x))


def siamese_loss(e0, e1, t, margin=1.0, eps=1e-4):
    dist = ((e0 - e1) ** 2).sum(1)
    sim = t * dist
    dissim = (1 - t) * torch.clamp(margin - (dist + eps) ** 0.5, min=0) ** 2
    return (sim + dissim).mean()


def tutorial_step(name):
    torch.manual_seed(0)
    x, t = load_digits()
    data = DigitsIterator(x, t)
    if name == 'siamese':
        net = SiameseEmbed()
        opt = torch.optim.SGD(net.embed2d.parameters(), lr=1e-2, weight_decay=1e-5)

        def step():
            img0, label0 = data.next()
            img1, label1 = data.next()
            ts = (label0 == label1).float().reshape(-1)
            loss = siamese_loss(net(img0), net(img1), ts)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
        return step
    net, lr = {'logreg': (LogReg, 1e-3), 'mlp': (MLP, 1e-2), 'cnn': (CNN, 1e-1),
               'rnn': (RNN, 1e-1)}[name]
    net = net()
    opt = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=1e-5)
    if name == 'rnn':
        def step():
            img, label = data.next()
            h0 = torch.zeros(img.shape[0], 32)
            loss = F.cross_entropy(net(img, h0), label)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()
        return step

    def step():
        img, label = data.next()
        loss = F.cross_entropy(net(img), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


# ---- larger networks on random data -------------------------------------------------------

class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        h = F.relu(F.max_pool2d(self.conv1(x), 2))
        h = F.relu(F.max_pool2d(self.conv2(h), 2))
        h = F.relu(self.fc1(h.flatten(1)))
        return self.fc2(h)


class BigMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self.fc3 = nn.Linear(1024, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def random_step(net, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    t = torch.arange(shape[0]) % 10
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)

    def step():
        loss = F.cross_entropy(net(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def measure(step, steps, reps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def dyncall(reps):
    x = torch.zeros(1, requires_grad=True)
    times = []
    for _ in range(reps + 2):
        t0 = time.perf_counter()
        for _ in range(20):
            h = x
            for _ in range(100):
                h = h + 1.0
        times.append((time.perf_counter() - t0) / 2000)
    return statistics.median(times[2:]) * 1e6


def vm_hwm_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--case', required=True)
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--scale', type=float, default=1.0, help='multiplies the steps per repetition')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = a.case
    steps_of = {'logreg': 400, 'mlp': 300, 'cnn': 100, 'rnn': 200, 'siamese': 60,
                'lenet64': 10, 'lenet256': 4, 'mlp784': 20}
    if c in ('logreg', 'mlp', 'cnn', 'rnn', 'siamese'):
        steps = max(1, int(steps_of[c] * a.scale))
        dt = measure(tutorial_step(c), steps, a.reps, warmup=max(20, steps // 4))
        print('RESULT %s steps_per_s %.6g' % (c, 1.0 / dt))
    elif c in ('lenet64', 'lenet256', 'mlp784'):
        batch = {'lenet64': 64, 'lenet256': 256, 'mlp784': 128}[c]
        if c == 'mlp784':
            step = random_step(BigMLP(), (batch, 784))
        else:
            step = random_step(LeNet(), (batch, 1, 28, 28))
        steps = max(1, int(steps_of[c] * a.scale))
        dt = measure(step, steps, a.reps, warmup=3)
        print('RESULT %s images_per_s %.6g' % (c, batch / dt))
    elif c == 'dyncall':
        print('RESULT dyncall dynamic_us %.6g' % dyncall(a.reps))
    elif c == 'memory':
        for name in ('logreg', 'mlp', 'cnn', 'rnn', 'siamese'):
            step = tutorial_step(name)
            for _ in range(200):
                step()
        print('RESULT memory peak_rss_mib %.6g' % vm_hwm_mib())
    else:
        sys.exit('unknown case ' + c)


if __name__ == '__main__':
    main()

# The bench's measuring stick (npm run bench -- --vs-pytorch): the paper's UNet in PyTorch, as
# tests/fixtures/pytorch-parity/README.md spells it out and src/lib/diffusion/unet.ts computes it,
# timed on the CPU with a given thread count. Prints one JSON line: {"ms_median": ...}.
# For developers only: nothing in the site, the library or the tests needs PyTorch.
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class UNet(nn.Module):
    """eps_theta(x_t, t, y) of the paper: GroupNorm(32, no affine), ReLU, 3x3 convs, padding 1."""

    def __init__(self, C, io=1, classes=10):
        super().__init__()
        conv = lambda cin, cout, stride=1: nn.Conv2d(cin, cout, 3, stride, 1)
        self.convs = nn.ModuleList([
            conv(io, C), conv(C, C, 2), conv(C, 2 * C), conv(2 * C, 2 * C, 2),
            conv(2 * C, 2 * C), conv(2 * C, 2 * C),  # middle_block conv1, conv2
            conv(2 * C, 2 * C), conv(2 * C, C), conv(C, C), conv(C, io),  # up_block1..4
        ])
        self.noise_embedding = nn.Linear(C, 2 * C)
        self.class_emb = nn.Embedding(classes, 2 * C)
        self.C = C

    def block(self, i, x):
        return F.relu(F.group_norm(self.convs[i](x), 32, eps=1e-5))

    def forward(self, x, t, y):
        half = self.C // 2
        f = torch.exp(-math.log(10000) * torch.arange(half) / half)
        emb = torch.cat([torch.cos(t[:, None] * f), torch.sin(t[:, None] * f)], 1)  # [B, C]
        cond = F.relu(self.noise_embedding(emb)) + F.relu(self.class_emb(y))  # [B, 2C]
        x1 = self.block(0, x)
        x2 = self.block(1, x1)
        x3 = self.block(2, x2)
        x4 = self.block(3, x3)
        middle = self.block(5, self.block(4, x4)) + x4 + cond[:, :, None, None]
        up = lambda z: F.interpolate(z, scale_factor=2, mode='nearest')
        x5 = self.block(6, up(middle + x4))
        x6 = self.block(7, x5 + x3)
        x7 = self.block(8, up(x6 + x2))
        return self.convs[9](x7 + x1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--case', choices=['unet-forward', 'train-step'], required=True)
    for name in ['channels', 'batch', 'threads', 'repeats']:
        parser.add_argument(f'--{name}', type=int, required=True)
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = UNet(a.channels)
    adam = torch.optim.Adam(net.parameters(), lr=5e-4)
    x = torch.randn(a.batch, 1, 28, 28)
    t = torch.randint(0, 300, (a.batch,)).float()
    y = torch.arange(a.batch) % 10

    def forward():
        with torch.no_grad():
            net(x, t, y)

    def train_step():  # forward, MSE, backward, Adam
        adam.zero_grad()
        F.mse_loss(net(x, t, y), torch.randn_like(x)).backward()
        adam.step()

    f = forward if a.case == 'unet-forward' else train_step
    f()  # warm-up, as the tfjs side
    ms = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        f()
        ms.append((time.perf_counter() - start) * 1000)
    print(json.dumps({'ms_median': sorted(ms)[len(ms) // 2]}))


if __name__ == '__main__':
    main()

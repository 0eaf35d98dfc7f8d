"""Models "trained elsewhere": plain PyTorch modules the toolkit did not design, used by the tests
through ``--model user_models:NAME`` (the tests put this folder on ``sys.path``)."""
from typing import Optional

import torch
from torch import nn


class ConvBN(nn.Module):
    """Conv (with bias) -> BN -> ReLU twice, pooling after the second block only, adaptive average
    pooling, a linear head: shapes the toolkit's own zoo does not use."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(2))
        self.head = nn.Linear(8 * 4, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def cnn(num_classes: int = 3, in_channels: int = 1) -> nn.Module:
    """The factory named on the command line: ``--model user_models:cnn``."""
    return ConvBN(in_channels, num_classes)


def raw_data(n: int = 120, seed: int = 0):
    """Unstandardized float32 images (mean about 3, std about 2) whose class is the quadrant
    holding the brightest blob: ``x`` (n, 1, 8, 8), ``y`` (n,) in {0, 1, 2}."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    x = 3 + 2 * torch.randn(n, 1, 8, 8, generator=gen)
    for i, label in enumerate(y.tolist()):
        r, c = divmod(label, 2)
        x[i, 0, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 4
    return x, y


def train_plain(model: nn.Module, x, y, steps: int = 40, seed: Optional[int] = 0, l2: float = 0.0) -> nn.Module:
    """A plain PyTorch loop (Adam, batch 32) on the data exactly as given, with an optional L2
    penalty ``l2 * sum(p^2)``; ``seed`` None continues the current random stream."""
    if seed is not None:
        torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x), (32,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        if l2:
            loss = loss + l2 * sum((p ** 2).sum() for p in model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def smooth(num_classes: int = 3, in_channels: int = 1) -> nn.Module:
    """A smooth (tanh) MLP on 8x8 images: its loss is twice differentiable everywhere, so finite
    differences of a surface converge to the Hessian (ReLU and max-pool kinks would not)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, 16), nn.Tanh(), nn.Linear(16, num_classes))

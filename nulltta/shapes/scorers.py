"""ShapesBench scorers: the prompt-fidelity classifier, loading, Frechet distance.

The classifier is a small CNN trained on the world's clean images; the two
proxy preference networks (:mod:`nulltta.shapes.preference`) are trained on
pairwise choices (:mod:`nulltta.shapes.train_scorers` trains them all). Their
weights ship in ``nulltta/assets/shapes-scorers``. Inputs are ``(B, 3, H, W)``
images in ``[0, 1]``; other sizes are resized to 32x32 with differentiable
torch ops.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from .world import BACKGROUNDS, COLORS, IMAGE_SIZE, SHAPES, parse_prompt

__all__ = [
    "FEATURE_DIM",
    "SCORERS",
    "ShapeClassifier",
    "frechet_distance",
    "gaussian_stats",
    "load_scorer",
    "prompt_labels",
    "scorer_path",
    "to_model_input",
]

FEATURE_DIM = 64
_ASSETS = Path(__file__).resolve().parent.parent / "assets" / "shapes-scorers"


def to_model_input(images: Tensor) -> Tensor:
    """Resize to 32x32 (bilinear, antialiased, differentiable) and map [0, 1] to [-1, 1]."""
    if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        images = F.interpolate(
            images,
            size=(IMAGE_SIZE, IMAGE_SIZE),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
    return images * 2 - 1


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.GroupNorm(8, c_out), nn.SiLU())


class ShapeClassifier(nn.Module):
    """Predicts shape, colour and background; its pooled features define the FD.

    Architecture: four 3x3 conv blocks (32, 64, 128, 128 channels; 32 -> 4 px),
    global average pooling, a linear layer to ``FEATURE_DIM`` features, three heads.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            _block(3, 32, 1), _block(32, 64, 2), _block(64, 128, 2), _block(128, 128, 2)
        )
        self.embed = nn.Sequential(nn.Linear(128, FEATURE_DIM), nn.SiLU())
        self.shape_head = nn.Linear(FEATURE_DIM, len(SHAPES))
        self.color_head = nn.Linear(FEATURE_DIM, len(COLORS))
        self.background_head = nn.Linear(FEATURE_DIM, len(BACKGROUNDS))

    def features(self, images: Tensor) -> Tensor:
        """``(B, FEATURE_DIM)`` features of images in [0, 1]."""
        return self.embed(self.trunk(to_model_input(images)).mean((2, 3)))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits ``(shape, colour, background)`` of images in [0, 1]."""
        feats = self.features(images)
        return self.shape_head(feats), self.color_head(feats), self.background_head(feats)


#: Scorer names accepted by :func:`load_scorer`.
SCORERS: tuple[str, ...] = ("classifier", "preference", "preference_heldout")


def _build(name: str) -> nn.Module:
    from .preference import CoordConvPreference, TwoTowerPreference

    archs: dict[str, type[nn.Module]] = {
        "classifier": ShapeClassifier,
        "preference": TwoTowerPreference,
        "preference_heldout": CoordConvPreference,
    }
    return archs[name]()


def scorer_path(name: str, folder: str | Path | None = None) -> Path:
    """Path of a scorer's safetensors file (``name`` in classifier, preference, ...)."""
    return Path(folder or _ASSETS) / f"{name}.safetensors"


@lru_cache(maxsize=8)
def _load_cached(name: str, folder: str) -> nn.Module:
    model = _build(name)
    model.load_state_dict(load_file(scorer_path(name, folder)))
    return model.eval().requires_grad_(False)


def load_scorer(name: str, folder: str | Path | None = None) -> nn.Module:
    """Load a frozen scorer network in eval mode (a private copy of a cached load).

    Parameters
    ----------
    name : {"classifier", "preference", "preference_heldout"}
        Which network.
    folder : path, optional
        Defaults to the shipped ``nulltta/assets/shapes-scorers``.

    Raises
    ------
    FileNotFoundError
        When the weights are missing; the message says how to train them.
    """
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; choose one of {list(SCORERS)}")
    path = scorer_path(name, folder)
    if not path.is_file():
        raise FileNotFoundError(
            f"scorer weights not found at {path}; train them with "
            "`python -m nulltta.shapes.train_scorers`."
        )
    return copy.deepcopy(_load_cached(name, str(Path(folder or _ASSETS))))


def load_reference_stats(folder: str | Path | None = None) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of classifier features on clean data."""
    stats = load_file(scorer_path("reference_stats", folder))
    return stats["mean"], stats["cov"]


def prompt_labels(prompts: list[str], device: torch.device | str = "cpu") -> Tensor:
    """``(B, 3)`` int64 indices (shape, colour, background) read from prompts.

    Raises
    ------
    nulltta.shapes.world.PromptError
        For a prompt outside the world's vocabulary.
    """
    rows = []
    for prompt in prompts:
        shape, color, background = parse_prompt(prompt)
        rows.append((SHAPES.index(shape), COLORS.index(color), BACKGROUNDS.index(background)))
    return torch.tensor(rows, dtype=torch.int64, device=device)


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (unbiased) covariance of ``(N, D)`` features, in float64."""
    feats = features.double()
    mean = feats.mean(0)
    centred = feats - mean
    return mean, centred.T @ centred / max(1, feats.shape[0] - 1)


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """Frechet distance between two Gaussians (float64).

    ``||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr((C1^1/2 C2 C1^1/2)^1/2)``.
    """
    mu1, mu2, cov1, cov2 = mu1.double(), mu2.double(), cov1.double(), cov2.double()
    root1 = _sqrtm_psd(cov1)
    middle = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return (mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt

"""The two DAS samplers of ``benchmarks/das_vs_official.py`` on one pipeline, and their parity.

The pipeline (the embedded model or a local SD1.x folder) and a description
of the model and assets it was loaded from; :class:`Official`, the authors'
``pipeline_using_smc`` imported from the anchor folder (never copied into the
project) and run with their SD settings; :func:`run_ours`, one image of
:class:`nulltta.bench.das.DAS` with the same settings; and the parity checks
between the two (SSP resampling on the same uniforms, and trajectories with
resampling switched off).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


# --- the model and rewards, read at run time ---------------------------------


def load_pipeline(model: str) -> Any:
    """The embedded model, or a local SD1.x diffusers folder."""
    if model == "embedded":
        from nulltta.shapes.model import load_embedded_pipeline

        return load_embedded_pipeline()
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def default_guidance_scale() -> float:
    """The embedded model's CFG as the ShapesBench table uses it (5.0 if not found)."""
    try:
        from nulltta.bench.shapesbench import GUIDANCE_SCALE

        return float(GUIDANCE_SCALE)
    except ImportError:
        return 5.0


def assets_fingerprint(model: str) -> str:
    """SHA-256 (16 hex digits) of the UNet weights and, for the embedded model, its scorers.

    Stored with the settings, so that rows measured on one model are never
    resumed on another.
    """
    if model == "embedded":
        from nulltta.shapes.model import embedded_model_path

        folder = embedded_model_path()
        files = sorted((folder.parent / "shapes-scorers").glob("*.safetensors"))
    else:
        folder, files = Path(model), []
    files.insert(0, folder / "unet" / "diffusion_pytorch_model.safetensors")
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def model_description(model: str, pipe: Any) -> dict[str, Any]:
    """Which model and assets the numbers were measured on."""
    description: dict[str, Any] = {"model": model, "pipeline": type(pipe).__name__}
    if model == "embedded":
        from nulltta.shapes.model import embedded_model_path

        folder = embedded_model_path()
    else:
        folder = Path(model)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if weights.is_file():
        description["unet_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    try:
        log = subprocess.run(
            ["git", "log", "-1", "--format=%h %ad %s", "--date=short", "--", "nulltta/assets"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "nulltta/assets"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        description["assets_commit"] = log
        description["assets_uncommitted_changes"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        pass
    return description


# --- the authors' sampler, imported from the anchor --------------------------


class Official:
    """``pipeline_using_smc`` from the anchor, on a view of the pipeline with nulltta's DDIM.

    The view shares every module with ``pipe`` (nothing is copied or
    modified); only its scheduler is the DDIM built from the pipeline's
    training schedule, as ``nulltta.bench`` builds it. The patch runs on
    diffusers 0.42 unchanged (``_encode_prompt`` only warns); SSP resampling
    draws from numba's own generator, seeded here per call.
    """

    def __init__(self, anchor: Path, pipe: Any) -> None:
        if not (anchor / "diffusers_patch" / "pipeline_using_SMC.py").is_file():
            raise FileNotFoundError(
                f"no DAS sampler at {anchor}; pass --anchor DIR (the folder holding "
                "smc_utils.py and diffusers_patch/)"
            )
        sys.path.insert(0, str(anchor.parent))
        try:
            import numba
        except ImportError as error:  # pragma: no cover - a benchmark-only dependency
            raise ImportError("the official DAS needs numba: pip install numba") from error
        module = __import__(f"{anchor.name}.diffusers_patch.pipeline_using_SMC", fromlist=["x"])
        utils = __import__(f"{anchor.name}.smc_utils", fromlist=["x"])
        self.sample = module.pipeline_using_smc
        self.ssp = utils.ssp

        @numba.njit
        def seed_numba(seed: int) -> None:
            np.random.seed(seed)

        @numba.njit
        def numba_uniforms(count: int) -> np.ndarray:
            return np.random.rand(count)

        self.seed_numba = seed_numba
        self.numba_uniforms = numba_uniforms
        from diffusers import StableDiffusionPipeline

        from nulltta.schedulers import make_scheduler

        components = {**pipe.components, "scheduler": make_scheduler("ddim", pipe.scheduler)}
        self.pipe = StableDiffusionPipeline(**components, requires_safety_checker=False)
        self.pipe.set_progress_bar_config(disable=True)

    def run(self, prompt: str, seed: int, reward: Any, settings: dict[str, Any]) -> tuple:
        """One image and its facts, with the authors' SD settings and ours where shared."""
        from nulltta.bench import compressed_rate

        steps = settings["steps"]
        generator = torch.Generator(self.pipe.unet.device).manual_seed(seed)
        self.seed_numba(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.sample(
                self.pipe,
                prompt=prompt,
                num_inference_steps=steps,
                guidance_scale=settings["guidance_scale"],
                eta=1.0,
                generator=generator,
                output_type="pt",
                num_particles=settings["particles"],
                batch_p=settings.get("batch_p") or settings["particles"],
                resample_strategy="ssp",
                ess_threshold=settings.get("ess_threshold", 0.5),
                tempering="schedule",
                tempering_schedule="exp",
                tempering_gamma=compressed_rate(steps),
                tempering_start=0,
                reward_fn=lambda images: reward(images, [prompt] * images.shape[0]),
                kl_coeff=settings["kl_coeff"],
            )
        image, normalized_w, ess_trace = out[0], out[2], out[6]
        threshold = settings.get("ess_threshold", 0.5) * settings["particles"]
        info = {
            "resamplings": int((ess_trace[0, :steps] < threshold).sum()),
            "final_weights": normalized_w.tolist(),
        }
        return image, info


def run_ours(pipe: Any, prompt: str, seed: int, reward: Any, settings: dict, **extra) -> tuple:
    """One image of :class:`nulltta.bench.das.DAS` with the shared settings."""
    from nulltta.bench import DAS, Task

    task = Task(
        pipe,
        prompt,
        seed,
        reward,
        num_inference_steps=settings["steps"],
        guidance_scale=settings["guidance_scale"],
    )
    method = DAS(
        num_particles=settings["particles"],
        kl_coeff=settings["kl_coeff"],
        ess_threshold=settings.get("ess_threshold", 0.5),
        **extra,
    )
    output = method.run(task)
    return output.image, output.info


# --- parity checks -------------------------------------------------------------


def ssp_parity(official: Official, trials: int = 500) -> dict[str, Any]:
    """Our SSP counts against the authors' numba SSP given the same uniforms."""
    from nulltta.bench.das import ssp_counts

    rng = np.random.default_rng(0)
    mismatches = 0
    for trial in range(trials):
        n = int(rng.integers(2, 17))
        weights = rng.random(n) ** int(rng.integers(1, 6))
        weights /= weights.sum()
        official.seed_numba(trial)
        theirs = np.bincount(official.ssp(weights, n), minlength=n).tolist()
        official.seed_numba(trial)
        uniforms = official.numba_uniforms(n - 1).tolist()
        mismatches += ssp_counts((n * weights).tolist(), uniforms) != theirs
    return {"trials": trials, "mismatches": mismatches}


def trajectory_parity(
    pipe: Any,
    official: Official,
    target: Any,
    prompt: str,
    seeds: list[int],
    settings: dict,
    kl: float,
) -> list[dict[str, Any]]:
    """Resampling off, same noise draws: ours vs official, official vs official batched by 1."""
    rows = []
    for seed in seeds:
        common = {**settings, "kl_coeff": kl, "ess_threshold": 0.0}
        ours, ours_info = run_ours(pipe, prompt, seed, target, common)
        theirs, theirs_info = official.run(prompt, seed, target, common)
        theirs_1, theirs_1_info = official.run(prompt, seed, target, {**common, "batch_p": 1})
        w_ours, w_theirs, w_theirs_1 = (
            torch.tensor(i["final_weights"]) for i in (ours_info, theirs_info, theirs_1_info)
        )
        rows.append(
            {
                "prompt": prompt,
                "seed": seed,
                "kl_coeff": kl,
                "ours_vs_official_image_max_abs": float((ours - theirs).abs().max()),
                "ours_vs_official_weights_max_abs": float((w_ours - w_theirs).abs().max()),
                "ours_vs_official_same_particle": int(w_ours.argmax()) == int(w_theirs.argmax()),
                "official_batch1_vs_official_image_max_abs": float((theirs_1 - theirs).abs().max()),
                "official_batch1_vs_official_same_particle": int(w_theirs_1.argmax())
                == int(w_theirs.argmax()),
            }
        )
    return rows

"""The arithmetic floor of one Null-TTA inner step on SD1.5 at 512x512, counted.

One inner step (``NullTextModule.objective`` and its backward) runs:

1. the UNet on ``x_t`` with phi' (batch 1, the conditional branch cached),
   with a graph back to phi' only: the weights are frozen, so the backward
   computes activation gradients and no weight gradients;
2. the VAE decode of the Tweedie estimate ``x0_hat``, and its backward to
   the latent;
3. the reward: a CLIP ViT-H/14 image tower at 224x224 (PickScore's and
   HPSv2's architecture; the prompt's text embedding is cached), and its
   backward to the image.

The released code runs step 1 as a batch-2 ``[phi', c]`` UNet pass in the
graph, whose backward also goes through the conditional row: counted beside
ours. Everything is counted with ``torch.utils.flop_counter.FlopCounterMode``
on the meta device (shapes only: nothing is computed, a few seconds for the
860 M-parameter UNet) with random-weight networks of the exact architectures
(``nulltta.testing.sd15_random_pipeline``; transformers' ``CLIPVisionConfig``
of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``; open_clip's ``ViT-H-14`` when
open_clip is installed). Attention runs through PyTorch's math kernel so that
it is counted on every device as the matmuls it is.

FlopCounterMode counts matrix multiplies and convolutions (2 FLOPs per
multiply-add) and attention; element-wise work (norms, activations, the CFG
combination, the KL terms, Adam, the reward's resize) is not counted: it is
memory-bound and small next to these.

    python benchmarks/flops.py                 # writes benchmarks/results/flops.{json,md}
    python benchmarks/flops.py --tiny --no-write   # tiny networks (tests)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from flops_report import ISSUE_ESTIMATE, markdown
from torch import nn

RESULTS = Path(__file__).parent / "results"

#: Dense (no 2:4 sparsity) tensor-core peaks of the H200, TFLOP/s. NVIDIA's
#: datasheet gives the sparse figures (SXM: BF16/FP16 1,979, TF32 989; NVL:
#: BF16/FP16 1,671, TF32 835); dense is half of each.
PEAKS_TFLOPS = {
    "h200-sxm": {"bf16": 989.5, "tf32": 494.7},
    "h200-nvl": {"bf16": 835.5, "tf32": 417.5},
}
PEAK_SOURCE = (
    "NVIDIA H200 datasheet (tensor-core figures are quoted with 2:4 sparsity: SXM "
    "BF16/FP16 1,979 TFLOPS, TF32 989; NVL 1,671 and 835); dense = half "
    "(https://itkb.uw.cz/2026/06/nvidia-h200-vs-b300-precisions-cores.html lists "
    "~989 TFLOPS dense FP16/BF16 for the H200 SXM)"
)
#: PickScore's image tower (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``'s vision config).
CLIP_H14 = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
    "projection_dim": 1024,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
CLIP_TINY = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "patch_size": 8,
    "image_size": 32,
    "projection_dim": 16,
    "hidden_act": "gelu",
}


def count(fn: Callable[[], Any]) -> tuple[int, dict[str, int], Any]:
    """FLOPs of ``fn()`` by operator, with attention on the math kernel.

    Returns
    -------
    total : int
    by_op : dict
        ``{"aten.convolution": ..., "aten.mm": ...}``.
    result
        What ``fn`` returned.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        result = fn()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), by_op, result


def forward_backward(
    forward: Callable[[], torch.Tensor],
) -> dict[str, Any]:
    """Count a forward and, separately, the backward of its output (a ones gradient)."""
    forward_flops, forward_ops, output = count(forward)
    backward_flops, backward_ops, _ = count(lambda: output.backward(torch.ones_like(output)))
    return {
        "forward": forward_flops,
        "backward": backward_flops,
        "total": forward_flops + backward_flops,
        "forward_by_op": forward_ops,
        "backward_by_op": backward_ops,
    }


def freeze(*modules: nn.Module) -> None:
    """Frozen weights: no weight gradients, as in a run (``PipelineAdapter.frozen``)."""
    for module in modules:
        module.eval()
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def unet_step(unet: nn.Module, latent_size: int, device: torch.device, release: bool) -> dict:
    """The inner step's UNet pass and backward to phi'.

    ``release=False``: batch 1 (phi' only; the conditional prediction is cached).
    ``release=True``: batch 2 ``[phi', c]`` in one pass, as released.
    """
    channels = unet.config.in_channels
    dim = unet.config.cross_attention_dim
    latents = torch.zeros(1, channels, latent_size, latent_size, device=device)
    timestep = torch.tensor(500, device=device)
    null = torch.zeros(1, 77, dim, device=device, requires_grad=True)
    cond = torch.zeros(1, 77, dim, device=device)

    def forward() -> torch.Tensor:
        if release:
            out = unet(
                torch.cat([latents, latents]), timestep, torch.cat([null, cond]), return_dict=False
            )[0]
            eps_uncond, eps_cond = out.chunk(2)
            return eps_uncond + 7.5 * (eps_cond - eps_uncond)
        return unet(latents, timestep, null, return_dict=False)[0]

    return forward_backward(forward)


def unet_forward(unet: nn.Module, latent_size: int, batch: int, device: torch.device) -> int:
    """A no-grad UNet forward at ``batch`` rows (the passes outside the inner loop)."""
    channels, dim = unet.config.in_channels, unet.config.cross_attention_dim
    latents = torch.zeros(batch, channels, latent_size, latent_size, device=device)
    embeddings = torch.zeros(batch, 77, dim, device=device)
    timestep = torch.tensor(500, device=device)
    with torch.no_grad():
        return count(lambda: unet(latents, timestep, embeddings, return_dict=False)[0])[0]


def vae_step(vae: nn.Module, latent_size: int, device: torch.device, batch: int = 1) -> dict:
    """``vae.decode`` of a latent that needs a gradient, and its backward to the latent."""
    channels = vae.config.latent_channels
    x0 = torch.zeros(batch, channels, latent_size, latent_size, device=device, requires_grad=True)
    scale = vae.config.scaling_factor
    return forward_backward(lambda: vae.decode(x0 / scale, return_dict=False)[0])


def clip_step(tower: Callable[[torch.Tensor], torch.Tensor], size: int, device: torch.device,
              batch: int = 1) -> dict:  # fmt: skip
    """A CLIP image tower at ``size`` and its backward to the image."""
    images = torch.zeros(batch, 3, size, size, device=device, requires_grad=True)
    return forward_backward(lambda: tower(images))


def build_clip_transformers(device: torch.device, config: dict) -> Callable:
    """``CLIPVisionModelWithProjection`` (PickScore's image tower), random weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with device:
        model = CLIPVisionModelWithProjection(
            CLIPVisionConfig(**config, attn_implementation="sdpa")
        )
    freeze(model)
    return lambda images: model(pixel_values=images).image_embeds


def build_clip_open_clip(device: torch.device, arch: str = "ViT-H-14") -> Callable | None:
    """open_clip's ``ViT-H-14`` image tower (HPSv2's), random weights; None without open_clip."""
    try:
        import open_clip
        from open_clip.model import _build_vision_tower
    except ImportError:
        return None
    config = open_clip.get_model_config(arch)
    with device:
        tower = _build_vision_tower(config["embed_dim"], config["vision_cfg"])
    freeze(tower)
    return tower


def build_tiny_decoder(vae: nn.Module, device: torch.device) -> nn.Module:
    """A diffusers ``AutoencoderTiny`` of TAESD's config for ``vae``'s latent space.

    TAESD's blocks (64 channels; 3, 3, 3, 1 decoder blocks for SD's factor 8),
    one upsampling stage fewer per halving of the VAE's factor.
    """
    from diffusers import AutoencoderTiny

    stages = len(vae.config.block_out_channels)
    with device:
        decoder = AutoencoderTiny(
            latent_channels=vae.config.latent_channels,
            encoder_block_out_channels=(64,) * stages,
            decoder_block_out_channels=(64,) * stages,
            num_encoder_blocks=(1,) + (3,) * (stages - 1),
            num_decoder_blocks=(3,) * (stages - 1) + (1,),
        )
    freeze(decoder)
    return decoder


def build_pipeline(device: torch.device, tiny: bool) -> Any:
    """SD1.5's UNet and VAE with random weights (or the tiny test pipeline), on ``device``."""
    from nulltta.testing import sd15_random_pipeline, tiny_stable_diffusion_pipeline

    with device:
        pipe = tiny_stable_diffusion_pipeline() if tiny else sd15_random_pipeline()
    freeze(pipe.unet, pipe.vae)
    return pipe


def measure(resolution: int, device: torch.device, tiny: bool = False) -> dict[str, Any]:
    """Count every part of one inner step, ours and the release's, and the passes around it."""
    started = time.perf_counter()
    pipe = build_pipeline(device, tiny)
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    latent_size = resolution // factor
    clip_config = CLIP_TINY if tiny else CLIP_H14
    clip_size = clip_config["image_size"]
    parts = {
        "unet": unet_step(pipe.unet, latent_size, device, release=False),
        "unet_release": unet_step(pipe.unet, latent_size, device, release=True),
        "vae": vae_step(pipe.vae, latent_size, device),
        "reward": clip_step(build_clip_transformers(device, clip_config), clip_size, device),
    }
    parts["vae_tiny"] = vae_step(build_tiny_decoder(pipe.vae, device), latent_size, device)
    open_clip_tower = None if tiny else build_clip_open_clip(device)
    if open_clip_tower is not None:
        parts["reward_open_clip"] = clip_step(open_clip_tower, clip_size, device)
    k = 3
    outside = {
        "unet_forward_b1": unet_forward(pipe.unet, latent_size, 1, device),
        "unet_forward_b6": unet_forward(pipe.unet, latent_size, 2 * k, device),
        "vae_forward_b3": vae_step(pipe.vae, latent_size, device, batch=k)["forward"],
        "reward_forward_b3": parts["reward"]["forward"] * k,
    }
    return {
        "resolution": resolution,
        "latent_size": latent_size,
        "reward_input": clip_size,
        "device": str(device),
        "tiny": tiny,
        "parts": parts,
        "outside_inner_loop": outside,
        "seconds": time.perf_counter() - started,
    }


def summarise(measured: dict[str, Any], peak: dict[str, float], steps: int = 100,
              n_min: int = 5, n_max: int = 25) -> dict[str, Any]:  # fmt: skip
    """Totals, the floor in ms at the peak, and the comparison with the issue's estimate."""
    from nulltta.equations import inner_steps_schedule

    parts = measured["parts"]
    ours = parts["unet"]["total"] + parts["vae"]["total"] + parts["reward"]["total"]
    release = parts["unet_release"]["total"] + parts["vae"]["total"] + parts["reward"]["total"]
    bf16 = peak["bf16"] * 1e12
    tf32 = peak["tf32"] * 1e12
    # "auto" precision on CUDA: fp16 UNet; VAE and reward in float32 on TF32 tensor cores.
    unet_auto = parts["unet"]["total"] / bf16
    rest_auto = (parts["vae"]["total"] + parts["reward"]["total"]) / tf32
    inner = sum(inner_steps_schedule(steps, n_min, n_max))
    outside = measured["outside_inner_loop"]
    # Per denoising step outside the inner loop (read from module.training_step and the
    # greedy callback): eps(x_t, phi) for the KL, the transition's UNet pass, the K = 3
    # candidates' CFG pass (batch 6), their VAE decodes and rewards. An upper bound: the KL
    # pass stops once lambda2 is annealed to zero, the last step has no candidate UNet pass.
    per_step_outside = (
        2 * outside["unet_forward_b1"]
        + outside["unet_forward_b6"]
        + outside["vae_forward_b3"]
        + outside["reward_forward_b3"]
    )
    image = inner * ours + steps * per_step_outside
    unet_vae = parts["unet"]["total"] + parts["vae"]["total"]
    tiny = parts["unet"]["total"] + parts["vae_tiny"]["total"] + parts["reward"]["total"]
    return {
        "inner_step_tflop": ours / 1e12,
        "inner_step_tiny_decoder_tflop": tiny / 1e12,
        "floor_ms_tiny_decoder_bf16": tiny / bf16 * 1e3,
        # benchmarks/inner_step.py uses the brightness reward: its floor is UNet + VAE.
        "unet_vae_tflop": unet_vae / 1e12,
        "floor_ms_unet_vae": {
            "bf16": unet_vae / bf16 * 1e3,
            "tf32": unet_vae / tf32 * 1e3,
            "auto": (parts["unet"]["total"] / bf16 + parts["vae"]["total"] / tf32) * 1e3,
        },
        "inner_step_release_tflop": release / 1e12,
        "release_over_ours": release / ours,
        "floor_ms_bf16": ours / bf16 * 1e3,
        "floor_ms_release_bf16": release / bf16 * 1e3,
        "floor_ms_auto_precision": (unet_auto + rest_auto) * 1e3,
        "shares": {name: parts[name]["total"] / ours for name in ("unet", "vae", "reward")},
        "issue_estimate_tflop": ISSUE_ESTIMATE,
        "counted_over_issue": ours / 1e12 / ISSUE_ESTIMATE["total"],
        "schedule": {"steps": steps, "n_min": n_min, "n_max": n_max, "inner_steps": inner},
        "per_step_outside_inner_tflop": per_step_outside / 1e12,
        "image_tflop": image / 1e12,
        "image_floor_s_bf16": image / bf16,
    }


def main(argv: list[str] | None = None) -> int:
    """Count, print the table, and write JSON and Markdown."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--device", default="meta", help="meta (nothing computed; default) or cpu")
    parser.add_argument("--peak", choices=sorted(PEAKS_TFLOPS), default="h200-sxm")
    parser.add_argument("--tiny", action="store_true", help="tiny networks (tests)")
    parser.add_argument("--out", type=Path, default=RESULTS / "flops.json")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    measured = measure(args.resolution, torch.device(args.device), tiny=args.tiny)
    peak = PEAKS_TFLOPS[args.peak]
    record = {
        "measured": measured,
        "summary": summarise(measured, peak),
        "peak_name": args.peak,
        "peak_tflops": peak,
        "peak_source": PEAK_SOURCE,
        "torch": torch.__version__,
    }
    text = markdown(record)
    print(text)
    if not args.no_write:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

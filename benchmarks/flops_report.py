"""The Markdown report of the FLOP count (``benchmarks/results/flops.md``).

``markdown(record)`` turns the record that ``benchmarks/flops.py`` writes to
``flops.json`` (the counted parts, their summary and the peak used) into the
tables of parts, totals and floors. It counts nothing, so a committed
``flops.json`` regenerates its ``flops.md`` without counting again. The
issue's estimate that the tables compare against, ``ISSUE_ESTIMATE``, lives
here; ``flops.summarise`` imports it.
"""

from __future__ import annotations

from typing import Any

#: The issue's estimate (issue 14), TFLOP per inner step.
ISSUE_ESTIMATE = {"unet": 0.8, "vae": 2.5, "reward": 0.3, "total": 3.6}


def markdown(record: dict[str, Any]) -> str:
    """The table of parts, totals and floors."""
    measured, summary = record["measured"], record["summary"]
    parts = measured["parts"]
    peak_name, peak = record["peak_name"], record["peak_tflops"]
    tera = 1e12
    res, latent, clip = measured["resolution"], measured["latent_size"], measured["reward_input"]
    rows = [
        ("UNet, ours (batch 1, conditional branch cached)", "unet", ISSUE_ESTIMATE["unet"]),
        ("UNet, release (batch-2 `[phi', c]` pass in the graph)", "unet_release", None),
        (f"VAE decode ({latent}x{latent}x4 -> {res}x{res}x3) and backward to the latent", "vae",
         ISSUE_ESTIMATE["vae"]),
        (f"reward: CLIP ViT-H/14 image tower at {clip} (transformers, PickScore's)", "reward",
         ISSUE_ESTIMATE["reward"]),
    ]  # fmt: skip
    rows.append(("light gradient decoder: `AutoencoderTiny`, TAESD's config (not in the total)",
                 "vae_tiny", None))  # fmt: skip
    if "reward_open_clip" in parts:
        rows.append(("reward: open_clip ViT-H-14 image tower (HPSv2's), a check",
                     "reward_open_clip", None))  # fmt: skip
    model = "tiny test networks" if measured["tiny"] else "SD1.5"
    lines = [
        f"# The arithmetic floor of one inner step: {model} at {res}x{res}",
        "",
        "Counted with `torch.utils.flop_counter.FlopCounterMode` on the "
        f"{measured['device']} device (`python benchmarks/flops.py`, "
        f"{measured['seconds']:.0f} s): matmuls, convolutions and attention, 2 FLOPs per "
        "multiply-add; frozen weights, so each backward computes activation gradients "
        "only. Element-wise work (norms, activations, CFG, KL, Adam, resizing) is not "
        "counted.",
        "",
        "| part | forward TFLOP | backward TFLOP | total TFLOP | issue's estimate |",
        "|---|---|---|---|---|",
    ]
    for label, key, estimate in rows:
        part = parts[key]
        guess = "-" if estimate is None else f"{estimate:.1f}"
        lines.append(
            f"| {label} | {part['forward'] / tera:.3f} | {part['backward'] / tera:.3f} | "
            f"{part['total'] / tera:.3f} | {guess} |"
        )
    lines += [
        f"| **inner step, ours** (UNet + VAE + reward) | | | "
        f"**{summary['inner_step_tflop']:.3f}** | {ISSUE_ESTIMATE['total']:.1f} |",
        f"| inner step, release | | | {summary['inner_step_release_tflop']:.3f} | - |",
        "| inner step, ours with the light gradient decoder | | | "
        f"{summary['inner_step_tiny_decoder_tflop']:.3f} | - |",
        "",
        f"Peak used: {peak_name}, dense (no sparsity) BF16/FP16 {peak['bf16']} TFLOP/s, "
        f"TF32 {peak['tf32']} TFLOP/s. Source: {record['peak_source']}.",
        "",
        "| floor of one inner step | ms |",
        "|---|---|",
        f"| ours, everything at the BF16/FP16 peak | {summary['floor_ms_bf16']:.2f} |",
        f"| release, everything at the BF16/FP16 peak | {summary['floor_ms_release_bf16']:.2f} |",
        "| ours at the CUDA default precision (fp16 UNet; VAE and reward float32 on TF32) | "
        f"{summary['floor_ms_auto_precision']:.2f} |",
        f"| ours with the light gradient decoder, at the BF16/FP16 peak | "
        f"{summary['floor_ms_tiny_decoder_bf16']:.2f} |",
        "| UNet + VAE only (`benchmarks/inner_step.py`'s brightness reward): BF16 / TF32 / "
        "default precision | "
        + " / ".join(f"{summary['floor_ms_unet_vae'][k]:.2f}" for k in ("bf16", "tf32", "auto"))
        + " |",
        "",
        f"- The counted inner step is {summary['counted_over_issue']:.2f}x the issue's 3.6 "
        "TFLOP. Shares of ours: "
        + ", ".join(f"{k} {v:.0%}" for k, v in summary["shares"].items())
        + ".",
        f"- The release's way costs {summary['release_over_ours']:.2f}x ours per inner step "
        "(the conditional row goes through the UNet forward and backward again).",
        f"- Per image at the paper's schedule ({summary['schedule']['steps']} steps, "
        f"n {summary['schedule']['n_min']}-{summary['schedule']['n_max']}: "
        f"{summary['schedule']['inner_steps']} inner steps), with the passes outside the "
        f"inner loop ({summary['per_step_outside_inner_tflop']:.2f} TFLOP per denoising step "
        "at most: the KL's and the transition's UNet passes, the 3 candidates' CFG pass, "
        f"decodes and rewards): {summary['image_tflop']:.0f} TFLOP, "
        f"{summary['image_floor_s_bf16']:.1f} s at the BF16 peak. These are counted FLOPs "
        "times the call counts read from the code, not a measurement of time.",
    ]
    return "\n".join(lines) + "\n"

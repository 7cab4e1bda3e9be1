"""The report of ``benchmarks/gradient_decoder.py``: its record as Markdown (``results.md``)."""

from __future__ import annotations

from typing import Any

__all__ = ["markdown"]


def markdown(record: dict[str, Any]) -> str:
    """The report."""
    training, model = record.get("training"), record["model"]
    lines = ["# A light gradient decoder on the embedded model", ""]
    lines.append(
        f"- model: `{model['path']}` (unet {model.get('unet_sha256', '?')}, vae "
        f"{model.get('vae_sha256', '?')}; last commit: {model.get('last_commit', '?')}"
        + ("; uncommitted changes" if model.get("uncommitted_changes") else "")
        + ")"
    )
    lines.append(f"- machine: {record['machine']}; torch threads {record['threads']}")
    if record.get("note"):
        lines.append(f"- note: {record['note']}")
    decoder = record["decoder"]
    lines.append(
        f"- decoder: `AutoencoderTiny`, decoder blocks {decoder['blocks']} x {decoder['channels']} "
        f"channels, {decoder['parameters']} decoder parameters, saved in `{decoder['path']}`"
    )
    if training is not None:
        pool = training["pool"]
        lines += [
            "",
            "## Training",
            "",
            f"{training['steps']} Adam steps (batch {training['batch_size']}, lr "
            f"{training['learning_rate']}, cosine decay, seed {training['seed']}) on "
            f"{pool['world_images']} encoded world images and {pool['trajectory_x0']} Tweedie "
            "estimates of plain CFG trajectories, target the full VAE's decode: "
            f"{training['train_seconds']:.0f} s of training after "
            f"{training['data_seconds']:.0f} s making the data; loss = MSE of the values "
            f"(images in [-1, 1]) + {training.get('jvp_weight', 0)} x MSE of the change under "
            f"a latent step of std {training.get('jvp_scale', 0)} / std^2; final training loss "
            f"{training.get('final_train_loss', float('nan')):.5f}.",
            "",
        ]
    rec = record["reconstruction"]
    world, traj = rec["world"], rec["trajectory"]
    lines += [
        "| held-out latents | n | MSE vs full VAE | PSNR vs full VAE (dB) |",
        "|---|---|---|---|",
        f"| encoded world images | {world['n']} | {world['mse_vs_full_vae']:.5f} | "
        f"{world['psnr_vs_full_vae_db']:.1f} |",
        f"| trajectory x0_hat | {traj['n']} | {traj['mse_vs_full_vae']:.5f} | "
        f"{traj['psnr_vs_full_vae_db']:.1f} |",
        "",
        f"Against the clean world images: light decoder {world['psnr_light_vs_clean_db']:.1f} "
        f"dB, full VAE {world['psnr_full_vae_vs_clean_db']:.1f} dB. Cosine between the target "
        "reward's gradients w.r.t. x0_hat through the two decoders: "
        f"{record['gradient']['cosine']['mean']:.3f} ± {record['gradient']['cosine']['se']:.3f} "
        f"(n = {record['gradient']['n']}).",
    ]
    result = record.get("measurement")
    if result is not None:
        summary = result["summary"]
        settings = result["settings"]
        metrics = [k for k, v in summary["full VAE"].items() if isinstance(v, dict) and "mean" in v
                   and "seconds" not in k]  # fmt: skip
        lines += [
            "",
            "## Effect on the result",
            "",
            f"{summary['full VAE']['n']} ShapesBench (prompt, seed) pairs, "
            f"{settings['num_inference_steps']} steps (schedule rate "
            f"{settings['schedule_rate']:.4f}, {result['inner_steps_per_image']} inner steps per "
            f"image), CFG {settings['guidance_scale']}, lambda2 {settings['kl_weight']}"
            f"{' annealed' if settings['anneal_kl'] else ''}; the two variants interleaved in one "
            "process. Mean ± SE over pairs.",
            "",
            "| variant | s / image (wall) | CPU s / image | inner step ms (wall / CPU, median) | "
            + " | ".join(metrics)
            + " |",
            "|---|---|---|---|" + "---|" * len(metrics),
        ]
        for name, entry in summary.items():
            cells = [f"{entry[m]['mean']:.3f} ± {entry[m]['se']:.3f}" for m in metrics]
            lines.append(
                f"| {name} | {entry['seconds_per_image']['mean']:.2f} ± "
                f"{entry['seconds_per_image']['se']:.2f} | "
                f"{entry['cpu_seconds_per_image']['mean']:.2f} ± "
                f"{entry['cpu_seconds_per_image']['se']:.2f} | "
                f"{entry['inner_step_ms_median']:.1f} / {entry['inner_step_cpu_ms_median']:.1f} | "
                + " | ".join(cells)
                + " |"
            )
        light = summary["light decoder"]
        diffs = ", ".join(
            f"{k} {v['mean']:+.3f} ± {v['se']:.3f}" for k, v in light["minus_full_vae"].items()
        )
        lines += [
            "",
            f"- light minus full, paired (mean ± SE): {diffs}",
            "- time per image, light / full (paired ratio, mean ± SE): wall "
            f"{light['seconds_ratio_to_full_vae']['mean']:.3f} ± "
            f"{light['seconds_ratio_to_full_vae']['se']:.3f}, CPU "
            f"{light['cpu_seconds_ratio_to_full_vae']['mean']:.3f} ± "
            f"{light['cpu_seconds_ratio_to_full_vae']['se']:.3f}; one inner step "
            f"{light['inner_step_cpu_ms_median']:.1f} ms of CPU against "
            f"{summary['full VAE']['inner_step_cpu_ms_median']:.1f} ms "
            f"({len(result['inner_step_seconds']['full VAE'])} timed steps each, interleaved)",
        ]
        if result.get("unavailable_scorers"):
            lines.append(
                "- left out (failed to load): "
                + "; ".join(f"`{k}`: {v[:120]}" for k, v in result["unavailable_scorers"].items())
            )
    return "\n".join(lines) + "\n"

"""Tiny random-weight reward models, in memory and in the real on-disk formats.

Nothing is downloaded: every architecture is built small (hidden 32, 2
layers) with random weights, and tokenizers are written into temporary
folders. ``weights_dir`` lays the files out as ``$NULLTTA_WEIGHTS_DIR``
expects them, under the real file names and repo ids.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

TINY_OPEN_CLIP = "nulltta-rewards-tiny"
BERT_WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] a an the photo of cat dog on sofa red blue green "
    "painting house tree with and in ##s , . !"
).split()
PROMPTS = ["a photo of a cat", "a red house with a tree"]


@pytest.fixture(autouse=True)
def _isolated_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the machine's own weights: empty hub cache, no weights dir."""
    from huggingface_hub import constants

    cache = tmp_path / "empty_hub_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("NULLTTA_WEIGHTS_DIR", raising=False)


# ------------------------------------------------------------------ tokenizers
@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level CLIPTokenizer with no merges: one token per character."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = tmp_path_factory.mktemp("clip_tokenizer_src")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    chars = list(bytes_to_unicode().values())
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    out = tmp_path_factory.mktemp("clip_tokenizer")
    CLIPTokenizer.from_pretrained(str(folder)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def clip_tokenizer(clip_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(clip_tokenizer_dir))


@pytest.fixture(scope="session")
def bert_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bert-base-uncased-like folder (vocab.txt, lower-casing) with a tiny vocabulary."""
    folder = tmp_path_factory.mktemp("bert_tokenizer")
    (folder / "vocab.txt").write_text("\n".join(BERT_WORDS) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return folder


# ------------------------------------------------------------------ transformers CLIP
def _tiny_clip_config(vocab_size: int):
    from transformers import CLIPConfig

    common = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
              "num_attention_heads": 4, "projection_dim": 16}
    return CLIPConfig(
        text_config={**common, "vocab_size": vocab_size, "max_position_embeddings": 77,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={**common, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )


@pytest.fixture(scope="session")
def tiny_clip(clip_tokenizer):
    """A tiny transformers CLIPModel; logit_scale is log(50), not the init value."""
    from transformers import CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(_tiny_clip_config(len(clip_tokenizer))).eval()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(50.0))
    return model


@pytest.fixture(scope="session")
def tiny_clip_dir(tiny_clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_clip")
    tiny_clip.save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------ open_clip (HPS)
@pytest.fixture(scope="session")
def open_clip_arch(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny open_clip architecture (same text vocabulary as ViT-H-14)."""
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_cfg")
    config = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16,
                       "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 2},
    }
    (folder / f"{TINY_OPEN_CLIP}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    return TINY_OPEN_CLIP


@pytest.fixture(scope="session")
def tiny_open_clip(open_clip_arch: str):
    import open_clip

    torch.manual_seed(1)
    return open_clip.create_model(open_clip_arch, pretrained=None).eval()


@pytest.fixture(scope="session")
def hps_checkpoint(tiny_open_clip, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model saved as HPS saves it: ``{"state_dict": ...}`` in half precision."""
    folder = tmp_path_factory.mktemp("hps")
    state = {k: v.half() for k, v in tiny_open_clip.state_dict().items()}
    path = folder / "HPS_v2_compressed.pt"
    torch.save({"state_dict": state}, path)
    return path


# ------------------------------------------------------------------ aesthetic head
@pytest.fixture(scope="session")
def aesthetic_head():
    from nulltta.rewards.pretrained import MLPHead

    torch.manual_seed(2)
    return MLPHead(16).eval()


# ------------------------------------------------------------------ ImageReward (BLIP)
@pytest.fixture(scope="session")
def bert_tokenizer(bert_tokenizer_dir: Path):
    from nulltta.rewards.imagereward import load_imagereward_tokenizer

    return load_imagereward_tokenizer(bert_tokenizer_dir)


@pytest.fixture(scope="session")
def med_config_dict(bert_tokenizer) -> dict:
    return {
        "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 32,
        "initializer_range": 0.02, "intermediate_size": 37, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 64, "model_type": "bert", "num_attention_heads": 2,
        "num_hidden_layers": 2, "pad_token_id": 0, "type_vocab_size": 2,
        "vocab_size": len(bert_tokenizer), "encoder_width": 768, "add_cross_attention": True,
    }


@pytest.fixture(scope="session")
def tiny_imagereward(med_config_dict):
    """Tiny BLIP ViT (width 128 = 2 heads of 64) + BERT (hidden 32) + the real MLP shape."""
    from nulltta.rewards.imagereward_model import BlipVisionConfig, ImageRewardModel, MedConfig

    torch.manual_seed(3)
    vision = BlipVisionConfig(image_size=32, patch_size=8, width=128, depth=2, heads=2)
    model = ImageRewardModel(vision, MedConfig.from_dict(med_config_dict)).eval()
    with torch.no_grad():  # random, non-trivial norms and biases
        for name, param in model.named_parameters():
            if "LayerNorm" in name or "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model


# ------------------------------------------------------------------ weights folder
@pytest.fixture(scope="session")
def weights_dir(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_clip_dir: Path,
    clip_tokenizer_dir: Path,
    hps_checkpoint: Path,
    aesthetic_head,
    tiny_imagereward,
    med_config_dict: dict,
    bert_tokenizer_dir: Path,
) -> Path:
    """Every reward's files, under their real names, as ``$NULLTTA_WEIGHTS_DIR`` holds them."""
    root = tmp_path_factory.mktemp("weights")

    def copy_dir(src: Path, dst: Path) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for item in src.iterdir():
            shutil.copy(item, dst / item.name)

    copy_dir(tiny_clip_dir, root / "yuvalkirstain" / "PickScore_v1")
    copy_dir(clip_tokenizer_dir, root / "laion" / "CLIP-ViT-H-14-laion2B-s32B-b79K")
    copy_dir(tiny_clip_dir, root / "openai" / "clip-vit-large-patch14")
    copy_dir(clip_tokenizer_dir, root / "openai" / "clip-vit-large-patch14")
    shutil.copy(hps_checkpoint, root / "HPS_v2_compressed.pt")  # flat layout
    (root / "xswu" / "HPSv2").mkdir(parents=True)
    shutil.copy(hps_checkpoint, root / "xswu" / "HPSv2" / "HPS_v2.1_compressed.pt")
    head_dir = root / "camenduru" / "improved-aesthetic-predictor"
    head_dir.mkdir(parents=True)
    torch.save(aesthetic_head.state_dict(), head_dir / "sac+logos+ava1-l14-linearMSE.pth")
    ir_dir = root / "THUDM" / "ImageReward"
    ir_dir.mkdir(parents=True)
    state = dict(tiny_imagereward.state_dict())
    # The released file also holds BERT's position_ids buffer.
    state["blip.text_encoder.embeddings.position_ids"] = torch.arange(64)[None]
    torch.save(state, ir_dir / "ImageReward.pt")
    (ir_dir / "med_config.json").write_text(json.dumps(med_config_dict))
    copy_dir(bert_tokenizer_dir, root / "bert-base-uncased")  # repo-name layout
    return root


@pytest.fixture
def use_weights_dir(monkeypatch: pytest.MonkeyPatch, weights_dir: Path) -> Path:
    monkeypatch.setenv("NULLTTA_WEIGHTS_DIR", str(weights_dir))
    return weights_dir


@pytest.fixture
def hub_cache():
    """Return ``make(repo_id, {name: src})``, laying files out as huggingface_hub caches them."""
    from huggingface_hub import constants

    def make(repo_id: str, files: dict[str, Path], sha: str = "0" * 40) -> Path:
        repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / sha
        snapshot.mkdir(parents=True, exist_ok=True)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(sha)
        for name, src in files.items():
            shutil.copy(src, snapshot / name)
        return snapshot

    return make


@pytest.fixture
def images() -> torch.Tensor:
    """Two 32x32 images in [0, 1] on the uint8 grid (what a PIL reference sees exactly)."""
    return torch.randint(0, 256, (2, 3, 32, 32)).float() / 255


@pytest.fixture(scope="session")
def to_pil():
    """Return a function turning ``(B, 3, H, W)`` images in [0, 1] into PIL images."""
    from PIL import Image

    def convert(images: torch.Tensor) -> list:
        arrays = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a) for a in arrays]

    return convert

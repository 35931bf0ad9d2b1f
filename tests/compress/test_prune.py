"""MSFN structural pruning: exact sub-network, valid shapes, reload without pickles, export, MACs drop, clear errors."""

import pytest
import torch

from drsedge.compress.prune import _unit_slices, ffn_blocks, prune_msfn, taylor_gradients, unit_importance
from drsedge.errors import DrsedgeError
from drsedge.export import check_parity, export_onnx
from drsedge.models import load_model, model_info, save_model, student_config

CFG = dict(dim=8, num_blocks=[1, 1, 1, 2], ffn_expansion_factor=2.0)


def _model():
    torch.manual_seed(0)
    cfg = student_config(**CFG)
    return cfg.build().eval(), cfg


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor"])
def test_pruned_model_equals_masked_original(importance):
    model, cfg = _model()
    x = torch.rand(1, 3, 32, 32)
    if importance == "taylor":
        taylor_gradients(model, x, x)
    pruned, pcfg = prune_msfn(model, cfg, 0.5, importance)
    # Masking the removed units' project_in channels in the original gives the same function.
    masked = cfg.build().eval()
    masked.load_state_dict(model.state_dict())
    for name, ffn in ffn_blocks(masked).items():
        h = ffn.dwconv3x3_1.out_channels
        kept_w = ffn_blocks(pruned)[name].project_in.weight
        units = _unit_slices(ffn)
        for half in ("A", "B"):
            for unit in units[half]:
                rows = unit[0][1]
                w = ffn.project_in.weight.data[rows]
                if not any(torch.equal(w[0], k) for k in kept_w):
                    ffn.project_in.weight.data[rows] = 0
        assert ffn_blocks(pruned)[name].dwconv3x3_1.out_channels == h // 2
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), masked(x), atol=1e-5, rtol=0)
    orig = {n: f.dwconv3x3_1.out_channels for n, f in ffn_blocks(model).items()}
    assert pcfg.ffn_hidden == {n: h // 2 for n, h in orig.items()}


def test_reload_export_and_macs(tmp_path):
    model, cfg = _model()
    pruned, pcfg = prune_msfn(model, cfg, 0.5)
    path = save_model(tmp_path / "p.safetensors", pruned, pcfg)
    loaded, lcfg = load_model(path)
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert lcfg == pcfg
    before, after = model_info(model, 64, 64), model_info(pruned, 64, 64)
    assert after.params < before.params and after.macs < before.macs
    assert check_parity(pruned, export_onnx(pruned, tmp_path / "p.onnx")).worst <= 1e-4
    # Pruning again keeps shrinking; ratio 0 is the identity.
    same, _ = prune_msfn(model, cfg, 0.0)
    with torch.no_grad():
        assert torch.equal(same(x), model(x))


def test_bad_ratio_odd_width_and_taylor_without_grad():
    model, cfg = _model()
    with pytest.raises(DrsedgeError, match="zero channels"):
        prune_msfn(model, cfg, 1.0)
    with pytest.raises(DrsedgeError, match="needs gradients"):
        prune_msfn(model, cfg, 0.5, "taylor")
    odd = student_config(dim=8, num_blocks=[1, 1, 1, 1], ffn_expansion_factor=2.66)  # int(8 * 2.66) = 21
    with pytest.raises(DrsedgeError, match="odd"):
        prune_msfn(odd.build(), odd, 0.5)
    with pytest.raises(DrsedgeError, match="importance"):
        unit_importance(ffn_blocks(model)["latent.0"], "hessian")


@pytest.mark.parametrize("importance", ["l2", "taylor"])
def test_attention_pruning_keeps_heads_equal_and_ks_follow_c(tmp_path, importance):
    from drsedge.compress.prune import attention_blocks, prune_model
    from drsedge.models import topk_sizes

    model, cfg = _model()
    x = torch.rand(1, 3, 32, 32)
    if importance == "taylor":
        taylor_gradients(model, x, x)
    pruned, pcfg = prune_model(model, cfg, 0.25, importance, ("msfn", "attention"))
    probs = {}  # block -> C seen by its top-k attention during a forward pass
    for name, attn in attention_blocks(pruned).items():
        orig = attention_blocks(model)[name]
        c_old = orig.project_out.in_channels // orig.num_heads
        c_new = attn.project_out.in_channels // attn.num_heads
        assert attn.num_heads == orig.num_heads and attn.project_out.in_channels == attn.num_heads * c_new
        assert c_new == c_old - round(0.25 * c_old) and pcfg.attn_inner[name] == attn.num_heads * c_new
        orig_probs = attn.probs

        def spy(scores, n=name, f=orig_probs):
            probs[n] = scores.shape[-1]
            return f(scores)

        attn.probs = spy
    with torch.no_grad():
        y = pruned(x)
    assert y.shape == x.shape
    for name, attn in attention_blocks(pruned).items():
        c = attn.project_out.in_channels // attn.num_heads
        assert probs[name] == c and len(topk_sizes(c)) == 4
    for attn in attention_blocks(pruned).values():
        del attn.probs  # drop the spy before saving / exporting
    path = save_model(tmp_path / "a.safetensors", pruned, pcfg)
    loaded, lcfg = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), y, atol=0, rtol=0)
    assert lcfg == pcfg
    assert model_info(pruned, 64, 64).macs < model_info(prune_msfn(model, cfg, 0.25)[0], 64, 64).macs
    assert check_parity(loaded, export_onnx(loaded, tmp_path / "a.onnx")).worst <= 1e-4


def test_attention_ratio_leaving_one_channel_is_refused():
    from drsedge.compress.prune import prune_attention

    model, cfg = _model()  # C = 8 per head everywhere
    with pytest.raises(DrsedgeError, match="channel"):
        prune_attention(model, cfg, 0.9)


@pytest.mark.parametrize("importance", ["l1", "taylor"])
def test_head_pruning_equals_masking_those_heads(tmp_path, importance):
    from drsedge.compress.prune import attention_blocks, head_importance, prune_heads, prune_model
    from drsedge.models import config_from_state_dict

    model, cfg = _model()  # heads 1/2/4/8: C = 8 per head (16 in decoder_level1)
    x = torch.rand(1, 3, 32, 32)
    if importance == "taylor":
        taylor_gradients(model, x, x)
    pruned, pcfg = prune_heads(model, cfg, 0.5, importance)
    masked = cfg.build().eval()
    masked.load_state_dict(model.state_dict())
    for name, attn in attention_blocks(masked).items():
        h = attn.num_heads
        c = attn.project_out.in_channels // h
        new = attention_blocks(pruned)[name]
        assert new.num_heads == h - h // 2 and new.temperature.shape == (new.num_heads, 1, 1)
        assert new.project_out.in_channels == c * new.num_heads and pcfg.attn_heads.get(name, h) == new.num_heads
        kept = set(torch.topk(head_importance(attention_blocks(model)[name], importance), new.num_heads).indices.tolist())
        for dropped in set(range(h)) - kept:  # a head's whole contribution goes through its project_out columns
            attn.project_out.weight.data[:, dropped * c : (dropped + 1) * c] = 0
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), masked(x), atol=1e-6, rtol=1e-5)
    assert pcfg.attn_heads == {k: v for k, v in pcfg.attn_heads.items() if not k.startswith("encoder_level1")}
    inferred = config_from_state_dict(pruned.state_dict()).build().eval()  # config inferred back from the keys alone
    inferred.load_state_dict(pruned.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(inferred(x), pruned(x), atol=0, rtol=0)
    path = save_model(tmp_path / "h.safetensors", pruned, pcfg)
    loaded, lcfg = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), pruned(x), atol=0, rtol=0)
    assert lcfg == pcfg and model_info(pruned, 64, 64).macs < model_info(model, 64, 64).macs
    assert check_parity(loaded, export_onnx(loaded, tmp_path / "h.onnx")).worst <= 1e-4
    # heads + channels per head in one pass (taylor gradients follow the sliced weights)
    both, _bcfg = prune_model(model, cfg, 0.5, importance, ("heads", "attention"))
    for name, a in attention_blocks(both).items():
        c = attention_blocks(model)[name].project_out.in_channels // attention_blocks(model)[name].num_heads
        assert a.project_out.in_channels == (c - c // 2) * a.num_heads and a.num_heads == attention_blocks(pruned)[name].num_heads
    with torch.no_grad():
        assert both(x).shape == x.shape


@pytest.mark.parametrize("importance", ["l2", "taylor"])
def test_stream_pruning_couples_shuffles_and_skips(tmp_path, importance):
    from drsedge.compress.prune import prune_model
    from drsedge.compress.prune_streams import stream_unit_importance
    from drsedge.models import config_from_state_dict

    model, cfg = _model()  # dim 8: streams 8/16/32/64, Upsample outputs 32/16/8, decoder_level1 = 8 + 8
    x = torch.rand(1, 3, 32, 32)
    if importance == "taylor":
        taylor_gradients(model, x, x)
    units = stream_unit_importance(model, cfg, "encoder_level2", importance)
    assert [len(ch) for ch, _ in units] == [4] * 4  # PixelUnshuffle: one down1_2 channel = 4 stream channels
    pruned, pcfg = prune_model(model, cfg, 0.5, importance, ("streams",))
    sw = pcfg.stream_widths
    assert sw == {"encoder_level1": 4, "encoder_level2": 8, "encoder_level3": 16, "latent": 32, "up4_3": 16,
                  "decoder_level3": 16, "up3_2": 8, "decoder_level2": 8, "up2_1": 4}
    o, p = dict(model.named_parameters()), dict(pruned.named_parameters())
    # the kept units are the most important ones; encoder_level1's (offset by up2_1's 8) also leave decoder_level1
    def kept(stream):
        ranked = sorted(stream_unit_importance(model, cfg, stream, importance), key=lambda t: -t[1])
        return sorted(c for ch, _ in ranked[: len(ranked) // 2] for c in ch)

    e1, u1 = kept("encoder_level1"), kept("up2_1")
    dec1 = u1 + [8 + c for c in e1]
    torch.testing.assert_close(p["patch_embed.proj.weight"], o["patch_embed.proj.weight"][e1])
    torch.testing.assert_close(p["decoder_level1.0.norm1.body.weight"], o["decoder_level1.0.norm1.body.weight"][dec1])
    torch.testing.assert_close(p["output.weight"], o["output.weight"][:, dec1])
    torch.testing.assert_close(p["encoder_level1.0.attn.qkv.weight"], o["encoder_level1.0.attn.qkv.weight"][:, e1])
    rows = [4 * u + k for u in u1 for k in range(4)]  # PixelShuffle: 4 conv channels per stream channel
    torch.testing.assert_close(p["up2_1.body.0.weight"], o["up2_1.body.0.weight"][rows][:, kept("decoder_level2")])
    e2 = kept("encoder_level2")  # PixelUnshuffle: 4 stream channels per down1_2 channel
    torch.testing.assert_close(p["down1_2.body.0.weight"], o["down1_2.body.0.weight"][sorted({c // 4 for c in e2})][:, e1])
    assert p["reduce_chan_level2.weight"].shape[1] == sw["up3_2"] + sw["encoder_level2"]  # skip concatenation
    # attention and MSFN inner widths stay: heads and top-k sizes unchanged
    for name, blk in model.named_children():
        if name.startswith(("encoder_level", "latent", "decoder_level")):
            for i, b in enumerate(blk):
                nb = getattr(pruned, name)[i]
                assert nb.attn.num_heads == b.attn.num_heads and nb.attn.qkv.out_channels == b.attn.qkv.out_channels
                assert nb.ffn.project_in.out_channels == b.ffn.project_in.out_channels
    with torch.no_grad():
        y = pruned(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert model_info(pruned, 64, 64).macs < 0.75 * model_info(model, 64, 64).macs
    path = save_model(tmp_path / "s.safetensors", pruned, pcfg)
    loaded, lcfg = load_model(path)
    inferred = config_from_state_dict(pruned.state_dict()).build().eval()
    inferred.load_state_dict(pruned.state_dict(), strict=True)  # widths recovered from the keys alone
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), y, atol=0, rtol=0)
        torch.testing.assert_close(inferred(x), y, atol=0, rtol=0)
    assert lcfg == pcfg and check_parity(loaded, export_onnx(loaded, tmp_path / "s.onnx")).worst <= 1e-4
    # all four scopes in one pass; MEFC models are refused with one line
    both, _ = prune_model(model, cfg, 0.25, importance, ("streams", "msfn", "heads", "attention"))
    with torch.no_grad():
        assert both(x).shape == x.shape
    teacher_cfg = cfg.__class__.from_dict({**cfg.to_dict(), "mefc": True})
    with pytest.raises(DrsedgeError, match="MEFC"):
        prune_model(teacher_cfg.build(), teacher_cfg, 0.5, "l2", ("streams",))

"""AST (Zhou et al., CVPR 2024) against upstream's own outputs (``../shared/fixtures/ast``, joshyZhou/AST @ 80dce68):
parity, the AST-B key list, any H x W, shift masks from the shape, and the ONNX export."""

import json

import numpy as np
import pytest
import torch

from drsedge.models.ast import AST, PRESETS, build_ast, config_from_state_dict, shift_attn_mask, unwrap_state_dict, window_partition


@pytest.fixture
def fx(fixtures_dir):
    from safetensors.torch import load_file

    d = fixtures_dir.parent / "ast"
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    return {"state": load_file(d / "small_state.safetensors"), "inputs": load_file(d / "inputs.safetensors"),
            "outputs": load_file(d / "small_outputs.safetensors"), "keys": json.loads((d / "default_keys.json").read_text()),
            "config": json.loads((d / "config.json").read_text())}


def _small(fx):
    m = AST(config_from_state_dict(fx["state"])).eval()
    m.load_state_dict(fx["state"], strict=True)
    return m


def test_fixture_parity_on_both_inputs(fx):
    m = _small(fx)
    assert sum(p.numel() for p in m.parameters()) == fx["config"]["small"]["params"] == 964111
    for name, x in fx["inputs"].items():
        with torch.no_grad():
            y = m(x)
        assert (y - fx["outputs"][name]).abs().max().item() <= 1e-5, name


def test_ast_b_key_list_loads_strictly_in_upstream_order(fx):
    d = fx["keys"]["default_AST_B"]
    sd = {k: torch.zeros(s) for k, s in d["keys"]}
    assert len(sd) == 611
    m = build_ast("ast-b")
    assert list(m.state_dict()) == [k for k, _ in d["keys"]]
    assert all(list(v.shape) == s for (_, s), v in zip(d["keys"], m.state_dict().values()))
    assert sum(p.numel() for p in m.parameters()) == d["params"] == 65362455
    cfg = config_from_state_dict(sd)
    assert (cfg.embed_dim, cfg.depths, cfg.img_size) == (32, [1, 2, 8, 8, 2, 8, 8, 2, 1], 256)
    AST(cfg).load_state_dict(sd, strict=True)


def test_upstream_checkpoint_layouts_unwrap(fx):
    sd = fx["state"]
    for wrapped in ({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}}, {"params": sd}, sd):
        got = unwrap_state_dict(wrapped)
        assert set(got) == set(sd)
        AST(config_from_state_dict(got)).load_state_dict(got, strict=True)
    with pytest.raises(ValueError, match="not an AST"):
        config_from_state_dict({"patch_embed.proj.weight": torch.zeros(1)})


def test_presets_and_the_size_multiple():
    assert set(PRESETS) == {"ast-b", "ast-t", "ast-small"}
    assert build_ast("ast-b").size_multiple == 128  # upstream's test pads to multiples of 128
    assert build_ast("ast-small").size_multiple == 64  # its bottleneck window is clamped to 4
    t = build_ast("ast-t")
    assert t.cfg.embed_dim == 16 and t.cfg.depths == [2] * 9
    with pytest.raises(ValueError, match="preset"):
        build_ast("ast-xl")


def _upstream_shift_mask(h, w, win, shift):
    """Upstream's loop (TransformerBlock.forward), for any H x W: what the shape-computed mask must equal."""
    img = torch.zeros((1, h, w, 1))
    cnt = 0
    for hs in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
        for ws in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    m = window_partition(img, win).view(-1, win * win)
    d = m.unsqueeze(1) - m.unsqueeze(2)
    return d.masked_fill(d != 0, -100.0).masked_fill(d == 0, 0.0)


@pytest.mark.parametrize("h,w", [(16, 16), (16, 32), (40, 24)])
def test_shift_mask_from_the_shape_equals_upstreams_loop(h, w):
    assert torch.equal(shift_attn_mask(h, w, 8, 4), _upstream_shift_mask(h, w, 8, 4))


def test_non_square_and_unaligned_frames(fx):
    """Upstream cannot run H != W (it takes the side as sqrt(H*W)). Here: multiples of 64 run as they are; other sizes
    are reflect-padded to a multiple and cropped back, which equals running the padded frame and cropping."""
    m = _small(fx)
    x = fx["inputs"]["x_real_64"]
    wide = torch.cat([x, x.flip(-1)], -1)  # [1, 3, 64, 128]
    with torch.no_grad():
        y = m(wide)
        assert y.shape == wide.shape and torch.isfinite(y).all()
        odd = wide[:, :, :50, :70]
        padded = torch.nn.functional.pad(odd, (0, 58, 0, 14), mode="reflect")
        assert torch.equal(m(odd), m(padded)[:, :, :50, :70])
    # restoration quality is not random: the output stays near the input on a real frame (residual model)
    assert (y - wide).abs().mean().item() < 0.5


def test_dynamic_onnx_export_matches_on_square_and_non_square(fx, tmp_path):
    from drsedge.backend.trt.op_support import check_op_support
    from drsedge.backend.trt.version import KNOWN_VERSIONS, parse_version
    from drsedge.errors import DrsedgeError
    from drsedge.runtime.onnx_np import ort_session

    m = _small(fx)
    path = tmp_path / "ast.onnx"
    torch.onnx.export(m, (torch.rand(1, 3, 64, 64),), str(path), input_names=["image"], output_names=["derained"], opset_version=17,
                      dynamo=False, dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "derained": {0: "batch", 2: "height", 3: "width"}})
    s = ort_session(path, threads=1)
    for hw in ((64, 64), (64, 128), (128, 64)):
        x = torch.rand(1, 3, *hw)
        with torch.no_grad():
            ref = m(x).numpy()
        assert np.abs(s.run(None, {"image": x.numpy()})[0] - ref).max() < 1e-5, hw
    for v in KNOWN_VERSIONS:
        if parse_version(v) < (8, 6):  # opset-17 LayerNormalization: TensorRT 8.6+
            with pytest.raises(DrsedgeError, match="LayerNormalization"):
                check_op_support(path, parse_version(v))
        else:
            check_op_support(path, parse_version(v))

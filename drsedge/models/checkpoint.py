"""Checkpoint I/O: official ``.pth`` files and drsedge's pickle-free ``.safetensors``.

``load_checkpoint`` accepts what upstream BasicSR writes (``{'params': sd}``,
``{'params_ema': sd}``) or a bare state_dict; ``.pth`` is read with
``torch.load(weights_only=True)`` so a pickle with code in it is refused.
``save_model`` / ``load_model`` store the model config as JSON in the
safetensors metadata, so the file alone rebuilds the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from drsedge.errors import DrsedgeError, NonFiniteError, first_line
from drsedge.fileio import atomic_write

from .config import ModelConfig
from .drsformer import stream_widths_of
from .udr_config import UDRConfig

CONFIG_KEY = "drsedge_model_config"


def _resolve(path: str | os.PathLike) -> Path:
    """``shipped:student`` / ``shipped:teacher`` -> the shipped file; any other path unchanged."""
    from drsedge.weights import resolve

    return Path(resolve(str(path)) if str(path).startswith("shipped:") else path)


# A file holding both (BasicSR's training state with EMA) is read as its EMA weights: they are what BasicSR and
# Restormer-family repos evaluate and ship (``param_key: params_ema``); ``prefer="params"`` asks for the others.
STATE_KEYS = ("params_ema", "params", "state_dict", "model")


def _read_state(path: Path, prefer: str | None = None) -> dict[str, torch.Tensor]:
    path = _resolve(path)
    if not path.is_file():
        raise DrsedgeError(f"{path}: checkpoint not found; pass the path of a .pth or .safetensors file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DrsedgeError(f"{path}: not a readable safetensors file ({e}); re-export it") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError/RuntimeError/EOFError, etc.
        first = first_line(e)
        raise DrsedgeError(
            f"{path}: refused by torch.load(weights_only=True) ({first}); convert it to a plain state_dict "
            "or .safetensors from a trusted environment"
        ) from None
    if isinstance(obj, dict):
        for key in ((prefer,) if prefer else ()) + STATE_KEYS:
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise DrsedgeError(f"{path}: no state_dict found (expected 'params', 'params_ema' or a bare state_dict)")


def load_checkpoint(model: nn.Module, path: str | os.PathLike, prefer: str | None = None) -> nn.Module:
    """Load weights into ``model`` with ``strict=True`` semantics.

    Args:
        model: the model whose keys and shapes must match exactly.
        path: ``.pth`` / ``.pt`` (``{'params': ...}``, ``{'params_ema': ...}`` or a
            bare state_dict) or ``.safetensors``.
        prefer: ``"params"`` or ``"params_ema"`` when a file holds both (default: ``params_ema``, see
            :data:`STATE_KEYS`).

    Returns:
        ``model`` (for chaining).

    Raises:
        DrsedgeError: unreadable file, refused pickle, NaN/Inf weights, or key/shape mismatch; the
            message names the first missing, unexpected and mis-shaped keys.
    """
    path = _resolve(path)
    state = _read_state(path, prefer)
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise DrsedgeError(f"{path}: weight {bad!r} holds NaN or Inf; the checkpoint is broken (use an earlier one)")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} mis-shaped (first: {'; '.join(shapes[:2])})")
        from .drsformer import DRSformer

        hint = ""
        if not isinstance(model, DRSformer):  # the MEFC advice is DRSformer's; another family's config must match instead
            hint = f" — a {type(model).__name__} checkpoint needs the config it was trained with (see `drsedge info --checkpoint`)"
        elif any(k.startswith(("encoder_level0.", "refinement.")) for k in missing + unexpected):
            hint = " — MEFC keys differ: toggle mefc (the Rain200L/SPA checkpoints have no MEFC)"
        raise DrsedgeError(f"{path}: checkpoint does not match the model: {'; '.join(parts)}{hint}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteError(f"{path}: {len(bad)} weight tensor(s) hold NaN or Inf (first: {bad[0]}); the training diverged, "
                             "retrain with a lower learning rate")
    model.load_state_dict(state, strict=True)
    return model


def save_model(path: str | os.PathLike, model: nn.Module, config: ModelConfig | UDRConfig, extra: dict | None = None) -> Path:
    """Write ``model.state_dict()`` (float tensors, contiguous) + config JSON to ``.safetensors`` atomically.

    Raises:
        NonFiniteError: a weight holds NaN or Inf (nothing is written).
    """
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteError(f"{path}: not written: {len(bad)} weight tensor(s) hold NaN or Inf (first: {bad[0]}); lower the learning rate")
    meta = {CONFIG_KEY: json.dumps(config.to_dict())}
    if extra:
        meta["drsedge_extra"] = json.dumps(extra)
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def read_config(path: str | os.PathLike) -> ModelConfig | UDRConfig:
    """The :class:`ModelConfig` (or :class:`UDRConfig`, ``"family": "udr_s2former"``) stored in a drsedge ``.safetensors`` file.

    Raises:
        DrsedgeError: file missing/unreadable or written without a drsedge config.
    """
    path = _resolve(path)
    if not path.is_file():
        raise DrsedgeError(f"{path}: model file not found")
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise DrsedgeError(f"{path}: not a readable safetensors file ({e})") from None
    if CONFIG_KEY not in meta:
        raise DrsedgeError(f"{path}: no drsedge model config in its metadata; load it with load_checkpoint(model, path) instead")
    try:
        d = json.loads(meta[CONFIG_KEY])
    except json.JSONDecodeError as e:
        raise DrsedgeError(f"{path}: corrupt model config in its metadata ({e}); re-save the model") from None
    if not isinstance(d, dict):
        raise DrsedgeError(f"{path}: model config in its metadata is not a mapping; re-save the model")
    from .family import family_named

    fam = d.get("family") or "drsformer"
    return family_named(fam).config_type().from_dict(d, str(path)) if fam != "drsformer" else ModelConfig.from_dict(d, str(path))


def load_model(path: str | os.PathLike) -> tuple[nn.Module, ModelConfig | UDRConfig]:
    """Rebuild a model saved by :func:`save_model`; returns ``(model in eval mode, config)``."""
    path = _resolve(path)
    cfg = read_config(path)
    model = cfg.build()
    load_checkpoint(model, path)
    return model.eval(), cfg


def config_from_state_dict(state: dict[str, torch.Tensor], source: str = "checkpoint") -> ModelConfig:
    """Infer the DRSformer constructor arguments of an upstream-layout state_dict.

    Reads dim (``patch_embed``), blocks per level, heads (``temperature``), bias,
    LayerNorm type, MEFC presence and ASSA; the FFN factor is the first of
    2.66, hidden/dim, (hidden+0.5)/dim that reproduces every level's hidden width;
    blocks whose width still differs (pruned models) go to ``ffn_hidden``.

    Raises:
        DrsedgeError: the keys are not a DRSformer-family layout.
    """
    try:
        dim = state["patch_embed.proj.weight"].shape[0]
        levels = ["encoder_level1", "encoder_level2", "encoder_level3", "latent"]
        from .drsformer import BLOCK_STAGES

        counts = {st: len({k.split(".")[1] for k in state if k.startswith(st + ".")}) for st in BLOCK_STAGES}
        blocks = [max(c for st, c in counts.items() if BLOCK_STAGES[st] == i) for i in range(4)]  # depth-pruned stages: fewer
        depths = {st: c for st, c in counts.items() if c != blocks[BLOCK_STAGES[st]]}
        # a level's heads: the most any of its blocks has (head-pruned blocks have fewer; listed below)
        heads = [max(v.shape[0] for k, v in state.items() if k.startswith(f"{lv}.") and k.endswith(".attn.temperature"))
                 for lv in levels]
        hidden = [state[f"{lv}.0.ffn.project_in.weight"].shape[0] // 2 for lv in levels]
    except KeyError as e:
        raise DrsedgeError(f"{source}: not a DRSformer state_dict (no key {e}); pass the model config explicitly") from None
    widths = [dim * 2**i for i in range(4)]
    for f in (2.66, hidden[0] / dim, (hidden[0] + 0.5) / dim):
        if all(int(w * f) == h for w, h in zip(widths, hidden)):
            break
    else:
        f = 2.66
    # Blocks whose MSFN width differs from int(width * f) (pruned models) are listed explicitly.
    # residual-stream widths from the convs that write them (differ from dim * 2**level in stream-pruned models)
    try:
        sw = {"encoder_level1": dim, "encoder_level2": 4 * state["down1_2.body.0.weight"].shape[0],
              "encoder_level3": 4 * state["down2_3.body.0.weight"].shape[0], "latent": 4 * state["down3_4.body.0.weight"].shape[0],
              "up4_3": state["up4_3.body.0.weight"].shape[0] // 4, "decoder_level3": state["reduce_chan_level3.weight"].shape[0],
              "up3_2": state["up3_2.body.0.weight"].shape[0] // 4, "decoder_level2": state["reduce_chan_level2.weight"].shape[0],
              "up2_1": state["up2_1.body.0.weight"].shape[0] // 4}
    except KeyError as e:
        raise DrsedgeError(f"{source}: not a DRSformer state_dict (no key {e}); pass the model config explicitly") from None
    stream_widths = {k: v for k, v in sw.items() if stream_widths_of(dim)[k] != v}
    level_width = {k: sw[k] for k in ("encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3", "decoder_level2")}
    level_width["decoder_level1"] = sw["up2_1"] + sw["encoder_level1"]
    ffn_hidden, attn_inner, attn_heads = {}, {}, {}
    level_heads = dict(zip(levels, heads)) | {"decoder_level3": heads[2], "decoder_level2": heads[1], "decoder_level1": heads[0]}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] not in level_width:
            continue
        block = f"{parts[0]}.{parts[1]}" if len(parts) > 1 else ""
        if len(parts) == 5 and parts[2:] == ["ffn", "project_in", "weight"] and v.shape[0] // 2 != int(level_width[parts[0]] * f):
            ffn_hidden[block] = v.shape[0] // 2
        if len(parts) == 5 and parts[2:] == ["attn", "qkv", "weight"] and v.shape[0] // 3 != level_width[parts[0]]:
            attn_inner[block] = v.shape[0] // 3
        if len(parts) == 4 and parts[2:] == ["attn", "temperature"] and v.shape[0] != level_heads[parts[0]]:
            attn_heads[block] = v.shape[0]
    attention = "assa" if any(k.endswith("attn.assa_weights") for k in state) else "topk"
    return ModelConfig(
        dim=dim, num_blocks=blocks, heads=heads, ffn_expansion_factor=f,
        inp_channels=state["patch_embed.proj.weight"].shape[1], out_channels=state["output.weight"].shape[0],
        bias="output.bias" in state, LayerNorm_type="WithBias" if "encoder_level1.0.norm1.body.bias" in state else "BiasFree",
        mefc=any(k.startswith("encoder_level0.") for k in state), attention=attention, ffn_hidden=ffn_hidden, attn_inner=attn_inner,
        attn_heads=attn_heads, stream_widths=stream_widths, depths=depths,
    )


def load_any(path: str | os.PathLike, prefer: str | None = None) -> tuple[nn.Module, ModelConfig | UDRConfig]:
    """Load a drsedge ``.safetensors`` (config in metadata), an upstream checkpoint (config inferred: DRSformer or
    UDR-S2Former, told apart by their keys), or a shipped model by name (``shipped:student``).

    Returns ``(model in eval mode, config)``. Raises :class:`DrsedgeError` as :func:`load_checkpoint`.
    """
    path = _resolve(path)
    if path.suffix == ".safetensors":
        try:
            return load_model(path)
        except DrsedgeError as e:
            if "no drsedge model config" not in str(e):
                raise
    state = _read_state(path, prefer)
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    from .family import family_of_state

    fam = family_of_state(state)
    cfg = fam.config_from_state_dict(state, str(path)) if fam is not None and fam.name != "drsformer" else config_from_state_dict(state, str(path))
    model = cfg.build()
    load_checkpoint(model, path, prefer)
    return model.eval(), cfg

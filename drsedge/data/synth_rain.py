"""Synthetic rain on clean photos: paired ``input/`` + ``target/`` folders for any camera.

The rain model is the one behind the Rain100L/H and Rain200L/H benchmarks (Yang et al., "Deep Joint
Rain Detection and Removal from a Single Image", CVPR 2017, Sec. 3, Eq. 2-3):

    O = alpha * (B + sum_t S_t) + (1 - alpha) * A

with ``B`` the clean background, ``S_t`` streak layers, ``alpha`` the transmission of the rain
accumulation (veil) and ``A`` the atmospheric light. ``light`` rain is one layer with no veil
(``alpha = 1``, ``O = B + S``: Rain100L/Rain200L), ``heavy`` is several layers of different angles
and the veil (Rain100H/Rain200H).

A streak layer follows the Photoshop rain recipe those sets were rendered with (Garg & Nayar's
streak appearance, as in Yang et al.'s data and Fu et al., CVPR 2017): sparse random seeds
(salt noise of a drawn density, amplitudes U(0,1)^2) -> a small Gaussian blur (drop width) -> a motion
blur along a line of drawn length and angle -> levels (99.9th percentile -> 1, clipped) -> brightness. Parameters are
drawn per image from the documented ranges of :data:`PRESETS` with ``numpy.random.default_rng``
seeded by ``(seed, file name, index)``, so a file's rain does not change when other files are added.

The default ``light`` ranges were fitted on the paired *training* images
``../shared/data/rain200L/train`` (mean rain residual 0.02, 14 % of pixels above 0.05, 99th
percentile about 0.2, PSNR 26-27 dB against the clean image); the defaults give 0.014-0.029, 9-20 %,
0.22-0.24 and 25-27 dB on the same clean image. No held-out test image was used.

``raindrop`` renders drops adherent to the lens or its cover glass instead (:func:`render_drops`: refracting,
defocused blobs, Qian et al. CVPR 2018 Eq. 1 with the lens models it cites); ``rain+drop`` puts them in front of
``medium`` streaks, what UDR-S2Former (Chen et al., ICCV 2023) removes in one network.
"""

from __future__ import annotations

import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage, signal
from skimage.draw import line_aa

from drsedge.choices import SYNTH_PRESETS
from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write

from .folders import list_images
from .heldout import guard_not_held_out
from .images import read_image


@dataclass(frozen=True)
class RainPreset:
    """Ranges ``(low, high)`` drawn uniformly per image; angles in degrees from vertical, lengths in px."""

    layers: tuple[int, int]
    density: tuple[float, float]  # fraction of pixels seeding a streak
    length: tuple[float, float]  # motion-blur length (px)
    angle: tuple[float, float]  # main angle from vertical (deg); layers jitter around it by +-angle_jitter
    angle_jitter: float
    width: tuple[float, float]  # Gaussian sigma of the drop (px)
    brightness: tuple[float, float]  # peak streak value added to the [0, 1] image
    alpha: tuple[float, float]  # veil transmission; (1, 1) = no veil
    airlight: tuple[float, float]  # atmospheric light A


PRESETS: dict[str, RainPreset] = {
    "light": RainPreset((1, 1), (0.004, 0.008), (15, 35), (-15, 15), 0, (0.35, 0.7), (0.3, 0.5), (1, 1), (1, 1)),
    "medium": RainPreset((2, 2), (0.004, 0.008), (18, 45), (-20, 20), 5, (0.4, 0.8), (0.35, 0.6), (0.9, 1.0), (0.8, 1.0)),
    "heavy": RainPreset((3, 4), (0.004, 0.008), (25, 60), (-30, 30), 8, (0.5, 1.0), (0.45, 0.75), (0.72, 0.9), (0.75, 1.0)),
}
MIXED = "mixed"  # light, medium or heavy drawn per image (1/2, 1/4, 1/4)
RAINDROP = "raindrop"  # adherent drops on the lens or its cover glass (render_drops)
RAIN_AND_DROP = "rain+drop"  # medium streaks in the scene, then drops on the glass in front of them
PRESET_NAMES = SYNTH_PRESETS  # = (*PRESETS, MIXED, RAINDROP, RAIN_AND_DROP)
assert (*PRESETS, MIXED, RAINDROP, RAIN_AND_DROP) == PRESET_NAMES


@dataclass(frozen=True)
class DropPreset:
    """Ranges drawn uniformly per image for :func:`render_drops`; sizes relative to the shorter image side."""

    count: tuple[int, int]  # drops per 720x480 px (scaled by the image area)
    radius: tuple[float, float]  # Gaussian sigma of a drop's height bump / shorter side
    refraction: tuple[float, float]  # lens strength kappa: displacement = kappa * sigma^2 * grad(h)
    defocus: tuple[float, float]  # sigma (px at 480 px) of the circle of confusion of the near glass
    opacity: tuple[float, float]  # alpha of a drop's core (You et al.: completely occluding cores, alpha = 1)
    gain: tuple[float, float]  # brightness of the refracted light (environment light, Garg & Nayar)
    veil: tuple[float, float] = (0.0, 0.0)  # strength v of the wet glass's veiling glare (0 = none)
    veil_light: tuple[float, float] = (0.75, 1.0)  # the out-of-view light A the glare adds (sky, in [0, 1])


# Fitted by eye to the real adherent drops of ../shared/data/raindrop/real (Qian et al.'s training frames): tens of
# drops of 5-20 px at 480 p, defocused, with a flipped, minified and brighter view of the scene inside.
# The veil: the water film on wet glass scatters light, which reaches the sensor as a low-frequency additive glare that
# lifts the blacks and lowers contrast (veiling glare, Talvala et al., SIGGRAPH 2007, Sec. 3). The real inputs of
# ../shared/data/raindrop/paired are 0.015-0.076 brighter in mean Y than their targets (a gain/offset fit gives
# +0.25-1.3 dB PSNR-Y); v = U(0.02, 0.2) with A = U(0.75, 1) spans 0.01-0.14 on the clean photos (a range, not a fit).
DROPS = DropPreset(count=(40, 110), radius=(0.02, 0.06), refraction=(2.0, 4.0), defocus=(2.5, 6.0), opacity=(0.8, 1.0),
                   gain=(0.95, 1.12), veil=(0.02, 0.2))


DROP_WORK_SIDE = 1024  # px: drop layers of larger frames are rendered at this shorter side (bounded time; see below)


def render_drops(clean: np.ndarray, rng: np.random.Generator, p: DropPreset = DROPS, _layers: dict | None = None) -> tuple[np.ndarray, dict]:
    """Adherent raindrops on ``clean`` ``[H, W, 3]`` float32 in [0, 1] -> (drops image, same shape in [0, 1], parameters).

    The 2-D recipe of ../shared/notes/udr-s2former.md §5, combining the cited models:

    1. a height field of the drops, ``h(x) = sum_i exp(-|x - x_i|^2 / sigma_i^2)`` (metaballs; elliptic bumps),
       mask ``M = h > 0.35``;
    2. refraction (a drop is a wide-angle lens, Garg & Nayar, Columbia TR 2003; Roser & Geiger, ICCV-W 2009):
       ``R(x) = gain * B(x + kappa * sigma^2 * grad h(x))``, a flipped, minified view of the scene around the drop,
       blended 7:3 with the scene blurred over 10 % of the frame (a drop gathers a wide field of view: flatter);
    3. defocus: drops on the glass are out of focus (Qian et al., CVPR 2018), ``alpha = G_d * M * opacity`` and
       ``R`` blurred by the same ``G_d``;
    4. composite (Qian et al. Eq. 1 / You et al., TPAMI 2016): ``I = (1 - alpha) * B + alpha * R``;
    5. the wet glass's veiling glare (Talvala et al., SIGGRAPH 2007: scattered light adds a low-frequency term):
       ``I' = (1 - v) * I + v * (0.5 * G_wide * B + 0.5 * A)``, ``G_wide`` a Gaussian over 25 % of the shorter side.

    Every blur scales with the shorter side, so the cost grows as pixels x side: a frame whose shorter side exceeds
    :data:`DROP_WORK_SIDE` gets its drop layers at that side (:func:`_render_drops_large`); a 36 MP photo took more
    than 10 minutes before.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    h, w = clean.shape[:2]
    if min(h, w) > DROP_WORK_SIDE:  # bounded work: the drop layers at DROP_WORK_SIDE, composited on the full-size frame
        return _render_drops_large(clean, rng, p)
    short = min(h, w)
    u = lambda r: float(rng.uniform(*r))
    n = max(1, int(round(int(rng.integers(p.count[0], p.count[1] + 1)) * h * w / (720 * 480))))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    height = np.zeros((h, w), np.float32)
    sig2 = np.zeros((h, w), np.float32)  # the sigma^2 of the drop that dominates each pixel (for the lens strength)
    for _ in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = u(p.radius) * short
        a = u((0.75, 1.3))  # elliptic: drops run and stretch on the glass
        r = int(3 * s * max(a, 1 / a)) + 2
        y0, y1, x0, x1 = max(int(cy) - r, 0), min(int(cy) + r, h), max(int(cx) - r, 0), min(int(cx) + r, w)
        if y0 >= y1 or x0 >= x1:
            continue
        bump = np.exp(-(((yy[y0:y1, x0:x1] - cy) * a) ** 2 + ((xx[y0:y1, x0:x1] - cx) / a) ** 2) / (s * s))
        win = height[y0:y1, x0:x1]
        sig2[y0:y1, x0:x1] = np.where(bump > win, s * s, sig2[y0:y1, x0:x1])
        height[y0:y1, x0:x1] = win + bump
    gy, gx = np.gradient(height)
    kappa = u(p.refraction)
    sy, sx = yy + kappa * sig2 * gy, xx + kappa * sig2 * gx
    refr = np.stack([map_coordinates(clean[..., c], [sy, sx], order=1, mode="reflect") for c in range(clean.shape[2])], -1)
    d = u(p.defocus) * short / 480.0
    gain = u(p.gain)
    refr = np.stack([gaussian_filter(refr[..., c], d) for c in range(refr.shape[2])], -1) * gain
    # a drop gathers light from a wide field of view (Garg & Nayar), so it is flatter than the scene behind it: blend in
    # the light of a wide neighbourhood (the scene blurred over ~10 % of the frame)
    wide = np.stack([gaussian_filter(clean[..., c], 0.1 * short) for c in range(clean.shape[2])], -1)
    refr = 0.7 * refr + 0.3 * wide
    mask = (height > 0.35).astype(np.float32)
    alpha = np.clip(gaussian_filter(mask, d) * u(p.opacity), 0.0, 1.0)[..., None]
    out = (1.0 - alpha) * clean + alpha * refr
    v = u(p.veil)
    glare = None
    if v > 0:
        glare = 0.5 * np.stack([gaussian_filter(clean[..., c], 0.25 * short) for c in range(clean.shape[2])], -1) + 0.5 * u(p.veil_light)
        out = (1.0 - v) * out + v * glare
    params = {"preset": RAINDROP, "drops": n, "refraction": round(kappa, 4), "defocus_px": round(d, 3), "gain": round(gain, 4),
              "covered": round(float(mask.mean()), 4), "veil": round(v, 4)}
    if _layers is not None:
        _layers.update(alpha=alpha, refr=refr, v=v, glare=glare)
    return np.clip(out, 0.0, 1.0).astype(np.float32), params


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[h0, w0, C]`` float32 -> ``[h, w, C]``: box filter down, bilinear up (Pillow, per channel, float 'F' mode)."""
    how = Image.Resampling.BOX if h < img.shape[0] else Image.Resampling.BILINEAR
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), mode="F").resize((w, h), how))
                     for c in range(img.shape[2])], -1)


def _render_drops_large(clean: np.ndarray, rng: np.random.Generator, p: DropPreset) -> tuple[np.ndarray, dict]:
    """:func:`render_drops` for a frame whose shorter side exceeds :data:`DROP_WORK_SIDE`: the drops, their refracted
    light and the glare are rendered on the frame scaled to that side (same drawn parameters, relative to the shorter
    side) and scaled back; the composite keeps the full-resolution scene outside the drops. Drops on the glass are
    defocused blobs (Qian et al.), so the scaled layers lose nothing visible; the cost is O(pixels) above the limit
    (``benchmarks`` in the README: seconds per megapixel)."""
    h, w = clean.shape[:2]
    s = DROP_WORK_SIDE / min(h, w)
    hs, ws = max(8, round(h * s)), max(8, round(w * s))
    layers: dict = {}
    _, params = render_drops(_resize(clean, hs, ws), rng, p, _layers=layers)
    alpha = _resize(layers["alpha"], h, w)
    out = (1.0 - alpha) * clean + alpha * _resize(layers["refr"], h, w)
    if layers["glare"] is not None:
        out = (1.0 - layers["v"]) * out + layers["v"] * _resize(layers["glare"], h, w)
    return np.clip(out, 0.0, 1.0).astype(np.float32), {**params, "rendered_at": [hs, ws]}


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Anti-aliased line of ``length`` px at ``angle_deg`` from vertical, as a ``[K, K]`` float kernel summing to 1."""
    n = int(np.ceil(length)) | 1
    c = n // 2
    t = np.deg2rad(angle_deg)
    dy, dx = 0.5 * (n - 1) * np.cos(t), 0.5 * (n - 1) * np.sin(t)
    k = np.zeros((n, n), np.float64)
    rr, cc, val = line_aa(int(round(c - dy)), int(round(c - dx)), int(round(c + dy)), int(round(c + dx)))
    ok = (rr >= 0) & (rr < n) & (cc >= 0) & (cc < n)
    k[rr[ok], cc[ok]] = np.maximum(k[rr[ok], cc[ok]], val[ok])
    return k / k.sum()


def streak_layer(h: int, w: int, rng: np.random.Generator, density: float, length: float, angle: float,
                 width: float, brightness: float) -> np.ndarray:
    """One rain-streak layer ``[H, W]`` float32 in ``[0, brightness]``."""
    pad = int(length) + 4
    hp, wp = h + 2 * pad, w + 2 * pad
    seeds = (rng.random((hp, wp)) < density) * rng.random((hp, wp)) ** 2  # many faint drops, few bright ones
    seeds = ndimage.gaussian_filter(seeds, width)
    s = signal.fftconvolve(seeds, motion_kernel(length, angle), mode="same")[pad:-pad, pad:-pad]
    s = np.clip(s, 0.0, None)
    level = np.percentile(s, 99.9)
    return (np.clip(s / max(level, 1e-12), 0.0, 1.0) * brightness).astype(np.float32)


def render_rain(clean: np.ndarray, rng: np.random.Generator, preset: str = "light") -> tuple[np.ndarray, dict]:
    """Add rain to ``clean`` ``[H, W, 3]`` float32 in [0, 1]; returns the rainy image (same shape, clipped) and the drawn parameters.

    Raises:
        DrsedgeError: unknown preset.
    """
    if preset == RAINDROP:
        return render_drops(clean, rng)
    if preset == RAIN_AND_DROP:
        streaks, sp = render_rain(clean, rng, "medium")
        out, dp = render_drops(streaks, rng)
        return out, {**dp, "preset": RAIN_AND_DROP, "streaks": sp}
    if preset == MIXED:
        preset = str(rng.choice(["light", "light", "medium", "heavy"]))
    if preset not in PRESETS:
        raise DrsedgeError(f"unknown rain preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    p = PRESETS[preset]
    h, w = clean.shape[:2]
    u = lambda r: float(rng.uniform(*r))
    n_layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
    angle = u(p.angle)
    rain = np.zeros((h, w), np.float32)
    layers = []
    for _ in range(n_layers):
        lp = dict(density=u(p.density), length=u(p.length), angle=angle + u((-p.angle_jitter, p.angle_jitter)),
                  width=u(p.width), brightness=u(p.brightness))
        rain += streak_layer(h, w, rng, **lp)
        layers.append({k: round(v, 5) for k, v in lp.items()})
    alpha, airlight = u(p.alpha), u(p.airlight)
    out = alpha * (clean + rain[..., None]) + (1.0 - alpha) * airlight
    return np.clip(out, 0.0, 1.0).astype(np.float32), {"preset": preset, "alpha": round(alpha, 4), "airlight": round(airlight, 4), "layers": layers}


def _write_pair(rainy_path: Path, img: np.ndarray, mode: str, target_path: Path, src: Path) -> None:
    """Write one pair, both files or neither: the target (the clean file's bytes) first, then the rainy PNG; when the
    rainy write fails (a full disk), the target just written is removed, so no input lacks its target and no target
    its input (both writes are atomic: a temporary file, then a rename)."""
    arr = (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)
    im = Image.fromarray(arr).convert("L") if mode in ("L", "LA", "I;16", "I") else Image.fromarray(arr)
    existed = target_path.exists()
    atomic_write(target_path, lambda tmp: shutil.copyfile(src, tmp))
    try:
        atomic_write(rainy_path, lambda tmp: im.save(tmp, format="PNG"))
    except BaseException:
        if not existed:
            target_path.unlink(missing_ok=True)
        raise


def _prescan(files: list[Path]) -> dict[Path, str]:
    """Check every clean image's header and checksums before anything is written (Pillow ``verify``); returns modes.

    Raises:
        DrsedgeError: a file Pillow cannot open or verify, a side < 8 px, or more than 64 MP.
    """
    from .images import MAX_PIXELS, MIN_SIDE

    modes = {}
    for f in files:
        try:
            with Image.open(f) as im:
                w, h = im.size
                modes[f] = im.mode
                im.verify()
        except Exception as e:  # Pillow raises many types for broken files
            raise DrsedgeError(f"{f}: cannot decode image ({type(e).__name__}); replace or remove the file") from None
        if min(w, h) < MIN_SIDE or w * h > MAX_PIXELS:
            raise DrsedgeError(f"{f}: image is {w}x{h}; clean images need sides >= {MIN_SIDE} px and at most "
                               f"{MAX_PIXELS // 1_000_000} MP; remove it from the folder")
    return modes


def synth_rain(clean_dirs: list[str | os.PathLike], out: str | os.PathLike, preset: str = "light", per_image: int = 1,
               seed: int = 0, limit: int | None = None, progress: bool = False) -> dict:
    """Write ``out/input/NAME.png`` (rainy) and ``out/target/NAME.EXT`` (the clean file's bytes) for every clean image.

    ``NAME`` is ``<folder>-<stem>-<k>`` for ``k < per_image``. Gray sources give gray rainy PNGs; sizes are kept.
    Returns ``{"pairs": n, "preset": ..., "seed": ...}``.

    Raises:
        DrsedgeError: unknown preset, ``per_image < 1``, an output folder equal to or inside an input
            folder, a held-out test image, name collisions, or an unreadable/tiny image (nothing is
            written for that file; files already written stay valid pairs), or a full disk (the pair being
            written is removed: both files or neither).
    """
    if preset not in PRESET_NAMES:
        raise DrsedgeError(f"unknown rain preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    if per_image < 1:
        raise DrsedgeError(f"--per-image must be >= 1, got {per_image}")
    out = Path(out).resolve()
    dirs = [Path(d) for d in clean_dirs]
    files = []
    for d in dirs:
        rd = d.resolve()
        if out == rd or rd in out.parents:
            raise DrsedgeError(f"{out}: output folder is inside the clean input folder {d}; choose another -o")
        if out in rd.parents:
            raise DrsedgeError(f"{out}: output folder contains the clean input folder {d}; choose another -o")
        files += list_images(d)
    if limit is not None:
        files = files[:limit]
    guard_not_held_out(files, "synthetic rain")
    names: dict[str, Path] = {}
    for f in files:
        key = f"{f.parent.name}-{f.stem}"
        if key in names:
            raise DrsedgeError(f"{f}: same folder and file name as {names[key]}; rename one of them")
        names[key] = f
    modes = _prescan(files)
    from tqdm import tqdm

    for f in tqdm(files, desc="synth-rain", unit="photo", disable=not progress):
        mode = modes[f]
        clean = read_image(f)
        for k in range(per_image):
            rng = np.random.default_rng([seed, zlib.crc32(f"{f.parent.name}/{f.name}".encode()), k])
            rainy, _ = render_rain(clean, rng, preset)
            name = f"{f.parent.name}-{f.stem}-{k}"
            _write_pair(out / "input" / f"{name}.png", rainy, mode, out / "target" / f"{name}{f.suffix.lower()}", f)
    return {"pairs": len(files) * per_image, "preset": preset, "seed": seed, "output": str(out)}

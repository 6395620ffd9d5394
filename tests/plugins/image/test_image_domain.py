"""The image domain: loading every Pillow mode, orientation, errors, saving, metadata."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import texsynth
from texsynth.errors import InputError, UsageError
from texsynth_image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDomain,
    imagenet_normalize,
    read_metadata,
)


@pytest.fixture
def domain() -> ImageDomain:
    return ImageDomain()


def _gradient_rgb(width: int = 12, height: int = 10) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 test pattern with distinct values per channel."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 20 % 256, ys * 25 % 256, (xs + ys) * 7 % 256], axis=2).astype(np.uint8)


def _load_quiet(domain: ImageDomain, path: Path) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return domain.load(path)


# -- registration ------------------------------------------------------------------------

def test_domain_is_registered_by_entry_point():
    dom = texsynth.get_domain("image")
    assert isinstance(dom, ImageDomain)
    assert isinstance(texsynth.get_domain("out.JPG"), ImageDomain)
    assert dom.spatial_dims == 2
    assert dom.value_range == (0.0, 1.0)
    assert dom.default_extractor == "random-multiscale"
    assert set(dom.suffixes) == {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                                 ".webp"}


def test_extractors_are_registered_with_descriptions():
    found = texsynth.get_plugin_manager().extractors("image")
    for name in ("vgg19", "vgg19-random", "random-multiscale"):
        assert name in found
        assert found[name].domains == ("image",)
        assert found[name].description
        assert "\n" not in found[name].description


# -- loading: modes ------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_rgb_round_trip_is_exact_for_lossless_formats(domain, tmp_path, suffix):
    array = _gradient_rgb()
    path = tmp_path / f"rgb{suffix}"
    if suffix == ".webp":
        Image.fromarray(array).save(path, lossless=True)
    else:
        Image.fromarray(array).save(path)
    signal = _load_quiet(domain, path)
    assert signal.shape == (1, 3, 10, 12)
    assert signal.dtype == torch.float32
    expected = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(signal[0], expected)


@pytest.mark.parametrize(("mode", "suffix"), [
    ("L", ".png"), ("1", ".png"), ("P", ".png"), ("P", ".gif"), ("CMYK", ".jpg"),
    ("CMYK", ".tif"), ("YCbCr", ".jpg"), ("RGB", ".jpeg"), ("I;16", ".png"),
    ("I", ".tif"), ("F", ".tif"), ("LA", ".png"), ("RGBA", ".png"),
])
def test_every_mode_loads_as_rgb(domain, tmp_path, mode, suffix):
    base = Image.fromarray(_gradient_rgb())
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(base.convert("L")).astype(np.float32) / 255
        scale = {"I;16": 65535, "I": 65535, "F": 1}[mode]
        dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
        image = Image.fromarray((grey * scale).astype(dtype))
        if mode == "I;16":
            image = image.convert("I;16") if image.mode != "I;16" else image
    else:
        image = base.convert(mode)
    path = tmp_path / f"{mode.replace(';', '')}{suffix}"
    image.save(path)
    signal = _load_quiet(domain, path)
    assert signal.shape == (1, 3, 10, 12)
    assert signal.dtype == torch.float32
    assert float(signal.min()) >= 0.0 and float(signal.max()) <= 1.0
    if mode in ("L", "1", "I;16", "I", "F", "LA"):
        torch.testing.assert_close(signal[0, 0], signal[0, 1])
        torch.testing.assert_close(signal[0, 0], signal[0, 2])
    if mode in ("I;16", "I", "F", "L"):  # high-bit-depth grey is scaled, not clipped
        expected = torch.from_numpy(np.array(base.convert("L"))).float() / 255
        torch.testing.assert_close(signal[0, 0], expected, atol=2 / 255, rtol=0)


def test_sixteen_bit_grey_is_scaled_not_clipped(domain, tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((9, 9), 32768, np.uint16)).save(path)
    signal = domain.load(path)
    assert signal.mean().item() == pytest.approx(32768 / 65535, abs=1e-4)


def test_exif_orientation_is_applied(domain, tmp_path):
    array = np.zeros((8, 16, 3), np.uint8)  # 16 wide, 8 high
    array[0, 0] = (255, 0, 0)  # red marker top-left as stored
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.png"
    image.save(path, exif=exif.tobytes())
    signal = domain.load(path)
    assert signal.shape == (1, 3, 16, 8)
    # after a clockwise turn the stored top-left pixel is at the top-right
    assert signal[0, 0, 0, -1].item() == pytest.approx(1.0)
    assert signal[0, 0, 0, 0].item() == pytest.approx(0.0)


def test_transparency_is_dropped_with_a_note(domain, tmp_path):
    array = np.zeros((9, 9, 4), np.uint8)
    array[..., 0] = 200
    array[..., 3] = 128
    path = tmp_path / "see-through.png"
    Image.fromarray(array).save(path)
    with pytest.warns(UserWarning, match="alpha") as record:
        signal = domain.load(path)
    assert len(record) == 1
    assert "see-through.png" in str(record[0].message)
    assert "\n" not in str(record[0].message)
    assert signal.shape == (1, 3, 9, 9)
    assert signal[0, 0].mean().item() == pytest.approx(200 / 255)


def test_opaque_alpha_and_palette_transparency(domain, tmp_path):
    opaque = np.full((9, 9, 4), 255, np.uint8)
    path = tmp_path / "opaque.png"
    Image.fromarray(opaque).save(path)
    _load_quiet(domain, path)  # a fully opaque alpha channel loses nothing: no note
    palette = Image.fromarray(_gradient_rgb()).convert("P")
    palette.info["transparency"] = 0
    ppath = tmp_path / "palette.png"
    palette.save(ppath, transparency=0)
    with pytest.warns(UserWarning, match="palette.png"):
        assert domain.load(ppath).shape == (1, 3, 10, 12)


def test_animated_gif_uses_first_frame_with_a_note(domain, tmp_path):
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.warns(UserWarning, match="first frame"):
        signal = domain.load(path)
    assert signal[0, 0].mean().item() > 0.9
    assert signal[0, 2].mean().item() < 0.1


# -- loading: errors -----------------------------------------------------------------------

def _expect_input_error(domain: ImageDomain, path: Path, pattern: str) -> InputError:
    with pytest.raises(InputError, match=pattern) as info:
        domain.load(path)
    message = str(info.value)
    assert path.name in message
    assert "\n" not in message
    return info.value


def test_missing_file(domain, tmp_path):
    _expect_input_error(domain, tmp_path / "nothing.png", "no such file")


def test_directory(domain, tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    _expect_input_error(domain, folder, "directory")


def test_zero_bytes(domain, tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_input_error(domain, path, "empty")


def test_not_an_image(domain, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not pixels\n" * 20)
    _expect_input_error(domain, path, "not an image")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png(domain, tmp_path, keep):
    full = tmp_path / "full.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(full)
    data = full.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * keep)])
    _expect_input_error(domain, path, "truncated|corrupt")


def test_corrupt_jpeg(domain, tmp_path):
    full = tmp_path / "full.jpg"
    Image.fromarray(_gradient_rgb(64, 64)).save(full)
    data = full.read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    _expect_input_error(domain, path, "truncated|corrupt")


@pytest.mark.parametrize("size", [(1, 1), (4, 100), (100, 7)])
def test_too_small(domain, tmp_path, size):
    path = tmp_path / "tiny.png"
    Image.new("RGB", size).save(path)
    error = _expect_input_error(domain, path, "at least 8 pixels")
    assert f"{size[0]}x{size[1]}" in error.problem


def test_decompression_bomb(domain, tmp_path, monkeypatch):
    path = tmp_path / "huge.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    error = _expect_input_error(domain, path, "too large")
    assert "4,096 pixels" in error.problem
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # between 1x and 2x: a warning
    error = _expect_input_error(domain, path, "too large")
    assert "4,096 pixels" in error.problem


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions and a non-root user")
def test_unreadable(domain, tmp_path):
    path = tmp_path / "locked.png"
    Image.new("RGB", (9, 9)).save(path)
    path.chmod(0)
    try:
        _expect_input_error(domain, path, "permission denied")
    finally:
        path.chmod(0o644)


# -- saving --------------------------------------------------------------------------------

def test_png_round_trip_and_metadata(domain, tmp_path):
    signal = torch.randint(0, 256, (1, 3, 10, 13)).float() / 255
    meta = {"seed": 7, "extractor": {"name": "random-multiscale"}, "note": "héllo"}
    path = domain.save(signal, tmp_path / "out.png", metadata=meta)
    assert path == tmp_path / "out.png"
    torch.testing.assert_close(domain.load(path), signal)
    assert read_metadata(path) == meta
    assert not (tmp_path / "out.png.json").exists()


def test_save_accepts_three_dims_and_clamps(domain, tmp_path):
    signal = torch.linspace(-1, 2, 3 * 9 * 9).reshape(3, 9, 9)
    path = domain.save(signal, tmp_path / "clamped.png")
    loaded = domain.load(path)
    torch.testing.assert_close(loaded[0], (signal.clamp(0, 1) * 255).round() / 255)
    assert read_metadata(path) is None


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"])
def test_other_formats_write_a_sidecar(domain, tmp_path, suffix):
    signal = torch.full((1, 3, 9, 9), 0.5)
    path = domain.save(signal, tmp_path / f"out{suffix}", metadata={"seed": 3})
    assert domain.load(path).shape == (1, 3, 9, 9)
    sidecar = tmp_path / f"out{suffix}.json"
    assert json.loads(sidecar.read_text()) == {"seed": 3}
    assert read_metadata(path) == {"seed": 3}


def test_unknown_suffix_is_a_usage_error(domain, tmp_path):
    with pytest.raises(UsageError, match=r"\.xyz.*\.png"):
        domain.save(torch.zeros(1, 3, 9, 9), tmp_path / "out.xyz")
    with pytest.raises(UsageError, match="one image"):
        domain.save(torch.zeros(2, 3, 9, 9), tmp_path / "out.png")


def test_save_is_atomic(domain, tmp_path, monkeypatch):
    target = tmp_path / "result.png"
    domain.save(torch.zeros(1, 3, 9, 9), target, metadata={"run": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(InputError, match=r"result\.png: cannot write: disk full"):
        domain.save(torch.ones(1, 3, 9, 9), target, metadata={"run": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]
    monkeypatch.undo()
    assert read_metadata(target) == {"run": 1}  # the old file is untouched
    assert domain.load(target).max().item() == 0.0


def test_read_metadata_rejects_bad_json(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("texsynth", "{not json")
    path = tmp_path / "bad.png"
    Image.new("RGB", (9, 9)).save(path, pnginfo=info)
    with pytest.raises(InputError, match=r"bad\.png.*JSON"):
        read_metadata(path)


# -- model input and noise -----------------------------------------------------------------

def test_to_features_input_checks_the_shape_and_leaves_normalising_to_extractors(domain):
    signal = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = domain.to_features_input(signal)
    assert out is signal  # ImageNet normalisation is the extractors' preprocess now
    out.sum().backward()
    assert signal.grad is not None
    torch.testing.assert_close(signal.grad, torch.ones_like(signal))
    for bad in (torch.rand(1, 1, 8, 8), torch.rand(3, 8, 8)):
        with pytest.raises(UsageError, match=r"\(N, 3, H, W\)"):
            domain.to_features_input(bad)


def test_imagenet_normalize_is_the_one_the_domain_used_to_apply():
    signal = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = imagenet_normalize(signal)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    assert torch.equal(out, (signal - mean) / std)
    out.sum().backward()
    assert signal.grad is not None
    torch.testing.assert_close(signal.grad, (1 / std).expand_as(signal))
    with pytest.raises(UsageError, match="RGB"):
        imagenet_normalize(torch.rand(1, 1, 8, 8))


def test_noise_matches_the_exemplar_mean(domain):
    like = torch.stack([torch.full((16, 16), v) for v in (0.2, 0.5, 0.8)]).unsqueeze(0)
    gen = torch.Generator().manual_seed(0)
    start = domain.noise((1, 3, 32, 40), generator=gen, like=like)
    assert start.shape == (1, 3, 32, 40)
    assert start.min().item() >= 0 and start.max().item() <= 1
    torch.testing.assert_close(start.mean(dim=(0, 2, 3)), torch.tensor([0.2, 0.5, 0.8]),
                               atol=0.01, rtol=0)
    assert start.std().item() > 0.03
    again = domain.noise((1, 3, 32, 40), generator=torch.Generator().manual_seed(0), like=like)
    torch.testing.assert_close(start, again)
    plain = domain.noise((1, 3, 32, 40), generator=torch.Generator().manual_seed(0))
    assert abs(plain.mean().item() - 0.5) < 0.02

"""The video domain and its extractors: sizes, rates, recognition, features, synthesis."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import texsynth
from texsynth import ExtractorConfig, UsageError
from texsynth.plugins import get_plugin_manager
from texsynth_video import VideoDomain, read_clip, write_clip
from texsynth_video.spacetime import (
    RandomSpacetimeExtractor,
    circular_pool,
    layer_name,
    layer_shape,
)


def moving_pattern(frames: int = 8, height: int = 24, width: int = 32,
                   speed: float = 1.0) -> torch.Tensor:
    """``(1, 3, T, H, W)``: stripes moving ``speed`` pixels per frame to the right."""
    t = torch.arange(frames).view(frames, 1, 1).float()
    y = torch.arange(height).view(1, height, 1).float()
    x = torch.arange(width).view(1, 1, width).float()
    phase = 2 * torch.pi * (x - speed * t) / 8 + 0.3 * torch.sin(y / 3)
    red = 0.5 + 0.4 * torch.sin(phase)
    green = 0.5 + 0.3 * torch.cos(phase + y / 5)
    blue = 0.4 + 0.2 * torch.sin(2 * phase)
    return torch.stack([red, green, blue]).clamp(0, 1)[None]


def test_sizes_are_frames_then_width_by_height() -> None:
    domain = VideoDomain()
    assert domain.parse_size("48x160x128") == (48, 128, 160)
    assert domain.parse_size("16x64") == (16, 64, 64)
    assert domain.describe_size((48, 128, 160)).startswith("48x160x128")
    with pytest.raises(UsageError, match="FRAMESxWxH"):
        domain.parse_size("1x2x3x4")
    with pytest.raises(UsageError, match="size"):
        domain.parse_size("48xabc")
    with pytest.raises(UsageError, match="at least 4"):
        domain.check_size((2, 64, 64))


def test_rate_comes_from_the_first_clip_or_resamples_to_a_set_one(tmp_path: Path) -> None:
    clip = moving_pattern(12)
    path = write_clip(tmp_path / "c.apng", clip[0], 6.0)
    free = VideoDomain()
    assert free.load(path).shape == clip.shape and free.fps == pytest.approx(6.0, rel=0.01)
    assert free.config() == {"fps": pytest.approx(6.0, rel=0.01)}
    fixed = VideoDomain(fps=12.0)
    assert fixed.load(path).shape[2] == 24  # twice the frames: same duration
    with pytest.raises(UsageError, match="fps"):
        VideoDomain(fps=0)


def test_animated_pictures_and_frame_folders_are_recognised(tmp_path: Path) -> None:
    manager = get_plugin_manager()
    frames = [Image.new("RGB", (16, 16), (20 * i, 0, 0)) for i in range(5)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    frames[0].save(tmp_path / "still.gif")
    assert manager.domain_for_path(tmp_path / "anim.gif").name == "video"
    assert manager.domain_for_path(tmp_path / "still.gif").name == "image"
    folder = tmp_path / "shots"
    folder.mkdir()
    for i, frame in enumerate(frames):
        frame.save(folder / f"frame_{i + 1}.png")
    assert manager.domain_for_path(folder).name == "video"
    assert VideoDomain().load(folder).shape == (1, 3, 5, 16, 16)


def test_layer_names_round_trip_and_wrap_margins_are_per_axis() -> None:
    for shape in ((1, 7, 1), (3, 5, 2), (7, 5, 4)):
        assert layer_shape(layer_name(shape)) == shape
    net = RandomSpacetimeExtractor()
    assert net.wrap_margin("a7") == (0, 3, 3)
    assert net.wrap_margin("d7x5@2") == (3, 2, 2)
    with pytest.raises(UsageError, match="odd"):
        RandomSpacetimeExtractor(options={"dynamics": "4x5"})
    with pytest.raises(UsageError, match="no layers"):
        RandomSpacetimeExtractor(options={"appearance": "none", "dynamics": "none"})
    with pytest.raises(UsageError, match="FRAMESxPIXELS"):
        RandomSpacetimeExtractor(options={"dynamics": "5"})


def test_frequency_domain_and_direct_correlation_agree_with_gradients() -> None:
    clip = torch.rand(1, 3, 9, 20, 22, requires_grad=True)
    options = {"appearance": "3:9:5@2", "dynamics": "3x5:5x7@2", "filters": 6,
               "pooled_filters": 6}
    fft = RandomSpacetimeExtractor(options={**options, "method": "fft"}).freeze()
    direct = RandomSpacetimeExtractor(options={**options, "method": "direct"}).freeze()
    a, b = fft(clip), direct(clip)
    assert a["a5@2"].shape == (1, 6, 9, 10, 11)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4), name
    grad_a = torch.autograd.grad(sum((m ** 2).sum() for m in a.values()), clip)[0]
    grad_b = torch.autograd.grad(sum((m ** 2).sum() for m in direct(clip).values()), clip)[0]
    assert torch.allclose(grad_a, grad_b, rtol=1e-3, atol=1e-3 * grad_b.abs().max())


def test_maps_are_circular_in_time_and_space() -> None:
    clip = torch.rand(1, 3, 8, 16, 16)
    net = RandomSpacetimeExtractor(options={"filters": 4, "pooled_filters": 4}).freeze()
    rolled = net(torch.roll(clip, shifts=(3, 4, 8), dims=(2, 3, 4)))
    plain = net(clip)
    for name, maps in plain.items():
        pooling = layer_shape(name)[2]
        shift = (3, 4 // pooling, 8 // pooling)
        assert torch.allclose(torch.roll(maps, shifts=shift, dims=(2, 3, 4)), rolled[name],
                              atol=1e-4), name
    assert circular_pool(torch.rand(1, 3, 2, 10, 9), 4).shape == (1, 3, 2, 3, 3)


def test_frames_extractor_runs_a_picture_extractor_on_every_frame() -> None:
    manager = get_plugin_manager()
    domain = VideoDomain()
    net = manager.create_extractor(
        ExtractorConfig("frames", options={"net": "random-multiscale", "sizes": "3:7",
                                           "filters": 5}), domain)
    clip = torch.rand(1, 3, 4, 20, 20)
    maps = net(clip)
    picture = manager.create_extractor(
        ExtractorConfig("random-multiscale", options={"sizes": "3:7", "filters": 5}),
        manager.get_domain("image"))
    assert maps["k7"].shape == (1, 5, 4, 20, 20)
    assert torch.allclose(maps["k7"][:, :, 2], picture(clip[:, :, 2])["k7"], atol=1e-5)
    assert net.wrap_margin("k7") == (0, 3, 3)
    with pytest.raises(texsynth.TexsynthError, match="patches"):
        manager.create_extractor(ExtractorConfig("frames", options={"net": "patchez"}),
                                 domain)


def loop_jump(signal: torch.Tensor) -> float:
    """Mean |last frame - first frame| over the mean step between neighbouring frames."""
    steps = (signal[:, :, 1:] - signal[:, :, :-1]).abs().mean()
    wrap = (signal[:, :, 0] - signal[:, :, -1]).abs().mean()
    return float(wrap / steps)


def test_synthesis_makes_a_clip_that_loops(tmp_path: Path) -> None:
    exemplar = moving_pattern(12, 24, 24, speed=1.5)
    result = texsynth.synthesize(exemplar, domain=VideoDomain(fps=8), size=(10, 24, 24),
                                 steps=30, seed=0, progress=False,
                                 extractor_options={"filters": 8, "pooled_filters": 8})
    out = result.signal
    assert out.shape == (1, 3, 10, 24, 24)
    assert result.losses[-1] < 0.3 * result.losses[0]
    assert loop_jump(out) < 1.5
    written = VideoDomain(fps=8).save(out, tmp_path / "out.mp4", metadata={"seed": 0})
    clip, fps, metadata = read_clip(written)
    assert clip.shape[1:] == (10, 24, 24) and fps == pytest.approx(8)
    assert metadata is not None and metadata["seed"] == 0


def test_stream_writes_frames_as_they_come_and_keeps_them_on_ctrl_c(tmp_path: Path) -> None:
    domain = VideoDomain(fps=10)

    def blocks() -> object:
        for i in range(3):
            yield moving_pattern(4, 16, 16)[0] * (0.5 + 0.1 * i)
        raise KeyboardInterrupt

    result = domain.write_stream(blocks(), tmp_path / "s.webm", 3, metadata={"k": 1})  # type: ignore[arg-type]
    assert result.stopped and result.extent == 12
    clip, fps, _ = read_clip(tmp_path / "s.webm")
    assert clip.shape == (3, 12, 16, 16) and fps == pytest.approx(10)
    with pytest.raises(UsageError, match="standard output"):
        domain.write_stream(iter([]), None, 3)


def test_preview_is_a_strip_of_frames(tmp_path: Path) -> None:
    domain = VideoDomain()
    path = domain.write_preview([("exemplar", moving_pattern(10)),
                                 ("output", moving_pattern(20))], tmp_path / "p.png")
    strip = Image.open(path)
    assert strip.height > 2 * 24 and strip.width > 8 * 32


def test_command_line_reads_a_frame_folder_and_writes_a_gif_with_a_preview(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from texsynth.cli.commands import main

    folder = write_clip(tmp_path / "frames", moving_pattern(8, 16, 16)[0], 8.0)
    out, preview = tmp_path / "out.gif", tmp_path / "strip.png"
    code = main(["synthesize", str(folder), "-o", str(out), "--size", "6x20x16", "--steps",
                 "3", "--seed", "0", "--quiet", "--extractor", "frames", "--option",
                 "net=random-multiscale", "--option", "sizes=3:5", "--option", "filters=4",
                 "--also", "random-spacetime", "--preview", str(preview)])
    assert code == 0, capsys.readouterr().err
    clip, fps, metadata = read_clip(out)
    assert clip.shape == (3, 6, 16, 20) and fps == pytest.approx(8.0, rel=0.05)
    assert metadata is not None and metadata["seed"] == 0
    assert Image.open(preview).width > 6 * 20

    code = main(["synthesize", str(folder), "-o", str(tmp_path / "bad.avi"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.avi" in err and "'.avi'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("kind", ["garbage", "fifo", "empty-folder-name"])
def test_bad_clips_on_the_command_line_are_one_line_errors(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from texsynth.cli.commands import main

    if kind == "garbage":
        source = tmp_path / "broken.mp4"
        source.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    elif kind == "fifo":
        source = tmp_path / "pipe.mp4"
        os.mkfifo(source)
    else:
        source = tmp_path / "nothing"
        source.mkdir()
    code = main(["synthesize", str(source), "-o", str(tmp_path / "out.mp4"), "--size",
                 "4x16x16", "--steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("texsynth: error:")
    assert source.name in err and "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()

"""File I/O of the video plugin (:mod:`texsynth_video.io`): real files, tiny clips.

Every format is written and read back (shape, frame rate, values, metadata); streaming,
aborting, the frame-folder rules, the caps and the one-line errors for bad files are
checked on files made here.
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from texsynth.atomic import write_policy
from texsynth.errors import InputError, UsageError
from texsynth_video import io as clip_io
from texsynth_video.io import common

FPS = 25.0  # a rate every format stores exactly (GIF delays are in 1/100 s)
META = {"steps": 3, "extractor": "random-multiscale", "note": "é ✓ " + "x" * 400}


def moving_pattern(frames: int = 6, height: int = 32, width: int = 48) -> torch.Tensor:
    """A smooth colour pattern drifting across the picture: ``(3, T, H, W)`` in [0.1, 0.9]."""
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1)
    y = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    x = torch.arange(width, dtype=torch.float32).view(1, 1, width)
    red = 0.5 + 0.4 * torch.sin(2 * math.pi * (x / width + t / frames))
    green = 0.5 + 0.4 * torch.cos(2 * math.pi * (y / height - t / frames))
    blue = 0.5 + 0.3 * torch.sin(2 * math.pi * ((x + y) / (width + height) + t / frames))
    return torch.stack(torch.broadcast_tensors(red, green, blue)).contiguous()


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def save_frame(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (8, 6)
               ) -> None:
    Image.new("RGB", size, color).save(path)


#: name, mean absolute error allowed, exact to 1/255 (lossless formats)
FORMATS = [
    ("clip.mp4", 0.03, False),
    ("clip.webm", 0.03, False),
    ("clip.mkv", 0.03, False),
    ("clip.mov", 0.03, False),
    ("clip.gif", 0.06, False),
    ("clip.webp", 0.02, True),
    ("clip.apng", 0.0, True),
    ("clip.png", 0.0, True),
    ("frames", 0.0, True),
]


@pytest.mark.parametrize(("name", "tolerance", "lossless"), FORMATS)
def test_round_trip(tmp_path, name, tolerance, lossless):
    clip = moving_pattern()
    target = tmp_path / name
    assert clip_io.write_clip(target, clip, FPS, META) == target
    back, fps, metadata = clip_io.read_clip(target)
    assert back.shape == clip.shape
    assert back.dtype == torch.float32
    assert float(back.min()) >= 0.0
    assert float(back.max()) <= 1.0
    assert fps == pytest.approx(FPS, rel=0.01)
    assert metadata == META
    error = (back - clip).abs()
    if lossless:
        assert float(error.max()) <= 0.5 / 255 + 1e-6
    else:
        assert float(error.mean()) < tolerance
    info = clip_io.probe(target)
    assert (info.frames, info.height, info.width) == tuple(clip.shape[1:])
    assert info.fps == pytest.approx(FPS, rel=0.01)
    assert listing(tmp_path) == [name]  # no sidecar, no temporary file


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "clip.gif", "clip.apng", "frames"])
def test_no_metadata(tmp_path, name):
    target = clip_io.write_clip(tmp_path / name, moving_pattern(3), 12.0)
    _, fps, metadata = clip_io.read_clip(target)
    assert metadata is None
    assert fps == pytest.approx(12.0, rel=0.01)


def test_video_metadata_is_a_comment_tag(tmp_path):
    """Other tools see the record as the container's comment."""
    for name in ("a.mp4", "a.mkv"):
        target = clip_io.write_clip(tmp_path / name, moving_pattern(2), FPS, META)
        with av.open(str(target)) as container:
            comment = {k.lower(): v for k, v in container.metadata.items()}["comment"]
        assert json.loads(comment)["metadata"] == META


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "clip.gif", "clip.webp", "frames"])
def test_streaming_in_chunks_matches_write_clip(tmp_path, name):
    clip = moving_pattern()
    whole, _, _ = clip_io.read_clip(clip_io.write_clip(tmp_path / "whole" / name, clip, FPS))
    with clip_io.ClipWriter(tmp_path / "chunks" / name, height=32, width=48, fps=FPS) as writer:
        for start, stop in ((0, 1), (1, 3), (3, 6)):
            writer.write(clip[:, start:stop])
        assert writer.frames_written == 6
    chunked, _, _ = clip_io.read_clip(tmp_path / "chunks" / name)
    assert torch.equal(chunked, whole)


def test_identical_frames_survive(tmp_path):
    """Pillow merges identical consecutive frames of GIF/WebP/APNG into one shown longer;
    reading splits them again, at odd rates too."""
    torch.manual_seed(0)
    frames = torch.rand(3, 4, 8, 10)
    order = [0, 0, 1, 2, 2, 2, 3, *[3] * 6, 0, 1]
    clip = frames[:, order]
    for name in ("a.gif", "a.webp", "a.apng"):
        for fps in (24.0, 29.97):
            back, rate, _ = clip_io.read_clip(clip_io.write_clip(tmp_path / name, clip, fps))
            assert back.shape == clip.shape, (name, fps)
            assert rate == pytest.approx(fps)
    still = frames[:, :1].expand(3, 5, 8, 10)
    for name in ("still.png", "still.webp", "still.gif"):
        back, _, _ = clip_io.read_clip(clip_io.write_clip(tmp_path / name, still, FPS))
        assert back.shape[1] == 5, name


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm", "clip.gif", "frames"])
def test_abort_leaves_nothing(tmp_path, name):
    clip = moving_pattern(3)
    writer = clip_io.ClipWriter(tmp_path / name, height=32, width=48, fps=FPS, metadata=META)
    writer.write(clip)
    writer.abort()
    writer.abort()  # safe twice
    assert listing(tmp_path) == []

    def fail_inside_with() -> None:
        with clip_io.ClipWriter(tmp_path / name, height=32, width=48, fps=FPS) as writer:
            writer.write(clip)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside_with()
    assert listing(tmp_path) == []


def test_zero_frames_is_refused(tmp_path):
    for name in ("empty.mp4", "empty.gif", "empty"):
        writer = clip_io.ClipWriter(tmp_path / name, height=32, width=48, fps=FPS)
        writer.write(torch.zeros(3, 0, 32, 48))
        with pytest.raises(UsageError, match="no frames"):
            writer.close()
    assert listing(tmp_path) == []


def test_close_twice_and_write_after_close(tmp_path):
    writer = clip_io.ClipWriter(tmp_path / "a.mp4", height=32, width=48, fps=FPS)
    writer.write(moving_pattern(2))
    assert writer.close() == tmp_path / "a.mp4"
    assert writer.close() == tmp_path / "a.mp4"
    writer.abort()  # after close: the file stays
    with pytest.raises(UsageError):
        writer.write(moving_pattern(1))
    assert listing(tmp_path) == ["a.mp4"]


def test_writer_checks_its_input(tmp_path):
    with pytest.raises(UsageError, match=r"\.avi"):
        clip_io.ClipWriter(tmp_path / "a.avi", height=8, width=8, fps=FPS)
    with pytest.raises(UsageError, match="fps"):
        clip_io.ClipWriter(tmp_path / "a.mp4", height=8, width=8, fps=0)
    circular: dict[str, object] = {}
    circular["self"] = circular
    with pytest.raises(UsageError, match="JSON"):
        clip_io.ClipWriter(tmp_path / "a.mp4", height=8, width=8, fps=FPS, metadata=circular)
    writer = clip_io.ClipWriter(tmp_path / "a.gif", height=8, width=8, fps=FPS)
    with pytest.raises(UsageError, match=r"\(3, n, 8, 8\)"):
        writer.write(torch.zeros(3, 2, 8, 9))
    writer.abort()
    assert not clip_io.supported_output(tmp_path / "a.avi")
    assert clip_io.supported_output(tmp_path / "a.MP4")
    assert clip_io.supported_output(tmp_path / "folder")
    assert listing(tmp_path) == []


def test_values_are_clamped(tmp_path):
    clip = moving_pattern(2) * 3 - 1  # far outside [0, 1]
    back, _, _ = clip_io.read_clip(clip_io.write_clip(tmp_path / "a.apng", clip, FPS))
    assert torch.equal(back, clip.clamp(0, 1).mul(255).round().div(255))


def test_write_policy_is_honoured(tmp_path):
    target = clip_io.write_clip(tmp_path / "a.mp4", moving_pattern(2), FPS)
    with write_policy(), pytest.raises(InputError, match="already exists"):
        clip_io.write_clip(target, moving_pattern(2), FPS)
    with write_policy(overwrite=True):
        clip_io.write_clip(target, moving_pattern(4), FPS)
    assert clip_io.read_clip(target)[0].shape[1] == 4
    assert listing(tmp_path) == ["a.mp4"]


def test_frame_folder_target_must_be_new_or_empty(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        clip_io.write_clip(busy, moving_pattern(2), FPS)
    assert listing(busy) == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    clip_io.write_clip(empty, moving_pattern(2), FPS)
    assert listing(empty) == ["frame_000001.png", "frame_000002.png", "texsynth.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]


def test_frame_folder_sorted_by_number(tmp_path):
    colors = {2: (0, 255, 0), 10: (0, 0, 255), 1: (255, 0, 0)}
    for number, color in colors.items():
        save_frame(tmp_path / f"frame_{number}.png", color)
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "cover.png").write_bytes(b"no number, not a frame")
    clip, fps, metadata = clip_io.read_clip(tmp_path)
    assert clip.shape == (3, 3, 6, 8)
    firsts = [tuple(round(float(v) * 255) for v in clip[:, t, 0, 0]) for t in range(3)]
    assert firsts == [colors[1], colors[2], colors[10]]
    assert (fps, metadata) == (clip_io.DEFAULT_FPS, None)
    assert clip_io.probe(tmp_path) == clip_io.ClipInfo(frames=3, height=6, width=8, fps=24.0)


def test_frame_folder_sizes_must_match(tmp_path):
    save_frame(tmp_path / "00001.png", (10, 20, 30))
    save_frame(tmp_path / "00002.jpg", (10, 20, 30), size=(9, 6))
    with pytest.raises(InputError, match=r"00002\.jpg") as caught:
        clip_io.read_clip(tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_frame_folder_json_settings(tmp_path):
    save_frame(tmp_path / "f0.png", (1, 2, 3))
    (tmp_path / "texsynth.json").write_text(json.dumps({"fps": 12.5, "metadata": {"a": 1}}))
    _, fps, metadata = clip_io.read_clip(tmp_path)
    assert (fps, metadata) == (12.5, {"a": 1})
    (tmp_path / "texsynth.json").write_text("{broken")
    with pytest.raises(InputError, match=r"texsynth\.json.*not valid JSON"):
        clip_io.read_clip(tmp_path)


def test_is_frame_folder(tmp_path):
    assert not clip_io.is_frame_folder(tmp_path)  # empty
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "frame.png").write_bytes(b"x")
    assert not clip_io.is_frame_folder(tmp_path)  # nothing numbered
    assert not clip_io.is_frame_folder(tmp_path / "missing")
    assert not clip_io.is_frame_folder(tmp_path / "readme.txt")
    save_frame(tmp_path / "shot_0007.png", (0, 0, 0))
    assert clip_io.is_frame_folder(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match="numbered frames"):
        clip_io.read_clip(tmp_path / "sub")


def test_is_animated_image(tmp_path):
    still = tmp_path / "still.gif"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(still)
    assert not clip_io.is_animated_image(still)
    clip_io.write_clip(tmp_path / "moving.gif", moving_pattern(3), FPS)
    clip_io.write_clip(tmp_path / "moving.webp", moving_pattern(3), FPS)
    clip_io.write_clip(tmp_path / "moving.png", moving_pattern(3), FPS)
    for name in ("moving.gif", "moving.webp", "moving.png"):
        assert clip_io.is_animated_image(tmp_path / name), name
    (tmp_path / "junk.gif").write_bytes(b"GIF89a garbage")
    assert not clip_io.is_animated_image(tmp_path / "junk.gif")
    assert not clip_io.is_animated_image(tmp_path / "missing.gif")
    assert not clip_io.is_animated_image(tmp_path)
    back, _, _ = clip_io.read_clip(still)  # a still picture is a clip of one frame
    assert back.shape == (3, 1, 8, 8)


def test_foreign_gif_timing(tmp_path):
    """A GIF written elsewhere: the first frame's delay gives the rate."""
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(4)]
    target = tmp_path / "foreign.gif"
    frames[0].save(target, save_all=True, append_images=frames[1:], duration=50, loop=0)
    clip, fps, metadata = clip_io.read_clip(target)
    assert (clip.shape[1], fps, metadata) == (4, 20.0, None)
    frames[0].save(tmp_path / "nodelay.gif", save_all=True, append_images=frames[1:])
    assert clip_io.read_clip(tmp_path / "nodelay.gif")[1] == clip_io.DEFAULT_ANIMATED_FPS


def test_garbage_named_mp4(tmp_path):
    target = tmp_path / "garbage.mp4"
    target.write_bytes(os.urandom(4096))
    with pytest.raises(InputError, match="is not a video PyAV can read") as caught:
        clip_io.read_clip(target)
    message = str(caught.value)
    assert "garbage.mp4" in message
    assert "\n" not in message
    with pytest.raises(InputError, match=r"garbage\.mp4"):
        clip_io.probe(target)


def test_truncated_mp4(tmp_path):
    source = clip_io.write_clip(tmp_path / "whole.mp4", moving_pattern(12, 64, 64), FPS)
    data = source.read_bytes()
    for fraction in (0.5, 0.8):
        target = tmp_path / "cut.mp4"
        target.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(InputError, match=r"cut\.mp4") as caught:
            clip_io.read_clip(target)
        assert "\n" not in str(caught.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        clip_io.read_clip(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="no such file"):
        clip_io.probe(tmp_path / "missing.gif")
    (tmp_path / "empty.webm").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        clip_io.read_clip(tmp_path / "empty.webm")


def test_no_video_stream(tmp_path):
    target = tmp_path / "sound.mkv"
    with av.open(str(target), mode="w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        clip_io.read_clip(target)


@pytest.mark.parametrize("name", ["odd.mp4", "odd.webm", "odd.mov"])
def test_odd_frame_sizes(tmp_path, name):
    clip = moving_pattern(4, 31, 45)
    back, _, _ = clip_io.read_clip(clip_io.write_clip(tmp_path / name, clip, FPS))
    assert back.shape == clip.shape
    assert float((back - clip).abs().mean()) < 0.03


def test_fractional_rate(tmp_path):
    target = clip_io.write_clip(tmp_path / "ntsc.mp4", moving_pattern(3), 29.97)
    with av.open(str(target)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    assert clip_io.read_clip(target)[1] == pytest.approx(29.97, rel=1e-4)


@pytest.mark.parametrize("name", ["long.mp4", "long.webm", "long.gif", "long.png", "long"])
def test_max_frames_stops_early(tmp_path, name):
    clip = moving_pattern(8, 16, 16)
    target = clip_io.write_clip(tmp_path / name, clip, FPS)
    back, _, _ = clip_io.read_clip(target, max_frames=3)
    assert back.shape == (3, 3, 16, 16)
    full, _, _ = clip_io.read_clip(target)
    assert torch.equal(back, full[:, :3])
    with pytest.raises(UsageError, match="max_frames"):
        clip_io.read_clip(target, max_frames=0)


def test_caps(tmp_path, monkeypatch):
    video = clip_io.write_clip(tmp_path / "a.mp4", moving_pattern(6, 16, 16), FPS)
    folder = clip_io.write_clip(tmp_path / "f", moving_pattern(6, 16, 16), FPS)
    gif = clip_io.write_clip(tmp_path / "a.gif", moving_pattern(6, 16, 16), FPS)
    monkeypatch.setattr(common, "MAX_FRAMES", 4)
    for target in (video, folder, gif):
        with pytest.raises(InputError, match="more than 4 frames"):
            clip_io.read_clip(target)
        assert clip_io.read_clip(target, max_frames=4)[0].shape[1] == 4
    monkeypatch.setattr(common, "MAX_FRAMES", 100)
    monkeypatch.setattr(common, "MAX_FRAME_PIXELS", 200)
    for target in (video, folder, gif):
        with pytest.raises(InputError, match="limit of 200 pixels"):
            clip_io.read_clip(target)
    with pytest.raises(UsageError, match="limit"):
        clip_io.ClipWriter(tmp_path / "big.mp4", height=16, width=16, fps=FPS)
    monkeypatch.setattr(common, "MAX_VIDEO_BYTES", 100)
    with pytest.raises(InputError, match="too large"):
        clip_io.read_clip(video)


def test_foreign_video_comment_is_not_metadata(tmp_path):
    target = tmp_path / "foreign.mkv"
    with av.open(str(target), mode="w", format="matroska") as container:
        container.metadata["comment"] = "made with another tool"
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 60 * index, np.uint8),
                                               format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    clip, fps, metadata = clip_io.read_clip(target)
    assert (clip.shape, fps, metadata) == ((3, 3, 16, 16), 30.0, None)
    assert clip_io.probe(target) == clip_io.ClipInfo(frames=3, height=16, width=16, fps=30.0)


def test_truncated_webm_warns(tmp_path):
    """WebM has no frame index: a cut file reads short, with a warning."""
    source = clip_io.write_clip(tmp_path / "whole.webm", moving_pattern(12, 64, 64), FPS)
    target = tmp_path / "cut.webm"
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"cut\.webm.*truncated"):
        clip, _, _ = clip_io.read_clip(target)
    assert 1 <= clip.shape[1] < 12


def test_dropped_writer_leaves_nothing(tmp_path):
    import gc

    writer = clip_io.ClipWriter(tmp_path / "a.mp4", height=32, width=48, fps=FPS)
    writer.write(moving_pattern(2))
    assert len(listing(tmp_path)) == 1  # the temporary file
    del writer
    gc.collect()
    assert listing(tmp_path) == []


def test_frame_folder_settings_file(tmp_path):
    target = clip_io.write_clip(tmp_path / "shots", moving_pattern(2), 12.0, {"seed": 7})
    settings = json.loads((target / "texsynth.json").read_text())
    assert settings["fps"] == 12.0
    assert settings["frames"] == 2
    assert settings["metadata"] == {"seed": 7}


def test_check_output_path(tmp_path):
    with pytest.raises(UsageError, match=r"\.mp4.*\.webm.*\.gif.*folder"):
        clip_io.check_output_path(tmp_path / "a.avi")
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(InputError, match="not a folder"):
        clip_io.check_output_path(tmp_path / "plain")
    clip_io.check_output_path(tmp_path / "a.webm")
    clip_io.check_output_path(tmp_path / "new-folder")


def test_pictures_of_the_image_plugin(tmp_path):
    """A still PNG with the image plugin's ``texsynth`` chunk, and a GIF with a sidecar,
    read as one-frame clips with their settings."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("texsynth", json.dumps({"seed": 1}))
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "still.png", pnginfo=info)
    clip, _, metadata = clip_io.read_clip(tmp_path / "still.png")
    assert (clip.shape, metadata) == ((3, 1, 8, 8), {"seed": 1})
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "still.gif")
    (tmp_path / "still.gif.json").write_text(json.dumps({"seed": 2}))
    assert clip_io.read_clip(tmp_path / "still.gif")[2] == {"seed": 2}

"""Data-parallel training under torchrun: same losses as one process, resumable across
world sizes, and batch norm with global-batch statistics.

Two real ``torchrun --nproc_per_node 2 --standalone`` launches on the CPU (Gloo), each a
few seconds: ``texsynth train`` itself, and a float64 batch-norm check. Children run with
``OMP_NUM_THREADS=1``.

Tolerances. With instance norm the 2-process loss history equals the 1-process one to
float32 rounding (measured ≤ 2e-5 relative over the 6 steps; asserted ``rel=1e-4``).
Batch norm is exact in float64 (asserted ``rel=1e-9``); it is not compared in float32
through the real loss, because there the gradient itself is ill-conditioned: one
process's float32 gradient differs from its own float64 gradient by ~1 %, so two correct
float32 computations with different reduction orders differ by that much after one
Adam step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import PIL.Image as PIL
import pytest
import torch
from torch import nn

from texsynth import GeneratorConfig, PluginManager, UsageError
from texsynth.cli.commands import main
from texsynth.feedforward.checkpoint import load_checkpoint
from texsynth.feedforward.distributed import (
    DistributedContext,
    GlobalBatchNorm,
    revert_batch_norm,
)
from texsynth.feedforward.pyramid import PyramidGenerator

if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
    pytest.skip("torch.distributed with Gloo is not available", allow_module_level=True)

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                "MASTER_PORT", "GROUP_RANK", "TORCHELASTIC_RUN_ID")



def torchrun(args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --nproc_per_node N --standalone ARGS``."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
         "--standalone", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def exemplar(tmp_path: Path, sample_image: object) -> Path:
    """A real exemplar (grass), downscaled to 64²."""
    source = sample_image("grass.png")  # type: ignore[operator]
    path = tmp_path / "grass64.png"
    PIL.open(source).convert("RGB").resize((64, 64), PIL.BICUBIC).save(path)
    return path


def train_args(exemplar: Path, out: Path, iterations: int) -> list[str]:
    """A tiny run: 32² crops, global batch 4, 3 scales, instance norm, 16 random filters
    of sizes 3, 5, 7."""
    return ["train", str(exemplar), "-o", str(out), "--size", "32x32", "--batch-size", "4",
            "--iterations", str(iterations), "--scales", "3", "--norm", "instance",
            "--layers", "k3,k5,k7", "--option", "filters=16", "--seed", "0", "--device", "cpu",
            "--checkpoint-every", "0", "-q"]


def test_two_processes_match_one_and_resume_across_world_sizes(
        exemplar: Path, tmp_path: Path, texsynth_plugins: PluginManager) -> None:
    """1 process (2 steps) → resumed by 2 processes (to 4) → resumed by 1 process (to 6)
    gives the loss history of one uninterrupted 6-step single-process run."""
    assert "random-multiscale" in texsynth_plugins.extractors("image")
    straight, run = tmp_path / "straight.ckpt", tmp_path / "run.ckpt"
    assert main(train_args(exemplar, straight, 6)) == 0
    assert main(train_args(exemplar, run, 2)) == 0
    proc = torchrun(["-m", "texsynth", *train_args(exemplar, run, 4), "--resume"], tmp_path)
    assert "Traceback" not in proc.stderr
    two = load_checkpoint(run)
    assert two.step == 4
    assert two.settings["training"]["processes"] == 2
    assert two.settings["training"]["batch_size"] == 4  # the global batch
    assert main([*train_args(exemplar, run, 6), "--resume"]) == 0
    reference, resumed = load_checkpoint(straight), load_checkpoint(run)
    assert len(resumed.losses) == 6
    assert resumed.losses == pytest.approx(reference.losses, rel=1e-4)
    assert resumed.settings["training"]["processes"] == 1
    for name, value in reference.generator_state.items():
        torch.testing.assert_close(resumed.generator_state[name], value, rtol=1e-3,
                                   atol=5e-4)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


_BATCH_NORM_SCRIPT = textwrap.dedent('''
    """Three Adam steps of a batch-norm pyramid in float64 with the training helpers."""
    import sys
    import torch
    from texsynth import GeneratorConfig
    from texsynth.feedforward import distributed
    from texsynth.feedforward.pyramid import PyramidGenerator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = PyramidGenerator(GeneratorConfig("pyramid", 2, 3, 0, {"num_scales": 3})).double()
    dist = distributed.setup("cpu")
    model = dist.wrap(gen)
    optimizer = torch.optim.Adam(gen.parameters(), lr=0.01)
    rng = torch.Generator().manual_seed(1)
    target = torch.linspace(0, 1, 24, dtype=torch.float64)
    losses = []
    for _ in range(3):
        noise = [n.double() for n in dist.local(gen.make_noise(4, (20, 24), generator=rng),
                                                 4)]
        per_sample = ((model(noise) - target) ** 2).mean(dim=(1, 2, 3))
        loss = (per_sample ** 2).mean()  # not linear in the batch: tests the gradients
        losses.append(dist.mean(loss))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dist.unwrap(gen)
    if dist.is_main:
        torch.save({"losses": losses, "state": gen.state_dict(),
                    "types": sorted({type(m).__name__ for m in gen.modules()})}, sys.argv[1])
    dist.close()
''')


def _reference_batch_norm_run() -> tuple[list[float], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    gen = PyramidGenerator(GeneratorConfig("pyramid", 2, 3, 0, {"num_scales": 3})).double()
    optimizer = torch.optim.Adam(gen.parameters(), lr=0.01)
    rng = torch.Generator().manual_seed(1)
    target = torch.linspace(0, 1, 24, dtype=torch.float64)
    losses = []
    for _ in range(3):
        noise = [n.double() for n in gen.make_noise(4, (20, 24), generator=rng)]
        loss = (((gen(noise) - target) ** 2).mean(dim=(1, 2, 3)) ** 2).mean()
        losses.append(float(loss.detach()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses, gen.state_dict()


def test_batch_norm_uses_global_batch_statistics(tmp_path: Path) -> None:
    """Float64, so agreement is to rounding: losses, weights and running statistics of a
    2-process run equal a 1-process run with the same global batch."""
    script = tmp_path / "bn_check.py"
    script.write_text(_BATCH_NORM_SCRIPT)
    torchrun([str(script), str(tmp_path / "bn.pt")], tmp_path)
    result = torch.load(tmp_path / "bn.pt", weights_only=True)
    losses, state = _reference_batch_norm_run()
    assert result["losses"] == pytest.approx(losses, rel=1e-9)
    assert "GlobalBatchNorm" not in result["types"]  # unwrapped after training
    assert set(result["state"]) == set(state)
    for name, value in state.items():
        torch.testing.assert_close(result["state"][name], value, rtol=1e-7, atol=1e-9)


def test_batch_norm_swap_keeps_parameters_and_state_dict() -> None:
    torch.manual_seed(0)
    gen = PyramidGenerator(GeneratorConfig("pyramid", 2, 3, 0, {"num_scales": 3}))
    before = list(gen.parameters())
    keys = list(gen.state_dict())
    ctx = DistributedContext(world_size=2, rank=0)
    from texsynth.feedforward.distributed import _swap_batch_norms

    assert _swap_batch_norms(gen, to_global=True) > 0
    assert any(isinstance(m, GlobalBatchNorm) for m in gen.modules())
    assert all(a is b for a, b in zip(gen.parameters(), before, strict=True))
    assert list(gen.state_dict()) == keys
    ctx.unwrap(gen)
    assert not any(isinstance(m, GlobalBatchNorm) for m in gen.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in gen.modules())
    assert revert_batch_norm(gen) == 0
    assert all(a is b for a, b in zip(gen.parameters(), before, strict=True))


def test_global_batch_splits_evenly() -> None:
    assert DistributedContext(world_size=2, rank=1).shard(8) == slice(4, 8)
    assert DistributedContext().shard(3) == slice(0, 3)
    with pytest.raises(UsageError, match="batch size 6 cannot be split evenly over 4 "
                                         "processes; use a multiple of 4") as info:
        DistributedContext(world_size=4, rank=0).shard(6)
    assert "\n" not in str(info.value)


def test_not_distributed_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from texsynth.feedforward.distributed import setup, torchrun_world

    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert torchrun_world() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    context = setup("cpu")
    assert not context.enabled
    assert context.is_main
    gen = nn.Linear(2, 2)
    assert context.wrap(gen) is gen
    assert context.mean(torch.tensor(2.5)) == 2.5
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert torchrun_world() == (4, 2, 0)

"""The optimisation loop: minimise a loss over one tensor with L-BFGS or Adam for a fixed
budget of loss evaluations, keeping the best iterate (:func:`run_optimization`), and what
an optimisation run returns (:class:`OptimizationResult`).

The loop knows nothing of domains, features or levels: it sees a variable, a loss
function and a projection back onto valid values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from ..errors import UsageError

__all__ = [
    "OptimizationResult",
    "OptimizerName",
    "StepCallback",
    "run_optimization",
]

OptimizerName = Literal["lbfgs", "adam"]
#: ``callback(step, loss, signal)`` called after every loss evaluation; ``signal`` is the
#: current (projected) signal ``(1, C, *spatial)``, detached.
StepCallback = Callable[[int, float, torch.Tensor], None]
#: Maps the variable back onto valid values (same shape in and out).
Projection = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class OptimizationResult:
    """What an optimisation run returns.

    Attributes:
        signal: the result ``(1, C, *spatial)`` on the CPU, within the domain's range.
        losses: total loss after each evaluation (``len == steps``).
        settings: resolved settings and seed, JSON-serialisable; saved with outputs.
    """

    signal: torch.Tensor
    losses: list[float]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The seed the run used."""
        return int(self.settings["seed"])


class _BudgetSpent(Exception):
    """Raised by the loss closure once ``steps`` evaluations are done."""


class _Evaluations:
    """The loss closure of one run: each call projects the variable ``x``, evaluates
    ``loss_fn`` and back-propagates, up to ``steps`` calls (then :class:`_BudgetSpent`);
    it records every loss, keeps the best iterate and reports to ``bar`` and
    ``callback``."""

    def __init__(self, x: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor], *,
                 steps: int, project: Projection | None, bar: Any,
                 callback: StepCallback | None) -> None:
        self.x, self.loss_fn, self.steps, self.project = x, loss_fn, steps, project
        self.bar, self.callback = bar, callback
        self.losses: list[float] = []
        self.best_loss = math.inf
        self.best: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        x, losses = self.x, self.losses
        if len(losses) >= self.steps:  # the budget is spent, also inside a line search
            raise _BudgetSpent
        if self.project is not None:
            with torch.no_grad():
                x.copy_(self.project(x))
        loss = self.loss_fn(x)
        if not torch.isfinite(loss):
            raise UsageError(f"the loss became {loss.item()} at step {len(losses) + 1}; "
                             "lower the learning rate or the loss weights")
        if x.grad is not None:
            x.grad = None
        loss.backward()
        value = float(loss.detach())
        losses.append(value)
        if value < self.best_loss:  # keep the best iterate: L-BFGS may end on a worse one
            self.best_loss = value
            self.best = x.detach().clone()
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{value:.4g}")
        if self.callback is not None:
            self.callback(len(losses), value, x.detach())
        return loss

    def result(self) -> torch.Tensor:
        """The best iterate seen (the variable itself before any evaluation), projected
        and detached."""
        final = self.best if self.best is not None else self.x.detach()
        with torch.no_grad():
            result = self.project(final) if self.project is not None else final
        return result.detach()


def _run_lbfgs(evaluate: _Evaluations, lr: float | None, history: int) -> None:
    """L-BFGS with a strong-Wolfe line search until ``evaluate``'s budget is spent."""
    steps = evaluate.steps
    opt = torch.optim.LBFGS(
        [evaluate.x], lr=1.0 if lr is None else lr, max_iter=steps, max_eval=steps,
        history_size=history, tolerance_grad=1e-30, tolerance_change=1e-30,
        line_search_fn="strong_wolfe",
    )
    # L-BFGS may stop early on a flat loss; keep going until the budget is spent.
    while len(evaluate.losses) < steps:
        before = len(evaluate.losses)
        for group in opt.param_groups:
            group["max_iter"] = group["max_eval"] = steps - len(evaluate.losses)
        try:
            opt.step(evaluate)
        except _BudgetSpent:
            break
        if len(evaluate.losses) == before:
            break


def _run_adam(evaluate: _Evaluations, lr: float | None) -> None:
    """Adam, one step per evaluation, for ``evaluate``'s budget."""
    opt = torch.optim.Adam([evaluate.x], lr=0.02 if lr is None else lr)
    for _ in range(evaluate.steps):
        opt.zero_grad(set_to_none=True)
        evaluate()
        opt.step()


def run_optimization(
    signal: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int,
    optimizer: OptimizerName = "lbfgs",
    lr: float | None = None,
    project: Projection | None = None,
    progress: bool = True,
    callback: StepCallback | None = None,
    description: str = "optimising",
    history: int = 50,
) -> tuple[torch.Tensor, list[float]]:
    """Minimise ``loss_fn(signal)`` over the signal; return the result and loss history.

    ``steps`` counts loss evaluations (one forward and backward pass each), for both
    optimisers, so runs of the same ``steps`` cost the same: the history has ``steps``
    entries and ``callback`` is called ``steps`` times (an L-BFGS line search still
    under way when the budget is spent is cut short).
    The signal with the lowest loss seen is returned (the last iterate can be worse after
    a bad line-search step).
    L-BFGS uses a strong-Wolfe line search: without one, PyTorch's L-BFGS takes tiny
    first steps and skips history updates when the loss is small, and stalls.
    ``project`` maps the variable back onto valid signals after each update; ``history``
    is L-BFGS's number of update pairs (see :func:`texsynth.optim.fitting.lbfgs_history`);
    ``progress`` shows a bar named ``description``.
    """
    if steps < 1:
        raise UsageError(f"steps must be at least 1, got {steps}", parameter="steps")
    x = signal.detach().clone().requires_grad_(True)
    bar = tqdm(total=steps, desc=description, disable=not progress, unit="step",
               dynamic_ncols=True, leave=False)
    evaluate = _Evaluations(x, loss_fn, steps=steps, project=project, bar=bar,
                            callback=callback)
    try:
        if optimizer == "lbfgs":
            _run_lbfgs(evaluate, lr, history)
        elif optimizer == "adam":
            _run_adam(evaluate, lr)
        else:
            raise UsageError(f"unknown optimizer {optimizer!r}; use lbfgs or adam",
                             parameter="optimizer")
    finally:
        bar.close()
    return evaluate.result(), evaluate.losses

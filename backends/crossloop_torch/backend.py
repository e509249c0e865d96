"""The PyTorch backend: autograd for gradients, ``optimizer.step()`` to apply them.

Methods appear in the same order as in crossloop_tensorflow/backend.py, so the
two files read side by side; what both share is in ``crossloop.backend.BaseBackend``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from crossloop import losses, nn, optim
from crossloop.backend import BackendError, BaseBackend, NativeOptimizer
from crossloop.native import NativeLoss, NativeOptimizerSpec
from crossloop.tracing import LayerRecord

from . import model as model_lib
from . import native as native_lib
from . import optimizers, tracing
from .metrics import Metrics


class TorchBackend(BaseBackend):
    """crossloop's loop phases in PyTorch.

    ``compile=True`` runs the model's forward pass through ``torch.compile``.
    """

    name = "torch"

    def __init__(self, device: str = "auto", compile: bool = False):
        has_gpu = torch.cuda.is_available()
        if device == "gpu" and not has_gpu:
            raise BackendError("device='gpu' was asked for, but torch sees no GPU "
                               "(torch.cuda.is_available() is False); use device='cpu' or 'auto'")
        self.device = "gpu" if has_gpu and device != "cpu" else "cpu"
        self._device = torch.device("cuda" if self.device == "gpu" else "cpu")
        self.compile = compile
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._params: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device!r}, torch={torch.__version__})"

    # -- set-up ---------------------------------------------------------------
    def build_model(self, spec: nn.Sequential, params: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> torch.nn.Module:
        model = model_lib.build(spec, dtype).to(self._device)
        return self.set_params(model, params)

    def adopt_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return native_lib.adopt_model(model, self._device)

    def build_optimizer(self, spec: optim.Optimizer | NativeOptimizerSpec,
                        model: torch.nn.Module) -> NativeOptimizer:
        if isinstance(spec, NativeOptimizerSpec):
            return native_lib.adopt_optimizer(spec, model)
        return NativeOptimizer(spec, optimizers.build(spec, list(model.parameters())))

    def set_learning_rate(self, optimizer: NativeOptimizer, lr: float) -> NativeOptimizer:
        optimizers.set_learning_rate(optimizer.native, lr)
        return optimizer

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        # Shares memory on the CPU (no copy). Not pinned before a GPU copy: page-locking
        # each batch cost 4.1 ms for a 128x1x28x28 float32 batch on an H200, the plain
        # copy 0.08 ms (benchmarks/step_breakdown.py --device gpu; docs/benchmarks.md).
        return torch.from_numpy(array).to(self._device)

    def to_numpy(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    # -- the phases -----------------------------------------------------------
    def forward(self, model: torch.nn.Module, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        if model.training != training:  # train() walks every module: only on a change
            model.train(training)
        with torch.set_grad_enabled(training):
            return self._runnable(model)(x)

    def loss(self, spec: losses.Loss | NativeLoss, logits: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
        if isinstance(spec, NativeLoss):  # torch's order: (input, target)
            return spec.fn(logits, y)
        if isinstance(spec, losses.CrossEntropy):  # (N, C) or (N, T, C): classes on the last axis
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1).long(),
                                   label_smoothing=spec.label_smoothing)
        if isinstance(spec, losses.MSE):
            return F.mse_loss(logits, y)
        if isinstance(spec, losses.L1):
            return F.l1_loss(logits, y)
        if isinstance(spec, losses.SmoothL1):
            return F.smooth_l1_loss(logits, y, beta=spec.beta)
        if isinstance(spec, losses.BCEWithLogits):
            return F.binary_cross_entropy_with_logits(logits, y)
        raise TypeError(f"the torch backend has no loss {spec!r}")

    def gradients(self, model: torch.nn.Module, loss: losses.Loss, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        return self._weighted_gradients(model, loss, x, y, 1.0)

    def _weighted_gradients(self, model: torch.nn.Module, loss: losses.Loss, x: torch.Tensor,
                            y: torch.Tensor,
                            weight: float) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """:meth:`gradients` of the loss times ``weight`` (a data-parallel replica's share
        of the global batch); the loss returned is unweighted, for the metrics."""
        params = self._parameters(model)
        for p in params:
            p.grad = None
        logits = self.forward(model, x, training=True)
        value = self.loss(loss, logits, y)
        (value if weight == 1.0 else value * weight).backward()
        return value, logits, [p.grad for p in params]

    def apply_gradients(self, optimizer: NativeOptimizer, model: torch.nn.Module,
                        grads: list[torch.Tensor]) -> tuple[NativeOptimizer, torch.nn.Module]:
        params = self._parameters(model)
        for p, g in zip(params, grads):
            if p.grad is not g:  # after gradients() they are the same tensors already
                p.grad = g
        optimizers.clip_by_global_norm(params, optimizer.clip_norm)
        optimizer.native.step()
        optimizer.native.zero_grad(set_to_none=True)
        return optimizer, model

    # -- native models: layer calls, for transfer_weights and compare_models ---
    def trace_layers(self, model: torch.nn.Module, x: torch.Tensor,
                     training: bool = False) -> list[LayerRecord]:
        """One forward pass, recording each leaf layer call (``crossloop.tracing``)."""
        return tracing.trace_layers(model, x, training)

    # -- metrics (update/results/reset/sums: BaseBackend) -----------------------
    def metrics(self, grad_norm: bool = False) -> Metrics:
        return Metrics(self._device, grad_norm)

    # -- fused steps ----------------------------------------------------------
    def eval_step(self, model: torch.nn.Module, loss: losses.Loss, metrics: Metrics,
                  x: torch.Tensor, y: torch.Tensor) -> Metrics:
        with torch.inference_mode():  # no autograd bookkeeping at all (BaseBackend's step)
            return super().eval_step(model, loss, metrics, x, y)

    # -- canonical layout (hooks of BaseBackend) --------------------------------
    _to_canonical = staticmethod(model_lib.to_canonical)
    _to_native = staticmethod(model_lib.to_native)
    _param_table = staticmethod(model_lib.param_table)

    def _trainable_names(self, model: torch.nn.Module) -> list[str]:
        return [name for name, _ in model.named_parameters()]

    @staticmethod
    def _assign(tensor: torch.Tensor, value: np.ndarray) -> None:
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(value))

    def _slots(self, optimizer: NativeOptimizer, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        if isinstance(optimizer.spec, NativeOptimizerSpec):
            return native_lib.get_state(optimizer, model)
        return optimizers.get_state(optimizer, self._optimized_table(model))

    def _load_slots(self, optimizer: NativeOptimizer, model: torch.nn.Module,
                    state: dict[str, np.ndarray], step: int) -> None:
        if isinstance(optimizer.spec, NativeOptimizerSpec):
            return native_lib.set_state(optimizer, model, state)
        optimizers.set_state(optimizer, self._optimized_table(model), state, step)

    # -- torch-only helpers (no TensorFlow twin) -------------------------------
    def _parameters(self, model: torch.nn.Module) -> tuple[torch.nn.Parameter, ...]:
        """``model.parameters()``, listed once per model: walking the module tree
        on every step costs more than a small model's optimizer update."""
        params = self._params.get(model)
        if params is None:
            params = self._params[model] = tuple(model.parameters())
        return params

    def _runnable(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model, or its ``torch.compile``d twin when compiling."""
        if not self.compile:
            return model
        if model not in self._compiled:
            self._compiled[model] = torch.compile(model)
        return self._compiled[model]

    # -- precision --------------------------------------------------------------
    @contextlib.contextmanager
    def no_tf32(self) -> Iterator[None]:
        """Inside the block, float32 matmuls and convolutions on NVIDIA GPUs run in
        full float32, not TF32 (torch's defaults: ``cuda.matmul.allow_tf32`` False,
        ``cudnn.allow_tf32`` True); parity runs use it. The flags are restored after."""
        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

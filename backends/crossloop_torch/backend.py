"""The PyTorch backend: autograd for gradients, ``optimizer.step()`` to apply them.

Methods appear in the same order as in crossloop_tensorflow/backend.py, so the
two files read side by side.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from crossloop import losses, nn, optim
from crossloop.backend import BackendError
from crossloop.metrics import AccumulatorPhases

from . import model as model_lib
from . import optimizers
from .metrics import Metrics


class TorchBackend(AccumulatorPhases):
    """crossloop's loop phases in PyTorch.

    ``compile=True`` runs the model through ``torch.compile`` in the fused
    ``train_step``/``eval_step``.
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

    def get_params(self, model: torch.nn.Module) -> dict[str, np.ndarray]:
        return {name: model_lib.to_canonical(name, model, self.to_numpy(tensor))
                for name, tensor in model_lib.param_table(model)}

    def set_params(self, model: torch.nn.Module, params: Mapping[str, np.ndarray]) -> torch.nn.Module:
        table = model_lib.param_table(model)
        nn.check_params({name: tuple(t.shape) for name, t in table}, dict(params))
        with torch.no_grad():
            for name, tensor in table:
                value = model_lib.to_native(name, model, np.asarray(params[name]))
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        return model

    def build_optimizer(self, spec: optim.Optimizer, model: torch.nn.Module) -> torch.optim.Optimizer:
        return optimizers.build(spec, list(model.parameters()))

    def set_learning_rate(self, optimizer: torch.optim.Optimizer, lr: float) -> torch.optim.Optimizer:
        optimizers.set_learning_rate(optimizer, lr)
        return optimizer

    def get_optimizer_state(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> dict[str, np.ndarray]:
        state = optimizers.get_state(optimizer, model_lib.param_table(model))
        return {key: model_lib.to_canonical(key.rsplit(".", 1)[0], model, self.to_numpy(value))
                for key, value in state.items()}

    def set_optimizer_state(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                            state: Mapping[str, np.ndarray], step: int) -> torch.optim.Optimizer:
        native = {key: torch.from_numpy(np.ascontiguousarray(
                      model_lib.to_native(key.rsplit(".", 1)[0], model, np.asarray(value))))
                  for key, value in state.items()}
        optimizers.set_state(optimizer, model_lib.param_table(model), native, step)
        return optimizer

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)  # shares memory: no copy on CPU
        if self.device == "gpu":  # from page-locked memory the copy is asynchronous: no sync
            return tensor.pin_memory().to(self._device, non_blocking=True)
        return tensor

    def to_numpy(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    # -- the phases -----------------------------------------------------------
    def forward(self, model: torch.nn.Module, x: torch.Tensor, training: bool = False) -> torch.Tensor:
        if model.training != training:  # train() walks every module: only on a change
            model.train(training)
        with torch.set_grad_enabled(training):
            return model(x)

    def loss(self, spec: losses.Loss, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if isinstance(spec, losses.CrossEntropy):
            return F.cross_entropy(logits, y)
        if isinstance(spec, losses.MSE):
            return F.mse_loss(logits, y)
        raise TypeError(f"the torch backend has no loss {spec!r}")

    def gradients(self, model: torch.nn.Module, loss: losses.Loss, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        params = self._parameters(model)
        for p in params:
            p.grad = None
        logits = self.forward(self._runnable(model), x, training=True)
        value = self.loss(loss, logits, y)
        value.backward()
        return value, logits, [p.grad for p in params]

    def canonical_gradients(self, model: torch.nn.Module, grads: list[torch.Tensor]) -> dict[str, np.ndarray]:
        names = [name for name, _ in model.named_parameters()]
        return {name: model_lib.to_canonical(name, model, self.to_numpy(g))
                for name, g in zip(names, grads)}

    def apply_gradients(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                        grads: list[torch.Tensor]) -> tuple[torch.optim.Optimizer, torch.nn.Module]:
        params = self._parameters(model)
        for p, g in zip(params, grads):
            if p.grad is not g:  # after gradients() they are the same tensors already
                p.grad = g
        optimizers.clip_by_global_norm(params, optimizer.clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return optimizer, model

    # -- metrics (update/results/reset/sums: crossloop.metrics.AccumulatorPhases) --
    def metrics(self, grad_norm: bool = False) -> Metrics:
        return Metrics(self._device, grad_norm)

    # -- fused steps ----------------------------------------------------------
    def train_step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   loss: losses.Loss, metrics: Metrics, x: torch.Tensor,
                   y: torch.Tensor) -> tuple[torch.nn.Module, torch.optim.Optimizer, Metrics]:
        value, logits, grads = self.gradients(model, loss, x, y)
        if metrics.grad_norm_sum is not None:
            metrics.add_grad_norm(grads)
        optimizer, model = self.apply_gradients(optimizer, model, grads)
        return model, optimizer, self.update_metrics(metrics, value, logits, y)

    def eval_step(self, model: torch.nn.Module, loss: losses.Loss, metrics: Metrics,
                  x: torch.Tensor, y: torch.Tensor) -> Metrics:
        model.eval()
        with torch.inference_mode():
            logits = self._runnable(model)(x)
            return self.update_metrics(metrics, self.loss(loss, logits, y), logits, y)

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

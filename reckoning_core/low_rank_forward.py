"""Answering with a low-rank delta kept as factors: W x + U (V x) in the forward pass instead of (W + U V) x.

A rank-r delta of a weight matrix costs r (rows + cols) numbers as factors and rows x cols once merged. Kept
as factors, the weights of one knowledge id are the shared base plus a few hundred kB, so many ids fit in the
service's weight cache and every ask reads the same base matrices (warm in the CPU caches, whichever id it is
for). Merged, each id is a private copy of every adapted matrix (8 MB of float32 for the shipped model).

Only the weights of `nn.Linear` and GPT-2's `Conv1D` are applied this way; a factorised update of any other
2-D parameter is merged into it (the same numbers, computed once).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from transformers.pytorch_utils import Conv1D

from reckoning_core.fast_weights import LORA_U, LORA_V, merge


@dataclass(frozen=True)
class Factors:
    """out += (x @ left) @ right for the module at `module` (the delta of its weight is left @ right, in the
    layout its forward uses: (in, r) @ (r, out))."""

    left: Tensor
    right: Tensor

    @property
    def nbytes(self) -> int:
        return self.left.numel() * self.left.element_size() + self.right.numel() * self.right.element_size()


def _module_of(model: nn.Module, param_name: str) -> tuple[str, nn.Module] | None:
    path, _, leaf = param_name.rpartition(".")
    if leaf != "weight":
        return None
    try:
        return path, model.get_submodule(path)
    except AttributeError:
        return None


def split(model: nn.Module, base: Mapping[str, Tensor], delta: Mapping[str, Tensor],
          ) -> tuple[dict[str, Tensor], dict[str, Factors]]:
    """The delta as (parameters with every dense part and every non-Linear factor pair merged in, the factor
    pairs of Linear/Conv1D weights to apply in the forward pass, by module path)."""
    dense: dict[str, Tensor] = {}
    factors: dict[str, Factors] = {}
    for name, u in delta.items():
        if name.endswith(LORA_V):
            if name[: -len(LORA_V)] + LORA_U not in delta:
                raise ValueError(f"{name} has no matching {LORA_U} factor")
            continue
        if not name.endswith(LORA_U):
            dense[name] = u
            continue
        target = name[: -len(LORA_U)]
        v_name = target + LORA_V
        if v_name not in delta:
            raise ValueError(f"{name} has no matching {LORA_V} factor")
        v = delta[v_name]
        found = _module_of(model, target)
        dtype = base[target].dtype
        if found is not None and isinstance(found[1], Conv1D):  # weight (in, out); forward x @ W
            factors[found[0]] = Factors(u.to(dtype).contiguous(), v.to(dtype).contiguous())
        elif found is not None and isinstance(found[1], nn.Linear):  # weight (out, in); forward x @ W.T
            factors[found[0]] = Factors(v.T.to(dtype).contiguous(), u.T.to(dtype).contiguous())
        else:
            dense[name], dense[v_name] = u, v
    return merge(base, dense), factors


class FactorHooks:
    """Forward hooks on a model's Linear/Conv1D modules that add `U (V x)` for the factors made active.

    A module gets its hook the first time factors for it are made active, and keeps it: outside `active(...)`
    the hook returns at once. Registering and removing the hooks on every ask cost more than their arithmetic.
    Not thread-safe, like functional_call: one caller at a time (the service's single torch worker).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._factors: Mapping[str, Factors] | None = None
        self._hooked: dict[str, RemovableHandle] = {}

    def _hook_for(self, path: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def hook(_: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            f = None if self._factors is None else self._factors.get(path)
            if f is None:
                return
            # in place: the output is this forward's own fresh tensor (no grad is taken through answers)
            out.view(-1, out.shape[-1]).addmm_(args[0].reshape(-1, args[0].shape[-1]) @ f.left, f.right)
        return hook

    @contextlib.contextmanager
    def active(self, factors: Mapping[str, Factors]) -> Iterator[None]:
        for path in factors:
            if path not in self._hooked:
                self._hooked[path] = self.model.get_submodule(path).register_forward_hook(self._hook_for(path))
        self._factors = factors or None
        try:
            yield
        finally:
            self._factors = None

    def remove(self) -> None:
        """Take every hook off the model."""
        for handle in self._hooked.values():
            handle.remove()
        self._hooked.clear()

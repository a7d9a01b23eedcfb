"""Start-up hook: a process that never imports mmrope_hf still loads a checkpoint with its ``mmrope`` key.

``mmrope_hf_autoload.pth``, installed next to this module at the top of site-packages, runs ``start()`` when the
interpreter starts. That imports nothing (``os`` and ``sys`` are already loaded): it puts a finder at the front of
``sys.meta_path`` that waits for the two transformers modules that define a ``from_pretrained`` mmrope-hf wraps,
``transformers.modeling_utils`` (``PreTrainedModel``, so every concrete model class) and
``transformers.models.auto.modeling_auto`` (the Auto model classes). Right after one of them has run, its classes
get a trampoline ``from_pretrained``. The first call of a trampoline imports mmrope_hf's loading module and runs
``install()`` there, which puts the originals back (:func:`disarm`) and wraps them as ``import mmrope_hf`` does;
the trampoline then hands the call to that wrapper. So mmrope-hf costs nothing until a model is loaded, and from
then on the process behaves as if it had run ``import mmrope_hf``.

The hook watches modules, not the ``transformers`` package: that package is a lazy module, and transformers even
replaces it in ``sys.modules`` on the first access to a model class. This module lives outside the package
because importing anything under ``mmrope_hf`` runs ``mmrope_hf/__init__.py``, which imports torch. The
mechanism is the one of setuptools' ``distutils-precedence.pth`` and virtualenv's ``_virtualenv.pth``.

``MMROPE_HF_AUTOLOAD=0`` (or ``false``, ``no``, ``off``) turns it off; ``python -S`` skips every ``.pth`` file.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: importing these would cost start-up time
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

ENV_VAR = "MMROPE_HF_AUTOLOAD"
MODELING_UTILS = "transformers.modeling_utils"
MODELING_AUTO = "transformers.models.auto.modeling_auto"

_ARMED: dict[type, object] = {}  # class -> the original ``from_pretrained`` in its __dict__


def enabled() -> bool:
    """False when ``MMROPE_HF_AUTOLOAD`` is ``0``, ``false``, ``no`` or ``off`` (any case), else True."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("0", "false", "no", "off")


def owners(module: "ModuleType") -> list[type]:
    """The classes of ``transformers.modeling_utils`` or ``...modeling_auto`` with their own ``from_pretrained``."""
    if module.__name__ == MODELING_UTILS:
        return [module.PreTrainedModel]
    classes, pending = [], [module._BaseAutoModelClass]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in classes if "from_pretrained" in vars(cls)]


def _trampoline(owner: type) -> classmethod:
    def from_pretrained(cls: type, *args: object, **kwargs: object) -> object:
        from mmrope_hf.integrations.transformers import loading

        loading.install()  # calls disarm(), then wraps the originals
        method = vars(owner)["from_pretrained"]
        if method is trampoline:
            raise RuntimeError(f"mmrope-hf: loading.install() left the start-up trampoline on {owner.__name__}")
        return method.__get__(None, cls)(*args, **kwargs)  # the owner's method, as super() would have found it

    original = vars(owner)["from_pretrained"].__func__
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(from_pretrained, name, getattr(original, name))
    from_pretrained.__wrapped__ = original  # type: ignore[attr-defined]  # inspect.signature shows the original's
    trampoline: "classmethod[type, ..., object]" = classmethod(from_pretrained)
    return trampoline


def _arm(module: "ModuleType") -> None:
    for owner in owners(module):
        if owner not in _ARMED:
            _ARMED[owner] = vars(owner)["from_pretrained"]
            owner.from_pretrained = _trampoline(owner)  # type: ignore[attr-defined]


def disarm() -> None:
    """Put the original ``from_pretrained`` methods back and stop waiting for transformers (idempotent)."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _Finder)]
    while _ARMED:
        owner, original = _ARMED.popitem()
        owner.from_pretrained = original  # type: ignore[attr-defined]


class _Finder:
    """Finds nothing itself: for the watched modules it takes the next finder's spec and arms after the module ran."""

    def __init__(self, pending: set[str]) -> None:
        self.pending = pending

    def find_spec(
        self, fullname: str, path: "Sequence[str] | None", target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)
        if not self.pending:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if finder is not self and find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: "ModuleType") -> None:
            run(module)
            _arm(module)

        loader.exec_module = exec_module
        return spec


def start() -> None:
    """Run by the ``.pth`` file: arm now for the watched modules already imported, at their import for the others.

    Idempotent: Python 3.11's ``site`` runs every ``.pth`` file of a venv twice.
    """
    if not enabled() or any(isinstance(finder, _Finder) for finder in sys.meta_path):
        return
    pending = {MODELING_UTILS, MODELING_AUTO}
    for name in sorted(pending & set(sys.modules)):
        pending.discard(name)
        _arm(sys.modules[name])
    if pending:
        sys.meta_path.insert(0, _Finder(pending))

"""Puts ``mmrope_hf_autoload.pth`` at the top of site-packages, from a wheel and from an editable install.

All other settings are in pyproject.toml. setuptools has no option for a top-level file that is not a module, so:

- a wheel: ``build_py`` also copies the file to the build directory, next to ``_mmrope_hf_autoload.py`` (the
  usual recipe, e.g. rapids-dask-dependency and pytest-socket);
- an editable wheel holds no built files, only setuptools' finder and its own ``.pth``: the editable strategy
  is wrapped to write the file as well (``editable_wheel._select_strategy``, private but unchanged since
  setuptools 64; ``tests/test_autoload.py`` checks both installs).

``data-files`` is no way out: it reaches a wheel as ``<name>.data/purelib`` only through a ``..`` in the target,
and never an editable wheel (setuptools 84 checks ``distribution.has_data``, which does not exist).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = Path(__file__).resolve().with_name("mmrope_hf_autoload.pth")
if not hasattr(editable_wheel, "_select_strategy"):  # an editable install without the hook would fail silently
    raise RuntimeError("this setuptools builds editable wheels differently: update setup.py (see its docstring)")


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_file(str(PTH), str(Path(self.build_lib, PTH.name)), preserve_mode=False)


class _WithPth:
    """An editable-install strategy that writes the ``.pth`` file into the wheel after the strategy's own files."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        wheel.writestr(PTH.name, PTH.read_bytes())

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.strategy.__exit__(*exc_info)


class EditableWheelWithPth(editable_wheel):
    def _select_strategy(self, name, tag, build_lib):
        return _WithPth(super()._select_strategy(name, tag, build_lib))


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})

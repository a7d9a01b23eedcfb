"""The ``mmrope`` command line: list schemes and resolve a scheme with overrides."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

import yaml

from . import __version__
from .config import MMRopeConfig, available_schemes, load_preset, option_names, resolve_config


def _parse_sets(pairs: Sequence[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def _schemes(args: argparse.Namespace) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(MMRopeConfig) if f.name != "scheme"}
    if args.json:
        print(json.dumps({name: resolve_config(name).to_dict() for name in available_schemes()}, indent=2))
        return
    for name in available_schemes():
        preset = load_preset(name)
        print(f"{name}\n  {preset.pop('description', '').strip()}")
        for key, default in defaults.items():
            print(f"    {key:<16} {preset.get(key, default)!r}")
    print(f"\noptions: {', '.join(option_names())}")


def _resolve(args: argparse.Namespace) -> None:
    print(json.dumps(resolve_config(args.scheme, **_parse_sets(args.set)).to_dict(), indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmrope`` console script and ``python -m mmrope_hf``."""
    parser = argparse.ArgumentParser(prog="mmrope", description="Multimodal RoPE schemes for Hugging Face VLMs.")
    parser.add_argument("--version", action="version", version=f"mmrope-hf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    schemes = commands.add_parser("schemes", help="list the named schemes with their options and defaults")
    schemes.add_argument("--json", action="store_true", help="print the resolved presets as JSON")
    schemes.set_defaults(run=_schemes)
    resolve = commands.add_parser("resolve", help="print the resolved config of a scheme, preset or file")
    resolve.add_argument("scheme", help="preset name or path to a YAML/JSON file")
    resolve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option")
    resolve.set_defaults(run=_resolve)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:
        print(f"mmrope: error: {error}", file=sys.stderr)
        return 2
    return 0

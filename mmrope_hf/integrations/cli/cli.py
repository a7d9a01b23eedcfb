"""The ``mmrope`` command line: list and resolve schemes, and set the scheme a checkpoint loads with."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

import yaml

from mmrope_hf.config import MMRopeConfig, available_schemes, load_preset, option_names, resolve_config
from mmrope_hf.integrations.transformers.checkpoint import (
    config_path,
    meta_model,
    patch_from_key,
    read_scheme,
    write_scheme,
)
from mmrope_hf.patches import ADAPTERS
from mmrope_hf.patching.api import patch_info, patch_model
from mmrope_hf.patching.families import family_table
from mmrope_hf.version import __version__


def _parse_sets(pairs: Sequence[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def _schemes(args: argparse.Namespace) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(MMRopeConfig) if f.name != "scheme"}
    if args.families:
        print(family_table(), end="")
        return
    if args.json:
        print(json.dumps({name: resolve_config(name).to_dict() for name in available_schemes()}, indent=2))
        return
    for name in available_schemes():
        preset = load_preset(name)
        print(f"{name}\n  {preset.pop('description', '').strip()}")
        for key, default in defaults.items():
            print(f"    {key:<16} {preset.get(key, default)!r}")
    print(f"\noptions: {', '.join(option_names())}")
    print(f"model types: {', '.join(ADAPTERS.names())} (mmrope schemes --families: what each runs)")


def _resolve(args: argparse.Namespace) -> None:
    print(json.dumps(resolve_config(args.scheme, **_parse_sets(args.set)).to_dict(), indent=2))


def _apply(args: argparse.Namespace) -> None:
    if args.remove:
        if args.set:
            raise ValueError("--set cannot be combined with --remove")
        changed = write_scheme(args.checkpoint, None)
        done = "removed the mmrope key" if changed else "no mmrope key"
        print(f"{config_path(args.checkpoint)}: {done} (loads stock)")
        return
    config = resolve_config(args.scheme or args.config, **_parse_sets(args.set))
    patch_model(meta_model(args.checkpoint), config)  # refuses, before writing, what loading would refuse
    changed = write_scheme(args.checkpoint, config.to_dict())
    print(f"{config_path(args.checkpoint)}: {'set' if changed else 'already has'} mmrope scheme {config.scheme!r}")


def _show(args: argparse.Namespace) -> None:
    value = read_scheme(args.checkpoint)
    if value is None:
        print("stock")
        return
    model = patch_from_key(meta_model(args.checkpoint), value, str(config_path(args.checkpoint)))
    print(json.dumps(patch_info(model), indent=2))


class _LayoutItem(argparse.Action):
    """Collects --text / --image / --video in the order given."""

    def __call__(self, parser, namespace, value, option_string=None):
        items = getattr(namespace, "items", None) or []
        items.append((self.dest, value))
        namespace.items = items


def _inspect(args: argparse.Namespace) -> None:
    from mmrope_hf.integrations.cli.inspection import draw, frequency_map, layout_tensors, scheme_positions, table

    tensors = layout_tensors(getattr(args, "items", None) or [])
    schemes = args.scheme or ["mrope", "mrope-i", "circle"]
    results = scheme_positions(schemes, tensors)
    print(table(tensors, results))
    maps = {s: frequency_map(s, args.head_dim, args.kv_heads, args.native) for s in schemes}
    for scheme, (name, rows) in maps.items():
        pairs = "".join(".thw"[a + 1] for a in rows[0])
        per_head = (
            f"KV heads {''.join('.thw'[row[0] + 1] for row in rows)}, each over all pairs" if len(rows) > 1 else pairs
        )
        print(f"{scheme}: {name}: {per_head}")
    if args.png:
        draw(tensors, results, maps, args.png)
        print(f"wrote {args.png}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmrope`` console script and ``python -m mmrope_hf``."""
    parser = argparse.ArgumentParser(prog="mmrope", description="Multimodal RoPE schemes for Hugging Face VLMs.")
    parser.add_argument("--version", action="version", version=f"mmrope-hf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    schemes = commands.add_parser("schemes", help="list the named schemes with their options and defaults")
    schemes.add_argument("--json", action="store_true", help="print the resolved presets as JSON")
    schemes.add_argument(
        "--families", action="store_true", help="print the supported model types x schemes (markdown table)"
    )
    schemes.set_defaults(run=_schemes)
    resolve = commands.add_parser("resolve", help="print the resolved config of a scheme, preset or file")
    resolve.add_argument("scheme", help="preset name or path to a YAML/JSON file")
    resolve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option")
    resolve.set_defaults(run=_resolve)
    apply = commands.add_parser("apply", help="set the scheme a checkpoint loads with (edits only its config.json)")
    apply.add_argument("checkpoint", help="a directory written by save_pretrained")
    source = apply.add_mutually_exclusive_group(required=True)
    source.add_argument("--scheme", help="preset name")
    source.add_argument("--config", metavar="FILE", help="YAML/JSON file with a scheme key")
    source.add_argument("--remove", action="store_true", help="remove the mmrope key: the checkpoint loads stock")
    apply.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an option")
    apply.set_defaults(run=_apply)
    show = commands.add_parser("show", help="print the scheme a checkpoint loads with, or 'stock'")
    show.add_argument("checkpoint", help="a directory written by save_pretrained")
    show.set_defaults(run=_show)
    inspect = commands.add_parser(
        "inspect",
        help="positions and frequency maps of schemes on a prompt layout (table, optional PNG)",
        description=(
            "e.g. mmrope inspect --text 3 --image 1x8x8 --text 2 --scheme mrope-i --scheme circle --png out.png"
        ),
    )
    inspect.add_argument("--text", action=_LayoutItem, type=int, metavar="N", help="N text tokens")
    inspect.add_argument(
        "--image", action=_LayoutItem, metavar="TxHxW", help="an image grid in patches (1x8x8: 16 tokens)"
    )
    inspect.add_argument("--video", action=_LayoutItem, metavar="TxHxW", help="a video grid in patches")
    inspect.add_argument("--scheme", action="append", help="a scheme (repeat; default: mrope, mrope-i, circle)")
    inspect.add_argument("--head-dim", type=int, default=128, help="head dim for the frequency maps (default 128)")
    inspect.add_argument("--kv-heads", type=int, default=8, help="KV heads for multi-head maps (default 8)")
    inspect.add_argument(
        "--native",
        default="chunked",
        choices=["chunked", "interleaved"],
        help="what 'native' means: chunked (Qwen2/2.5-VL, default) or interleaved (Qwen3-VL)",
    )
    inspect.add_argument("--png", metavar="FILE", help="also draw positions (3D) and frequency maps to a PNG")
    inspect.set_defaults(run=_inspect)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"mmrope: error: {error}", file=sys.stderr)
        return 2
    return 0

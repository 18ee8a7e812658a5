"""`wattserve` command: dispatches sub-commands to the modules that own them.

Each sub-command module exposes ``run(argv: list[str]) -> int`` and is imported lazily,
so `wattserve plan` never imports kopf, and `wattserve serve` never imports the
operator.
"""

from __future__ import annotations

import importlib
import os
import sys

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("wattserve.cli.plan_cmd",
             "place a ModelDeployment on the cheapest pool that meets its SLO"),
    "simulate": ("wattserve.simulate.cli",
                 "replay a request trace through an autoscaling policy"),
    "operator": ("wattserve.controller.cli",
                 "run the kopf operator against the current kubeconfig"),
    "dev-cluster": ("wattserve.devcluster.cli",
                    "local Kubernetes control plane with simulated pools"),
    "images": ("wattserve.images.cli",
               "build the operator, serving and model images without Docker; import them"),
    "serve": ("wattserve_serving.cli", "run the OpenAI-compatible serving app"),
}

# The optional dependencies a command needs beyond the operator install.
EXTRAS: dict[str, str] = {"dev-cluster": "devcluster", "simulate": "sim", "serve": "serving"}


def _usage() -> str:
    lines = ["usage: wattserve <command> [options]", "", "commands:"]
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name:<12} {help_text}")
    lines.append("")
    lines.append("Run 'wattserve <command> --help' for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from wattserve import __version__

        print(__version__)
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"wattserve: unknown command {name!r} (choose from {', '.join(COMMANDS)}; "
              "'wattserve --help' describes them)", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(name)
        hint = f"; pip install 'wattserve[{extra}]'" if extra else ""
        print(f"wattserve {name}: not available in this install ({exc}){hint}",
              file=sys.stderr)
        return 2
    try:
        result: int = module.run(args[1:])
    except BrokenPipeError:  # `wattserve plan ... -o json | head -1`: the reader left
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return 141  # 128 + SIGPIPE, as a shell reports a program the pipe stopped
    return result


if __name__ == "__main__":
    raise SystemExit(main())
